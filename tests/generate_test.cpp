// Generation end to end: greedy = the argmax chain of the logits, reproducibility, stop conditions,
// and the CLI's error paths.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>

#include "model/grok.h"
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
    Engine s(*model_, {.context = ctx});
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
  Engine s(*model_);
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

// Ctrl-C during a long prompt: the prefill stops at the next chunk boundary (here the first, of 4 tokens),
// nothing is generated, and the positions before the boundary stay in the cache.
TEST_F(GenerateTinyA, CancelDuringPromptStopsAtTheChunkBoundary) {
  std::atomic<bool> cancel{true};
  Engine s(*model_, {.batch = 4});
  std::string text;
  GenerateStats st = generate(s, *tok_, prompt_, greedy(5), [&](const std::string& t) { text += t; }, &cancel);
  EXPECT_EQ(st.reason, StopReason::Cancelled);
  EXPECT_EQ(st.generated_tokens, 0);
  EXPECT_EQ(s.position(), 4) << "the prefill went past the first chunk of a 24-token prompt";
  EXPECT_TRUE(text.empty());
}

// Chunked prefill gives the same continuation as one pass.
TEST_F(GenerateTinyA, ChunkedPrefillMatchesOnePass) {
  std::string one, chunked;
  Engine a(*model_, {.batch = 512}), b(*model_, {.batch = 5});
  const auto sa = generate(a, *tok_, prompt_, greedy(6), [&](const std::string& t) { one += t; });
  const auto sb = generate(b, *tok_, prompt_, greedy(6), [&](const std::string& t) { chunked += t; });
  EXPECT_EQ(sa.tokens, sb.tokens);
  EXPECT_EQ(one, chunked);
}

// An 8K-token prompt does not allocate by its length: the scratch is fixed by the batch (and the context's
// one row of attention scores per thread), here for Grok-1's own shapes.
TEST(GenerateScratch, LongPromptScratchIsBoundedByTheBatch) {
  Config grok1;  // the defaults are Grok-1's
  Context sixteen(16);  // threads: one row of attention scores each
  const Workspace w512(grok1, /*max_tokens=*/512, /*capacity=*/8192, /*sequences=*/1, sixteen);
  const Workspace w64(grok1, 64, 8192, 1, sixteen);
  std::printf("Grok-1 scratch: batch 512 %.0f MB, batch 64 %.0f MB\n", w512.bytes() / 1e6, w64.bytes() / 1e6);
  EXPECT_LT(w512.bytes(), size_t{512} << 20) << "more than 512 MiB of scratch for 512-token chunks";
  EXPECT_LT(w64.bytes() * 4, w512.bytes()) << "scratch should scale with the batch, not the prompt";
}

// -n -1: until EOS or the end of the context.
TEST_F(GenerateTinyA, NoTokenLimitRunsToTheEndOfTheContext) {
  std::string text;
  GenerateStats st = run(greedy(-1), &text, 30);
  EXPECT_EQ(st.reason, StopReason::ContextFull);
  EXPECT_EQ(st.generated_tokens, 30 - 24 + 1);  // 6 evaluated + the last one sampled from the final logits
}

// A tokenizer with fewer pieces than the vocabulary is refused before anything runs.
TEST_F(GenerateTinyA, TokenizerSmallerThanTheVocabularyIsRefused) {
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 400, tmp_ / "small.model");
  const Tokenizer small = Tokenizer::load(tmp_ / "small.model");
  Engine s(*model_);
  error_of([&] { generate(s, small, prompt_, greedy(3), [](const std::string&) {}); },
           {"the tokenizer has 400 pieces", "vocabulary is 512"});
}

// NaN in one layer's weights: generation stops with an error naming the layer, not empty text and exit 0.
TEST(GenerateNumbers, NonFiniteLogitsNameTheLayer) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
  TempDir tmp;
  fs::copy(fixture_dir(), tmp / "m", fs::copy_options::recursive);
  Model m = load_model(tmp / "m");
  // Layer 1's rms_norm_2 (an f32 copy the model owns): one NaN poisons that layer's MoE input.
  m.weights.layers[1].rms_norm_2[3] = std::nanf("");
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp / "tok.model");
  const Tokenizer tok = Tokenizer::load(tmp / "tok.model");
  Engine s(m);
  error_of([&] { generate(s, tok, {5, 17, 42}, greedy(3), [](const std::string&) {}); },
           {"non-finite logits", "layer 1", "--check-weights"});
}

TEST(GenerateCli, SeedReproducibleAndErrorsAreClear) {
  TempDir tmp;
  std::string out, out2;
  const std::string g = GROAK_BIN, model = tmp / "m";
  ASSERT_EQ(run_command(g + " synth --preset tiny --seed 2 --no-tokenizer --out " + model, &out), 0) << out;
  // No tokenizer anywhere yet: the error lists where it looked.
  EXPECT_EQ(run_command(g + " generate --model " + model + " -p hi", &out), 1) << out;
  EXPECT_NE(out.find("no tokenizer found"), std::string::npos) << out;
  EXPECT_NE(out.find(model + "/tokenizer.model"), std::string::npos) << out;
  // Without --no-tokenizer, synth trains the preset's tokenizer on the built-in corpus.
  ASSERT_EQ(run_command(g + " synth --preset tiny --seed 2 --force --out " + model, &out), 0) << out;
  EXPECT_NE(out.find("trained a 512-piece tokenizer"), std::string::npos) << out;
  EXPECT_EQ(Tokenizer::load(model + "/tokenizer.model").vocab_size(), 512);
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
  EXPECT_EQ(out2, "routing of tokens");  // exactly the text, no newline added
  EXPECT_EQ(run_command("echo '1 2 99999' | " + g + " detokenize --tokenizer " + model + "/tokenizer.model", &out), 1);
  EXPECT_NE(out.find("outside the tokenizer's vocabulary"), std::string::npos) << out;
}

}  // namespace groak::test

namespace groak::test {

// Ctrl-C during generation ends cleanly: exit status 130, the summary still printed. Deterministic: the
// signal is sent only once generated text has arrived on the pipe (so the handler is installed and the
// decode loop running), and with -n -1 --ignore-eos nothing but the signal can end the run early.
TEST(GenerateCli, InterruptEndsCleanly) {
  TempDir tmp;
  std::string out;
  const std::string g = GROAK_BIN, model = tmp / "m", err = tmp / "stderr";
  ASSERT_EQ(run_command(g + " synth --preset demo --seed 1 --out " + model, &out), 0) << out;
  ASSERT_EQ(run_command(g + " train-tokenizer --corpus " + std::string(GROAK_SOURCE_DIR) +
                        "/data/corpus.txt --vocab 2048 --out " + model + "/tokenizer.model", &out), 0) << out;
  int pipe_fd[2];
  ASSERT_EQ(::pipe(pipe_fd), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fd[1], 1);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(e, 2);
    ::close(pipe_fd[0]);
    ::execl(g.c_str(), g.c_str(), "generate", "--model", model.c_str(), "-p", "Experts", "-n", "-1", "--ignore-eos",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fd[1]);
  std::string text;
  char buf[256];
  ssize_t n = ::read(pipe_fd[0], buf, sizeof buf);  // blocks until the first generated text
  if (n > 0) text.append(buf, static_cast<size_t>(n));
  ::kill(pid, SIGINT);
  while ((n = ::read(pipe_fd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(pipe_fd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream in(err);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty()) << "no text before the signal:\n" << log;
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of stopping cleanly:\n" << log;
  EXPECT_EQ(WEXITSTATUS(status), 130) << log;
  EXPECT_NE(log.find("stopped: interrupted"), std::string::npos) << log;
  EXPECT_NE(log.find("generated:"), std::string::npos) << log;
}

}  // namespace groak::test
