// The groak command line end to end: what a user runs, including its error paths and exit codes.
#include <cmath>
#include <set>

#include "test_util.h"

namespace groak::test {

namespace {
}  // namespace

TEST(Cli, LogitsOnTinyAMatchGoldenInBothModes) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
  TempDir tmp;
  auto golden = read_f32(fixture_dir() + "/logits.f32");
  for (std::string mode : {"full", "incremental"}) {
    std::string out;
    const std::string f = tmp / ("logits-" + mode + ".f32");
    ASSERT_EQ(run_command(groak() + " logits --model " + fixture_dir() + " --tokens-file " + fixture_dir() +
                              "/tokens.txt --mode " + mode + " --out " + f, &out), 0) << out;
    auto got = read_f32(f);
    ASSERT_EQ(got.size(), golden.size()) << "expected [24, 512] float32";
    EXPECT_LT(max_rel_err(got, golden), 2e-5) << mode;
    EXPECT_EQ(argmax_rows(got, 512), argmax_rows(golden, 512)) << mode;
  }
}

TEST(Cli, SynthThenInfoThenLogits) {
  TempDir tmp;
  std::string out;
  const std::string model = tmp / "m";
  ASSERT_EQ(run_command(groak() + " synth --preset tiny-12l --seed 7 --out " + model, &out), 0) << out;
  ASSERT_EQ(run_command(groak() + " info --model " + model, &out), 0) << out;
  EXPECT_NE(out.find("transformer/decoder_layer_11/router/w"), std::string::npos) << out;
  EXPECT_NE(out.find("num_layers            12"), std::string::npos) << out;
  EXPECT_NE(out.find("parameters:"), std::string::npos);
  const std::string f = tmp / "l.f32";
  ASSERT_EQ(run_command(groak() + " logits --model " + model + "/ckpt-0 --tokens 5,17,42,300,2 --out " + f, &out), 0)
      << out;
  auto logits = read_f32(f);
  ASSERT_EQ(logits.size(), 5u * 512u);
  // Against the independent float64 reference on the same files (it reads ckpt-0 itself).
  const std::string ref = shared_dir() + "/tools/ref_grok.py", ref_out = tmp / "ref.f32";
  GROAK_REQUIRE_SHARED(ref);
  if (run_command("/usr/bin/python3 -c 'import numpy'") != 0)
    GTEST_SKIP() << "needs /usr/bin/python3 with numpy (Debian: python3-numpy) for the reference; skipped";
  ASSERT_EQ(run_command("/usr/bin/python3 " + ref + " --model " + model + " --tokens 5,17,42,300,2 --out " + ref_out, &out),
            0) << out;
  const auto expect = read_f32(ref_out);
  ASSERT_EQ(expect.size(), logits.size());
  EXPECT_LT(max_rel_err(logits, expect), 2e-5);
  EXPECT_EQ(argmax_rows(logits, 512), argmax_rows(expect, 512));
}

// Q4_0 matrices get a repacked copy by default (groak info says how much memory); --no-repack keeps
// them in place, and the logits are the same either way, bit for bit.
TEST(Cli, NoRepackKeepsWeightsInPlaceWithTheSameLogits) {
  TempDir tmp;
  std::string out;
  const std::string raw = tmp / "m", q = tmp / "q4_0.gguf";
  ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 3 --out " + raw, &out), 0) << out;
  ASSERT_EQ(run_command(groak() + " convert --model " + raw + " --type q4_0 --out " + q, &out), 0) << out;
  ASSERT_EQ(run_command(groak() + " info --model " + q, &out), 0) << out;
  EXPECT_NE(out.find("repacked on first use:"), std::string::npos) << out;
  ASSERT_EQ(run_command(groak() + " info --no-repack --model " + q, &out), 0) << out;
  EXPECT_EQ(out.find("repacked on first use:"), std::string::npos) << out;
  const std::string a = tmp / "a.f32", b = tmp / "b.f32";
  ASSERT_EQ(run_command(groak() + " logits --model " + q + " --tokens 5,17,42,300,2 --out " + a, &out), 0) << out;
  ASSERT_EQ(run_command(groak() + " logits --no-repack --model " + q + " --tokens 5,17,42,300,2 --out " + b, &out), 0)
      << out;
  const auto la = read_f32(a), lb = read_f32(b);
  ASSERT_EQ(la.size(), 5u * 512u);
  EXPECT_EQ(la, lb);
}

TEST(Cli, UsageErrorsExitWithTwo) {
  std::string out;
  EXPECT_EQ(run_command(groak() + " logits --model x --tokens 1,b --out y", &out), 2) << out;
  EXPECT_NE(out.find("'b' is not a token id"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " logits --model x --tokens 1 --out y --mode sideways", &out), 2) << out;
  EXPECT_EQ(run_command(groak() + " logits --model x --out y", &out), 2) << out;
  EXPECT_NE(out.find("--tokens"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " synth --preset nope --out y", &out), 2) << out;
  EXPECT_EQ(run_command(groak() + " info --modle x", &out), 2) << out;
}

TEST(Cli, BadModelAndBadTokensExitWithOne) {
  std::string out;
  TempDir tmp;
  EXPECT_EQ(run_command(groak() + " info --model /nonexistent/model", &out), 1) << out;
  EXPECT_NE(out.find("no such file or folder"), std::string::npos) << out;
  GROAK_REQUIRE_SHARED(fixture_dir());
  EXPECT_EQ(run_command(groak() + " logits --model " + fixture_dir() + " --tokens 1,512 --out " + (tmp / "x"), &out), 1)
      << out;
  EXPECT_NE(out.find("outside the vocabulary"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp / "x")) << "no output file after a failed run";
  // More tokens than sequence_len: refused with both numbers.
  const std::string model = tmp / "short";
  ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 1 --out " + model, &out), 0) << out;
  std::string cfg;
  {
    std::ifstream in(model + "/config.json");
    cfg.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  cfg.replace(cfg.find("\"sequence_len\": 8192"), 20, "\"sequence_len\": 4   ");
  std::ofstream(model + "/config.json") << cfg;
  EXPECT_EQ(run_command(groak() + " logits --model " + model + " --tokens 1,2,3,4,5 --out " + (tmp / "x"), &out), 1)
      << out;
  EXPECT_NE(out.find("5 tokens exceed the model's context (sequence_len 4)"), std::string::npos) << out;
}

}  // namespace groak::test

// convert --format xai from the command line: the default model back into the raw format it ships in, and
// the mistakes a user can make (a GGUF-only option, a folder that is not empty) refused with what to do.
namespace groak::test {

TEST(Cli, ConvertToXaiFormat) {
  std::string out;
  TempDir tmp;
  const std::string model = std::string(GROAK_SOURCE_DIR) + "/models/grok-kjv";
  EXPECT_EQ(run_command(groak() + " convert --model " + model + " --format xai --type Q4_0 --out " + (tmp / "a"), &out), 2)
      << out;
  EXPECT_NE(out.find("--type applies to GGUF outputs only"), std::string::npos) << out;
  ASSERT_EQ(run_command(groak() + " convert --model " + model + " --format xai --out " + (tmp / "a"), &out), 0) << out;
  EXPECT_TRUE(fs::exists(tmp / "a/ckpt-0/tensor00049_000"));
  EXPECT_TRUE(fs::exists(tmp / "a/tokenizer.model"));
  // Byte for byte the files it ships: absmax rounding gives every block of its int8 a largest |q| of 127, and
  // such blocks come back exactly.
  for (const auto& f : fs::directory_iterator(model + "/ckpt-0"))
    EXPECT_EQ(read_text(f.path().string()), read_text(tmp / ("a/ckpt-0/" + f.path().filename().string())))
        << f.path().filename();
  EXPECT_EQ(run_command(groak() + " convert --model " + model + " --format xai --out " + (tmp / "a"), &out), 1) << out;
  EXPECT_NE(out.find("not an empty folder"), std::string::npos) << out;
}

}  // namespace groak::test
