// Generation end to end: greedy = the argmax chain of the logits, reproducibility, stop conditions,
// and the CLI's error paths.
#include <atomic>

#include "model/loader.h"
#include "runtime/generate.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

// tiny-a (vocab 512) with a 512-piece tokenizer trained on the repository's corpus.
class GenerateTinyA : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
    train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp_ / "tok.model");
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(tmp_ / "tok.model"));
    model_ = std::make_unique<Model>(load_model(fixture_dir()));
    prompt_ = read_tokens(fixture_dir() + "/tokens.txt");
  }
  GenerateStats run(GenerateOptions opt, std::string* text, int64_t ctx = 0, const std::atomic<bool>* cancel = nullptr) {
    Session s(*model_, ctx);
    text->clear();
    return generate(s, *tok_, prompt_, opt, [&](const std::string& t) { *text += t; }, cancel);
  }
  TempDir tmp_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Model> model_;
  std::vector<int32_t> prompt_;
};

GenerateOptions greedy(int64_t n) {
  GenerateOptions o;
  o.max_tokens = n;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  return o;
}

}  // namespace

TEST_F(GenerateTinyA, GreedyReproducesTheArgmaxChainOfTheLogits) {
  std::string text;
  GenerateStats st = run(greedy(12), &text);
  ASSERT_EQ(st.generated_tokens, 12);
  EXPECT_EQ(st.reason, StopReason::MaxTokens);
  // Feed prompt + generated tokens in one pass: each generated token is the argmax after its prefix.
  std::vector<int32_t> all = prompt_;
  all.insert(all.end(), st.tokens.begin(), st.tokens.end() - 1);
  Session s(*model_);
  std::vector<float> logits;
  s.eval(all, logits, LogitRows::All);
  auto am = argmax_rows(logits, model_->config.vocab_size);
  for (size_t i = 0; i < st.tokens.size(); ++i) EXPECT_EQ(st.tokens[i], am[prompt_.size() - 1 + i]) << "token " << i;
  // The streamed text is the decoded continuation of the prompt.
  std::vector<int32_t> ids = prompt_;
  ids.insert(ids.end(), st.tokens.begin(), st.tokens.end());
  EXPECT_EQ(tok_->decode(prompt_) + text, tok_->decode(ids));
}

TEST_F(GenerateTinyA, SameSeedSameTextOtherSeedOtherText) {
  GenerateOptions o;
  o.max_tokens = 24;
  o.ignore_eos = true;
  o.sampling.temperature = 1.0f;
  o.sampling.top_k = 0;
  o.sampling.min_p = 0;
  std::string a, b, c;
  o.sampling.seed = 7;
  auto sa = run(o, &a);
  auto sb = run(o, &b);
  o.sampling.seed = 8;
  auto sc = run(o, &c);
  EXPECT_EQ(sa.tokens, sb.tokens);
  EXPECT_EQ(a, b);
  EXPECT_NE(sa.tokens, sc.tokens);
}

TEST_F(GenerateTinyA, StopStringEndsBeforeIt) {
  std::string full;
  run(greedy(16), &full);
  ASSERT_GT(full.size(), 6u);
  GenerateOptions o = greedy(16);
  const std::string stop = full.substr(full.size() / 2, 3);
  o.stop = {stop};
  std::string cut;
  GenerateStats st = run(o, &cut);
  EXPECT_EQ(st.reason, StopReason::StopString);
  EXPECT_EQ(cut, full.substr(0, full.find(stop)));
}

TEST_F(GenerateTinyA, EndOfContextIsReported) {
  std::string text;
  const int64_t ctx = static_cast<int64_t>(prompt_.size()) + 3;
  GenerateStats st = run(greedy(100), &text, ctx);
  EXPECT_EQ(st.reason, StopReason::ContextFull);
  EXPECT_EQ(st.generated_tokens, 4);  // 3 evaluated + the last one sampled from the final logits
}

TEST_F(GenerateTinyA, PromptLongerThanContextGivesBothNumbers) {
  std::string text;
  try {
    run(greedy(4), &text, 10);
    FAIL() << "a 24-token prompt in a 10-token context must be refused";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("24 tokens"), std::string::npos) << m;
    EXPECT_NE(m.find("holds 10"), std::string::npos) << m;
  }
}

TEST_F(GenerateTinyA, CancelStopsCleanly) {
  std::atomic<bool> cancel{true};
  std::string text;
  GenerateStats st = run(greedy(50), &text, 0, &cancel);
  EXPECT_EQ(st.reason, StopReason::Cancelled);
  EXPECT_EQ(st.generated_tokens, 0);
}

TEST(GenerateCli, SeedReproducibleAndErrorsAreClear) {
  TempDir tmp;
  std::string out, out2;
  const std::string g = GROAK_BIN, model = tmp / "m";
  ASSERT_EQ(run_command(g + " synth --preset tiny --seed 2 --out " + model, &out), 0) << out;
  // No tokenizer anywhere yet: the error lists where it looked.
  EXPECT_EQ(run_command(g + " generate --model " + model + " -p hi", &out), 1) << out;
  EXPECT_NE(out.find("no tokenizer found"), std::string::npos) << out;
  EXPECT_NE(out.find(model + "/tokenizer.model"), std::string::npos) << out;
  ASSERT_EQ(run_command(g + " train-tokenizer --corpus " + std::string(GROAK_SOURCE_DIR) +
                        "/data/corpus.txt --vocab 512 --out " + model + "/tokenizer.model", &out), 0) << out;
  const std::string cmd = "( " + g + " generate --model " + model + " -p 'Experts route tokens' -n 20 --temp 0.9 --seed 5 --ignore-eos 2>/dev/null ) > ";
  ASSERT_EQ(run_command(cmd + (tmp / "a.txt"), &out), 0) << out;
  ASSERT_EQ(run_command(cmd + (tmp / "b.txt"), &out), 0) << out;
  auto slurp = [](const std::string& f) {
    std::ifstream in(f);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(slurp(tmp / "a.txt"), slurp(tmp / "b.txt"));
  EXPECT_GT(slurp(tmp / "a.txt").size(), 5u);
  // Prompt from stdin, summary on stderr.
  ASSERT_EQ(run_command("echo 'Experts route tokens' | " + g + " generate --model " + model + " -f - -n 3", &out), 0) << out;
  EXPECT_NE(out.find("generated: 3 tokens"), std::string::npos) << out;
  EXPECT_NE(out.find("time to first token"), std::string::npos) << out;
  // Usage errors exit with 2 and name the problem.
  EXPECT_EQ(run_command(g + " generate --model " + model + " -p x --top-p 1.5", &out), 2) << out;
  EXPECT_NE(out.find("--top-p"), std::string::npos) << out;
  EXPECT_EQ(run_command(g + " generate --model " + model + " -p x --frobnicate", &out), 2) << out;
  EXPECT_NE(out.find("frobnicate"), std::string::npos) << out;
  EXPECT_EQ(run_command(g + " generate --model " + model, &out), 2) << out;
  // Tokenize / detokenize round trip.
  ASSERT_EQ(run_command("printf 'routing of tokens' | " + g + " tokenize --tokenizer " + model + "/tokenizer.model", &out), 0);
  ASSERT_EQ(run_command("echo '" + out.substr(0, out.find('\n')) + "' | " + g + " detokenize --tokenizer " + model +
                        "/tokenizer.model", &out2), 0) << out2;
  EXPECT_EQ(out2, "routing of tokens\n");
  EXPECT_EQ(run_command("echo '1 2 99999' | " + g + " detokenize --tokenizer " + model + "/tokenizer.model", &out), 1);
  EXPECT_NE(out.find("outside the tokenizer's vocabulary"), std::string::npos) << out;
}

}  // namespace groak::test

namespace groak::test {

// Ctrl-C during generation ends cleanly: exit status 130, the summary still printed.
TEST(GenerateCli, InterruptEndsCleanly) {
  TempDir tmp;
  std::string out;
  const std::string g = GROAK_BIN, model = tmp / "m";
  ASSERT_EQ(run_command(g + " synth --preset demo --seed 1 --out " + model, &out), 0) << out;
  ASSERT_EQ(run_command(g + " train-tokenizer --corpus " + std::string(GROAK_SOURCE_DIR) +
                        "/data/corpus.txt --vocab 2048 --out " + model + "/tokenizer.model", &out), 0) << out;
  const int rc = run_command("( timeout --preserve-status -s INT 2 " + g + " generate --model " + model +
                             " -p 'Experts' -n 100000 --ignore-eos > /dev/null )", &out);
  EXPECT_EQ(rc, 130) << out;
  EXPECT_NE(out.find("stopped: interrupted"), std::string::npos) << out;
  EXPECT_NE(out.find("generated:"), std::string::npos) << out;
}

}  // namespace groak::test
