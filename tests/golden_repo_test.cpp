// The forward pass against golden logits that live inside the repository (tests/fixtures/tiny-b), so a
// clone without ../shared still checks the model against an independent reference. The fixture's
// README.md says how it was made: a 3-layer random model written by shared/tools/gen_grok.py and logits
// from shared/tools/ref_grok.py, a float64 numpy re-implementation of model.py.
//
// If this fails: the printed error says how far the logits are off (f32 engines reach ~2e-6). Compare
// the residual stream with tests/fixtures/tiny-b/hidden.f32 ([num_layers + 1, T, d] float32: the scaled
// embedding, then the stream after each layer) to find the first layer that differs. A failure only in
// the pad test points at the key-padding mask in attention() (src/model/grok.cpp).
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/loader.h"
#include "runtime/engine.h"
#include "test_util.h"

namespace groak::test {
namespace {

constexpr double kRepoGoldenTolerance = 2e-5;  // max|Δ| / max|golden|, as for tiny-a
constexpr size_t kPadPosition = 9;             // tokens-pad.txt holds the pad token (0) here

std::string repo_fixture_dir() { return std::string(GROAK_SOURCE_DIR) + "/tests/fixtures/tiny-b"; }

// The first `rows` rows of a [T, vocab] matrix.
std::vector<float> first_rows(const std::vector<float>& x, size_t rows, int64_t vocab) {
  const size_t n = std::min(x.size(), rows * static_cast<size_t>(vocab));
  return {x.begin(), x.begin() + static_cast<long>(n)};
}

class GoldenRepo : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = repo_fixture_dir();
    // Part of the repository: a missing file is a failure, never a skip.
    for (const char* f : {"config.json", "ckpt-0", "tokens.txt", "logits.f32", "tokens-pad.txt", "logits-pad.f32"})
      ASSERT_TRUE(std::filesystem::exists(dir + "/" + f))
          << dir << "/" << f << " is missing; it is committed with the repository (git checkout tests/fixtures)";
    model_ = std::make_unique<Model>(load_model(dir));
    vocab_ = model_->config.vocab_size;
    tokens_ = read_tokens(dir + "/tokens.txt");
    golden_ = read_f32(dir + "/logits.f32");
    pad_tokens_ = read_tokens(dir + "/tokens-pad.txt");
    pad_golden_ = read_f32(dir + "/logits-pad.f32");
    ASSERT_EQ(golden_.size(), tokens_.size() * static_cast<size_t>(vocab_)) << "logits.f32 is not [T, vocab]";
    ASSERT_EQ(pad_golden_.size(), pad_tokens_.size() * static_cast<size_t>(vocab_)) << "logits-pad.f32 is not [T, vocab]";
    ASSERT_GT(pad_tokens_.size(), kPadPosition);
    ASSERT_EQ(pad_tokens_[kPadPosition], model_->config.pad_token) << "tokens-pad.txt should hold the pad token";
  }

  // Prints the worst relative error and checks it and the argmax of every row against the golden values.
  void check(const std::vector<float>& logits, const std::vector<float>& golden, const std::string& what) {
    ASSERT_EQ(logits.size(), golden.size()) << what;
    const double err = max_rel_err(logits, golden);
    std::printf("[%s] tiny-b max rel err %.3g (bar %.0e)\n", what.c_str(), err, kRepoGoldenTolerance);
    EXPECT_LT(err, kRepoGoldenTolerance) << what << ": logits differ from the float64 reference of model.py";
    EXPECT_EQ(argmax_rows(logits, vocab_), argmax_rows(golden, vocab_)) << what << ": argmax differs";
  }

  // Logits of every position, one token per eval through the KV cache.
  std::vector<float> decode_one_by_one(const std::vector<int32_t>& tokens, const Kernels& k) {
    Engine s(*model_, {.context = static_cast<int64_t>(tokens.size()), .kernels = &k});
    std::vector<float> all, row;
    for (size_t t = 0; t < tokens.size(); ++t) {
      s.eval(std::span<const int32_t>(&tokens[t], 1), row, LogitRows::LastOnly);
      all.insert(all.end(), row.begin(), row.end());
    }
    return all;
  }

  std::unique_ptr<Model> model_;
  int64_t vocab_ = 0;
  std::vector<int32_t> tokens_, pad_tokens_;
  std::vector<float> golden_, pad_golden_;
};

TEST_F(GoldenRepo, FullPrefillMatchesReference) {
  for (const Kernels* k : {&fast_kernels(), &reference_kernels()}) {
    Engine s(*model_, {.context = static_cast<int64_t>(tokens_.size()), .kernels = k});
    std::vector<float> logits;
    s.eval(tokens_, logits, LogitRows::All);
    check(logits, golden_, std::string("full ") + k->name);
  }
}

TEST_F(GoldenRepo, IncrementalDecodeMatchesReference) {
  for (const Kernels* k : {&fast_kernels(), &reference_kernels()})
    check(decode_one_by_one(tokens_, *k), golden_, std::string("incremental ") + k->name);
}

// A pad token (0) in the middle of one prefill: model.py hides it from every query as a key.
TEST_F(GoldenRepo, PadKeyIsMaskedInPrefill) {
  for (const Kernels* k : {&fast_kernels(), &reference_kernels()}) {
    Engine s(*model_, {.context = static_cast<int64_t>(pad_tokens_.size()), .kernels = k});
    std::vector<float> logits;
    s.eval(pad_tokens_, logits, LogitRows::All);
    check(logits, pad_golden_, std::string("pad full ") + k->name);
  }
}

// Decoding one token at a time, the pad is masked only while it is the token of the current call
// (model.py masks keys of the current call; older cache slots are trusted, docs/GROK1.md "Masks").
// So the rows up to and including the pad match the one-pass golden values; later rows legitimately
// differ from them and are not compared.
TEST_F(GoldenRepo, PadKeyIsMaskedWhileDecodingIt) {
  const size_t rows = kPadPosition + 1;
  const std::vector<int32_t> prefix(pad_tokens_.begin(), pad_tokens_.begin() + static_cast<long>(rows));
  check(decode_one_by_one(prefix, fast_kernels()), first_rows(pad_golden_, rows, vocab_), "pad incremental fast");
}

}  // namespace
}  // namespace groak::test
