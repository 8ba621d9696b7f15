// The forward pass against golden logits computed by an independent float64 reference of model.py
// (../shared/fixtures/tiny-a). If this fails, the printed error and the first differing position tell
// where to look: compare hidden.f32 (residual stream per layer) with the engine's.
#include <cmath>

#include "model/loader.h"
#include "runtime/engine.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {


class Golden : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
    model_ = std::make_unique<Model>(load_model(fixture_dir()));
    tokens_ = read_tokens(fixture_dir() + "/tokens.txt");
    golden_ = read_f32(fixture_dir() + "/logits.f32");
  }
  void check(const std::vector<float>& logits, const char* mode) {
    const int64_t V = model_->config.vocab_size;
    ASSERT_EQ(logits.size(), golden_.size());
    const double err = max_rel_err(logits, golden_);
    std::printf("[%s] tiny-a max rel err %.3g (bar %.0e)\n", mode, err, kGoldenTolerance);
    EXPECT_LT(err, kGoldenTolerance) << mode << ": logits differ from the float64 reference of model.py";
    EXPECT_EQ(argmax_rows(logits, V), argmax_rows(golden_, V)) << mode << ": argmax differs";
  }
  std::unique_ptr<Model> model_;
  std::vector<int32_t> tokens_;
  std::vector<float> golden_;
};

TEST_F(Golden, FullPrefillMatchesReference) {
  for (const Kernels* k : {&fast_kernels(), &reference_kernels()}) {
    Engine s(*model_, {.context = static_cast<int64_t>(tokens_.size()), .kernels = k});
    std::vector<float> logits;
    s.eval(tokens_, logits, LogitRows::All);
    check(logits, k->name);
  }
}

TEST_F(Golden, IncrementalDecodeMatchesReferenceAndFull) {
  const int64_t V = model_->config.vocab_size;
  Engine full(*model_), inc(*model_);
  std::vector<float> all, logits(tokens_.size() * V), row;
  full.eval(tokens_, all, LogitRows::All);
  for (size_t t = 0; t < tokens_.size(); ++t) {
    inc.eval(std::span<const int32_t>(&tokens_[t], 1), row, LogitRows::LastOnly);
    std::copy(row.begin(), row.end(), logits.begin() + static_cast<long>(t * V));
  }
  check(logits, "incremental");
  EXPECT_LT(max_rel_err(logits, all), 1e-5) << "incremental decode differs from the full prefill";
}

TEST_F(Golden, ChunkedPrefillMatchesFull) {
  // Prefill in uneven chunks (positions continue across chunks; the cache holds earlier K/V).
  const int64_t V = model_->config.vocab_size;
  Engine full(*model_), chunked(*model_);
  std::vector<float> all, out, part;
  full.eval(tokens_, all, LogitRows::All);
  size_t at = 0;
  for (size_t len : {5u, 1u, 11u, 7u}) {
    len = std::min(len, tokens_.size() - at);
    chunked.eval(std::span<const int32_t>(tokens_.data() + at, len), part, LogitRows::All);
    out.insert(out.end(), part.begin(), part.end());
    at += len;
  }
  ASSERT_EQ(at, tokens_.size());
  EXPECT_LT(max_rel_err(out, all), 1e-5);
  EXPECT_EQ(argmax_rows(out, V), argmax_rows(all, V));
}

TEST_F(Golden, ContextOverflowIsRefused) {
  Engine s(*model_, {.context = 4});
  std::vector<float> logits;
  s.eval(std::span<const int32_t>(tokens_.data(), 3), logits, LogitRows::LastOnly);
  try {
    s.eval(std::span<const int32_t>(tokens_.data(), 2), logits, LogitRows::LastOnly);
    FAIL() << "overflowing the context should throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the context of 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Engine(*model_, {.context = model_->config.sequence_len + 1}), Error);
}

TEST_F(Golden, OutOfRangeTokenIsRefused) {
  Engine s(*model_);
  std::vector<float> logits;
  std::vector<int32_t> bad = {1, static_cast<int32_t>(model_->config.vocab_size)};
  EXPECT_THROW(s.eval(bad, logits, LogitRows::All), Error);
  EXPECT_EQ(s.position(), 0);
}

}  // namespace groak::test

namespace groak::test {

// The same golden logits from the fixture's llama.cpp GGUF (all f32, same weights).
TEST(GoldenGguf, TinyAF32GgufMatchesReference) {
  const std::string xz = fixture_dir() + "/model-f32.gguf.xz";
  GROAK_REQUIRE_SHARED(xz);
  if (run_command("command -v xz") != 0) GTEST_SKIP() << "needs xz (scripts/setup.sh installs xz-utils)";
  TempDir tmp;
  ASSERT_EQ(run_command("xz -dkc " + xz + " > " + (tmp / "model-f32.gguf")), 0);
  Model m = load_model(tmp / "model-f32.gguf");
  auto tokens = read_tokens(fixture_dir() + "/tokens.txt");
  auto golden = read_f32(fixture_dir() + "/logits.f32");
  for (bool incremental : {false, true}) {
    Engine s(m, {.context = static_cast<int64_t>(tokens.size())});
    std::vector<float> logits, row;
    if (!incremental) {
      s.eval(tokens, logits, LogitRows::All);
    } else {
      for (size_t t = 0; t < tokens.size(); ++t) {
        s.eval(std::span<const int32_t>(&tokens[t], 1), row, LogitRows::LastOnly);
        logits.insert(logits.end(), row.begin(), row.end());
      }
    }
    const double err = max_rel_err(logits, golden);
    std::printf("[gguf %s] tiny-a max rel err %.3g\n", incremental ? "incremental" : "full", err);
    EXPECT_LT(err, kGoldenTolerance);
    EXPECT_EQ(argmax_rows(logits, 512), argmax_rows(golden, 512));
  }
}

}  // namespace groak::test
