// The CLI as a llama.cpp user reaches for it (issue 9): readable usage errors, -n -1, --ctx-size, -e,
// --echo, --seed -1, case-insensitive --type, --allow-requantize, and `groak perplexity` with KL divergence.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "io/gguf.h"
#include "test_util.h"

namespace groak::test {

namespace {


// A tiny synthetic model (vocab 512) with a 512-piece tokenizer beside it.
class CliModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    std::string out;
    ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 5 --out " + model(), &out), 0) << out;
    ASSERT_EQ(run_command(groak() + " train-tokenizer --corpus " + std::string(GROAK_SOURCE_DIR) +
                              "/data/corpus.txt --vocab 512 --out " + model() + "/tokenizer.model", &out), 0) << out;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return *dir_ / "m"; }
  static std::string gen(const std::string& args) { return groak() + " generate --model " + model() + " " + args; }
  static TempDir* dir_;
};
TempDir* CliModel::dir_ = nullptr;

// stdout only (stderr to /dev/null), and the exit status.
int stdout_of(const std::string& cmd, std::string* out) { return run_command("{ " + cmd + " 2>/dev/null; }", out); }

// The longest run of digits in `text` (a 309-digit bound would be one).
size_t longest_digit_run(const std::string& text) {
  size_t best = 0, run = 0;
  for (char c : text) {
    run = std::isdigit(static_cast<unsigned char>(c)) ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

double number_after(const std::string& text, const std::string& label) {
  const size_t p = text.find(label);
  return p == std::string::npos ? std::nan("") : std::stod(text.substr(p + label.size()));
}

}  // namespace

TEST_F(CliModel, UsageErrorsSayWhatIsAllowedInWords) {
  struct Case { std::string args, expect; };
  const std::vector<Case> cases = {
      {"-p hi -n 0", "-n must be a positive number of tokens, or -1 for no limit"},
      {"-p hi -n -2", "or -1 for no limit"},
      {"-p hi --temp -1", "--temp: must be between 0 (greedy) and 1e6"},
      {"-p hi --top-k 1e40", "--top-k: must be a whole number from 0 (off) to 2^30"},
      {"-p hi --top-p 2", "--top-p: must be between 0 and 1"},
      {"-p hi --seed -5", "--seed: must be -1 (random)"},
      {"-p hi --ctx-size 0", "must be a positive number of tokens"},
      {"-p hi --repeat-penalty 0", "between 1e-6 and 1e6"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    std::string out;
    EXPECT_EQ(run_command(gen(c.args), &out), 2) << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << out;
    EXPECT_LT(longest_digit_run(out), 20u) << "an unreadable bound: " << out;
  }
  std::string out;
  EXPECT_EQ(run_command(groak() + " logits --model " + model() + " --tokens 1,,2 --out x", &out), 2) << out;
  EXPECT_NE(out.find("empty item in the token list"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " logits --model " + model() + " --tokens 1,2, --out x", &out), 2) << out;
  EXPECT_EQ(run_command(groak() + " convert --model " + model() + " --type q9_9 --out x", &out), 2) << out;
  EXPECT_NE(out.find("use one of F32, F16"), std::string::npos) << out;
}

TEST_F(CliModel, TypeIsCaseInsensitiveAndRequantizingNeedsTheFlag) {
  const std::string q8 = *dir_ / "q8.gguf", q4 = *dir_ / "q4.gguf";
  std::string out;
  ASSERT_EQ(run_command(groak() + " convert --model " + model() + " --type Q8_0 --out " + q8, &out), 0) << out;
  EXPECT_EQ(run_command(groak() + " convert --model " + q8 + " --type q4_0 --out " + q4, &out), 1) << out;
  EXPECT_NE(out.find("already quantized (Q8_0)"), std::string::npos) << out;
  EXPECT_NE(out.find("--allow-requantize"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(q4));
  ASSERT_EQ(run_command(groak() + " convert --model " + q8 + " --type q4_0 --allow-requantize --out " + q4, &out), 0)
      << out;
  // Dequantizing is not requantizing.
  EXPECT_EQ(run_command(groak() + " convert --model " + q8 + " --type f16 --out " + (*dir_ / "f16.gguf"), &out), 0)
      << out;
}

TEST_F(CliModel, EchoEscapesSeedAndGrammar) {
  std::string plain, echoed, log;
  ASSERT_EQ(stdout_of(gen("-p 'The model' -n 4 --temp 0 --ignore-eos"), &plain), 0) << plain;
  ASSERT_EQ(stdout_of(gen("-p 'The model' -n 4 --temp 0 --ignore-eos --echo"), &echoed), 0) << echoed;
  EXPECT_EQ(echoed, "The model" + plain) << "--echo prints the prompt, then the same continuation";
  EXPECT_NE(plain.substr(0, 9), "The model") << "without --echo, stdout holds only the new text";
  // -e turns \n into a newline: the prompt tokens differ from the literal backslash-n.
  std::string esc, lit;
  ASSERT_EQ(stdout_of(gen("-p 'a\\nb' -e --echo -n 1 --temp 0 --ignore-eos"), &esc), 0) << esc;
  ASSERT_EQ(stdout_of(gen("-p 'a\\nb' --echo -n 1 --temp 0 --ignore-eos"), &lit), 0) << lit;
  EXPECT_EQ(esc.substr(0, 3), "a\nb") << esc;
  EXPECT_EQ(lit.substr(0, 4), "a\\nb") << lit;
  // "1 token", not "1 tokens"; --ctx-size is --ctx.
  ASSERT_EQ(run_command(gen("-p 'The' -n 1 --ctx-size 64 --ignore-eos"), &log), 0) << log;
  EXPECT_NE(log.find("generated: 1 token,"), std::string::npos) << log;
  // --seed -1: a random seed, printed; giving it back reproduces the text.
  ASSERT_EQ(run_command("{ " + gen("-p 'The model' -n 8 --seed -1 --ignore-eos >" + (*dir_ / "r.txt")) + "; }", &log), 0)
      << log;
  const size_t at = log.find("seed: ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string seed = log.substr(at + 6, log.find(' ', at + 6) - at - 6);
  ASSERT_NE(log.find("seed: " + seed + " (random"), std::string::npos) << log;
  ASSERT_FALSE(seed.empty());
  std::string again;
  ASSERT_EQ(stdout_of(gen("-p 'The model' -n 8 --seed " + seed + " --ignore-eos"), &again), 0);
  std::ifstream in(*dir_ / "r.txt");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), again);
}

// The tokenizer a command finds beside the model is one of its inputs too.
TEST_F(CliModel, ConvertNeverOverwritesTheTokenizerItFound) {
  const std::string tok = model() + "/tokenizer.model";
  std::ifstream in(tok, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  EXPECT_EQ(run_command(groak() + " convert --model " + model() + " --type f32 --out " + tok, &out), 1) << out;
  EXPECT_NE(out.find("one of this command's inputs"), std::string::npos) << out;
  std::ifstream again(tok, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>()), before);
}

// generate's stdout failing (a full disk, a closed stdout) is an error, not exit 0 with the text lost.
TEST_F(CliModel, GenerateReportsStdoutWriteErrors) {
  for (const std::string redirect : {" > /dev/full", " >&-"}) {
    std::string out;
    EXPECT_EQ(run_command("{ " + gen("-p 'The model' -n 4 --ignore-eos") + redirect + "; }", &out), 1) << redirect << out;
    EXPECT_NE(out.find("writing to standard output failed"), std::string::npos) << out;
  }
}

// NaN in a weight: `info` names the tensor, loading warns about a damaged norm, and generation stops with
// an error naming the layer instead of printing garbage with exit 0.
TEST_F(CliModel, NonFiniteWeightsAreNamed) {
  const std::string f32 = *dir_ / "nan.gguf";
  std::string out;
  ASSERT_EQ(run_command(groak() + " convert --model " + model() + " --type f32 --out " + f32, &out), 0) << out;
  auto poison = [&](const char* tensor, uint64_t element) {
    uint64_t at = 0;
    {
      GgufFile g = GgufFile::open(f32);
      at = g.tensor(tensor).file_offset + element * 4;
    }
    const float nan = std::nanf("");
    std::fstream f(f32, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(reinterpret_cast<const char*>(&nan), 4);
  };
  poison("blk.1.attn_v.weight", 7);
  ASSERT_EQ(run_command(groak() + " info --model " + f32, &out), 0) << out;
  EXPECT_NE(out.find("NaN/Inf found"), std::string::npos) << out;
  EXPECT_NE(out.find("layer 1 value: 1 NaN/Inf"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " generate --model " + f32 + " -p 'The model' -n 2 --tokenizer " + model() +
                            "/tokenizer.model", &out), 1) << out;
  EXPECT_NE(out.find("non-finite logits"), std::string::npos) << out;
  EXPECT_NE(out.find("layer 1"), std::string::npos) << out;
  // A norm is scanned at every load: a warning before anything runs.
  poison("blk.0.ffn_norm.weight", 0);
  EXPECT_EQ(run_command(groak() + " logits --model " + f32 + " --tokens 1 --out " + (*dir_ / "nan.f32"), &out), 0) << out;
  EXPECT_NE(out.find("warning"), std::string::npos) << out;
  EXPECT_NE(out.find("layer 0 rms_norm_2: 1 NaN/Inf"), std::string::npos) << out;
}

// A temperature so small that logits overflow is greedy, not NaN weights picking the least likely token.
TEST_F(CliModel, TinyTemperatureIsGreedy) {
  std::string greedy, tiny;
  ASSERT_EQ(stdout_of(gen("-p 'The model' -n 6 --temp 0 --ignore-eos"), &greedy), 0);
  ASSERT_EQ(stdout_of(gen("-p 'The model' -n 6 --temp 1e-40 --ignore-eos"), &tiny), 0);
  EXPECT_EQ(tiny, greedy);
}

// -n -1 runs until the end of the context (--ignore-eos), and says so.
TEST_F(CliModel, NoLimitRunsToTheEndOfTheContext) {
  std::string log;
  ASSERT_EQ(run_command(gen("-p 'The model' -n -1 --ctx 24 --ignore-eos"), &log), 0) << log;
  EXPECT_NE(log.find("stopped: end of the context (24 tokens)"), std::string::npos) << log;
}

// llama-perplexity's method on a text of the corpus, then a KL comparison of a q4_0 copy against it.
TEST_F(CliModel, PerplexityAndKlDivergence) {
  const std::string text = std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", base = *dir_ / "base.kld";
  std::string out;
  ASSERT_EQ(stdout_of(groak() + " perplexity --model " + model() + " -f " + text + " --ctx 64 --chunks 3 "
                          "--kl-divergence-base " + base, &out), 0) << out;
  const double ppl = number_after(out, "Final estimate: PPL = ");
  ASSERT_TRUE(std::isfinite(ppl)) << out;
  EXPECT_NE(out.find("[3]"), std::string::npos) << out;
  EXPECT_NE(out.find(" +/- "), std::string::npos) << out;
  // Random weights over a 512-token vocabulary: near-uniform predictions (a trained model would be far lower).
  EXPECT_GT(ppl, 50);
  EXPECT_LT(ppl, 20000);
  ASSERT_TRUE(fs::exists(base));
  EXPECT_FALSE(fs::exists(base + ".tmp"));
  // The same model against its own base: zero divergence, the same top token everywhere, the same PPL.
  ASSERT_EQ(stdout_of(groak() + " perplexity --model " + model() + " --kl-divergence-base " + base + " --kl-divergence",
                      &out), 0) << out;
  EXPECT_NEAR(number_after(out, "Mean KLD: "), 0.0, 1e-6) << out;
  EXPECT_DOUBLE_EQ(number_after(out, "Same top: "), 100.0) << out;
  EXPECT_NEAR(number_after(out, "Final estimate: PPL = "), ppl, 1e-3 * ppl) << out;
  // A q8_0 copy diverges measurably, and a little; q4_0 more than q8_0.
  double kld[2], same[2];
  int i = 0;
  for (const char* type : {"q8_0", "q4_0"}) {
    const std::string q = *dir_ / (std::string("kl-") + type + ".gguf");
    ASSERT_EQ(run_command(groak() + " convert --model " + model() + " --type " + type + " --out " + q, &out), 0) << out;
    ASSERT_EQ(stdout_of(groak() + " perplexity --model " + q + " --kl-divergence-base " + base + " --kl-divergence", &out),
              0) << out;
    kld[i] = number_after(out, "Mean KLD: ");
    same[i] = number_after(out, "Same top: ");
    ++i;
  }
  EXPECT_GT(kld[0], 1e-7);
  // Random weights make a tiny model touchy (docs/FORMATS.md has the table), so the bars are loose.
  EXPECT_LT(kld[0], 0.2);
  EXPECT_GT(same[0], 60);
  EXPECT_GT(kld[1], kld[0]);
  EXPECT_LT(same[1], same[0] + 1e-9);
  // Errors: too short a text, a base file that is not one, no --kl-divergence-base.
  std::ofstream(*dir_ / "short.txt") << "too short";
  EXPECT_EQ(run_command(groak() + " perplexity --model " + model() + " -f " + (*dir_ / "short.txt"), &out), 1) << out;
  EXPECT_NE(out.find("fewer than one window of 512"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " perplexity --model " + model() + " --kl-divergence-base " + text + " --kl-divergence",
                        &out), 1) << out;
  EXPECT_NE(out.find("not a KL base file"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " perplexity --model " + model() + " --kl-divergence", &out), 2) << out;
  // The base file is an output like any other: never the model.
  EXPECT_EQ(run_command(groak() + " perplexity --model " + model() + " -f " + text + " --ctx 64 --chunks 1 "
                            "--kl-divergence-base " + model() + "/config.json", &out), 1) << out;
  EXPECT_NE(out.find("one of this command's inputs"), std::string::npos) << out;
}

}  // namespace groak::test
