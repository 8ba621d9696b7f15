// One decoder for every sequence: `groak generate`, `groak chat` and each server slot decode through
// runtime/decoder, so what used to differ between them (the tokenizer check, stopping on NaN/Inf
// logits, the end-of-text flush, stop strings) now cannot. Each test runs the same case through the CLI
// path (generate) and the server's (Scheduler) and expects the same outcome.
#include <chrono>
#include <cmath>

#include "model/loader.h"
#include "runtime/chat.h"
#include "runtime/generate.h"
#include "server/scheduler.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

class OneDecoder : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
    train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp_ / "tok.model");
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(tmp_ / "tok.model"));
    model_ = std::make_unique<Model>(load_model(fixture_dir()));
    prompt_ = read_tokens(fixture_dir() + "/tokens.txt");
  }
  static DecodeOptions greedy(int64_t n) {
    DecodeOptions o;
    o.max_tokens = n;
    o.sampling.temperature = 0;
    o.ignore_eos = true;
    return o;
  }
  // The text and result of one job run by a scheduler of this model.
  std::pair<std::string, JobResult> serve(const Model& m, const DecodeOptions& d) {
    SchedulerOptions so;
    so.parallel = 2;
    so.context = 64;
    Scheduler s(m, *tok_, so);
    JobParams p;
    p.prompt = prompt_;
    p.decode = d;
    auto job = std::make_shared<ServeJob>(p);
    EXPECT_EQ(s.submit({job}), Scheduler::Submit::Ok);
    std::vector<TokenOut> out;
    while (!job->wait(out, std::chrono::milliseconds(100))) {
    }
    std::string text;
    for (const TokenOut& t : out) text += t.text;
    return {text, job->result()};
  }
  std::string generate_text(const Model& m, const DecodeOptions& d, GenerateStats* st = nullptr) {
    Engine e(m, {.context = 64});
    std::string text;
    GenerateStats s = generate(e, *tok_, prompt_, d, [&](const std::string& t) { text += t; });
    if (st) *st = s;
    return text;
  }
  TempDir tmp_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Model> model_;
  std::vector<int32_t> prompt_;
};

}  // namespace

// The server accepted a tokenizer smaller than the vocabulary (its check was `>` where generate's was `!=`).
TEST_F(OneDecoder, ServerRefusesATokenizerOfAnotherVocabularyAsGenerateDoes) {
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 400, tmp_ / "small.model");
  const Tokenizer small = Tokenizer::load(tmp_ / "small.model");
  SchedulerOptions so;
  so.context = 64;
  error_of([&] { Scheduler s(*model_, small, so); }, {"the tokenizer has 400 pieces", "vocabulary is 512"});
  Engine e(*model_, {.context = 64});
  error_of([&] { generate(e, small, prompt_, greedy(2), [](const std::string&) {}); },
           {"the tokenizer has 400 pieces", "vocabulary is 512"});
}

// Only the CLI stopped on NaN/Inf logits; a server slot sampled some token from them and went on.
TEST_F(OneDecoder, NonFiniteLogitsEndAServerRequestWithTheLayerAsTheyEndGenerate) {
  Model m = load_model(fixture_dir());
  m.weights.layers[1].rms_norm_2[3] = std::nanf("");  // poisons layer 1's MoE input
  error_of([&] { generate_text(m, greedy(3)); }, {"non-finite logits", "layer 1"});
  const auto [text, r] = serve(m, greedy(3));
  EXPECT_EQ(r.finish, FinishReason::Error);
  EXPECT_NE(r.error.find("non-finite logits"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("layer 1"), std::string::npos) << r.error;
  EXPECT_EQ(r.completion_tokens, 0);
  EXPECT_EQ(text, "");
}

// The same greedy text, the same stop: both paths end before a stop string taken from the middle of
// the unstopped text, and both flush everything before it.
TEST_F(OneDecoder, StopStringsAndTheFinalFlushAgree) {
  GenerateStats st;
  const std::string full = generate_text(*model_, greedy(12), &st);
  ASSERT_GE(full.size(), 6u) << "the fixture's greedy continuation is too short for this test";
  EXPECT_EQ(serve(*model_, greedy(12)).first, full);
  DecodeOptions d = greedy(12);
  const size_t cut = full.size() / 2;
  d.stop = {full.substr(cut, 3)};
  const std::string before = full.substr(0, full.find(d.stop[0]));
  EXPECT_EQ(generate_text(*model_, d, &st), before);
  EXPECT_EQ(st.reason, StopReason::StopString);
  const auto [text, r] = serve(*model_, d);
  EXPECT_EQ(text, before);
  EXPECT_EQ(r.finish, FinishReason::Stop);
}

// A turn of `groak chat` keeps exactly the reply in the cache: the next turn sees what a fresh engine
// would see for the whole conversation so far.
TEST_F(OneDecoder, ChatKeepsExactlyTheReplyInTheCache) {
  Engine e(*model_, {.context = 256});
  ChatTemplate tmpl;
  Chat chat(e, *tok_, tmpl, "Be brief.");
  std::string reply;
  const Chat::Reply r = chat.reply("Hello there", greedy(5), [&](const std::string& t) { reply += t; });
  ASSERT_TRUE(r.fits);
  EXPECT_EQ(r.stats.generated_tokens, 5);
  EXPECT_FALSE(reply.empty());
  EXPECT_NE(reply[0], ' ') << "the template's separator space is not part of the reply";
  // The cache holds the rendered conversation up to the reply's last token that ran through the model.
  const std::string rendered = tmpl.prefix("system") + "Be brief." + tmpl.suffix("system") + tmpl.prefix("user") +
                               "Hello there" + tmpl.suffix("user") + tmpl.generation;
  EXPECT_EQ(e.position(), static_cast<int64_t>(tok_->encode(rendered).size()) + 5 - 1);
  chat.reset();
  EXPECT_EQ(e.position(), 0);
}

TEST(ReplyTokens, AStopStringsTokensAreNotPartOfTheReply) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  TempDir tmp;
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "tok.model");
  const Tokenizer tok = Tokenizer::load(tmp / "tok.model");
  const std::vector<int32_t> ids = tok.encode("Assistant: the cat sat\nUser: hi");
  const std::vector<int32_t> before = tok.encode("Assistant:");
  const std::vector<int32_t> gen(ids.begin() + static_cast<long>(before.size()), ids.end());
  const std::string shown = " the cat sat";
  const size_t k = reply_tokens(tok, before.back(), gen, shown);
  std::vector<int32_t> kept{before.back()};
  kept.insert(kept.end(), gen.begin(), gen.begin() + static_cast<long>(k));
  EXPECT_EQ(tok.decode(kept).substr(tok.decode({before.back()}).size()), shown);
  EXPECT_LT(k, gen.size());
}

}  // namespace groak::test
