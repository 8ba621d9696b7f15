// The engine's shape: batches of several sequences against one KV cache, thread counts, chunk sizes
// and cache types, on the shared tiny-a fixture (whose golden logits come from an independent float64
// reference of model.py). What a server relies on: a sequence's logits do not depend on who else is in
// the batch, on the number of threads or on how a prompt is chunked (bit for bit).
#include <cstring>

#include "model/loader.h"
#include "runtime/engine.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
    model_ = std::make_unique<Model>(load_model(fixture_dir()));
    tokens_ = read_tokens(fixture_dir() + "/tokens.txt");
    golden_ = read_f32(fixture_dir() + "/logits.f32");
  }
  // Logits of every token, one session, given threads and batch size.
  std::vector<float> run(int threads, int64_t batch, KvType cache = KvType::F32) {
    groak::Engine s(*model_, {.context = static_cast<int64_t>(tokens_.size()), .batch = batch, .cache_type = cache, .threads = threads});
    std::vector<float> logits;
    s.eval(tokens_, logits, LogitRows::All);
    return logits;
  }
  std::unique_ptr<Model> model_;
  std::vector<int32_t> tokens_;
  std::vector<float> golden_;
};

TEST_F(EngineTest, ThreadsAndChunkSizesDoNotChangeALogit) {
  const auto base = run(1, 512);
  EXPECT_LT(max_rel_err(base, golden_), kGoldenTolerance);
  for (int threads : {2, 3})
    for (int64_t batch : {int64_t{1}, int64_t{5}, int64_t{512}})
      EXPECT_EQ(run(threads, batch), base) << threads << " threads, batches of " << batch;
}

TEST_F(EngineTest, InterleavedSequencesInOneBatchMatchSeparateRuns) {
  const Config& c = model_->config;
  const int64_t V = c.vocab_size, n = static_cast<int64_t>(tokens_.size());
  // Sequence 0: the fixture's tokens; sequence 1: the same tokens reversed; sequence 2: a prefix.
  std::vector<std::vector<int32_t>> seqs = {tokens_, std::vector<int32_t>(tokens_.rbegin(), tokens_.rend()),
                                            std::vector<int32_t>(tokens_.begin(), tokens_.begin() + n / 2)};
  std::vector<std::vector<float>> alone;
  for (const auto& s : seqs) {
    groak::Engine one(*model_, {.context = n, .threads = 2});
    std::vector<float> l;
    one.eval(s, l, LogitRows::All);
    alone.push_back(l);
  }
  groak::Engine all(*model_, {.context = n, .sequences = 3, .batch = 3 * n, .threads = 2});
  // Two passes: the first half of every sequence, interleaved token by token; then the rest, one
  // sequence after another (positions continue from the cache).
  std::vector<std::vector<float>> got(3);
  std::vector<float> logits;
  for (int pass = 0; pass < 2; ++pass) {
    Batch b;
    std::vector<int32_t> owner;
    if (pass == 0) {
      for (int64_t p = 0; p < n / 2; ++p)
        for (int32_t s = 0; s < 3; ++s) {
          b.add(seqs[static_cast<size_t>(s)][static_cast<size_t>(p)], s, p, true);
          owner.push_back(s);
        }
    } else {
      for (int32_t s = 0; s < 2; ++s)
        for (int64_t p = n / 2; p < n; ++p) {
          b.add(seqs[static_cast<size_t>(s)][static_cast<size_t>(p)], s, p, true);
          owner.push_back(s);
        }
    }
    logits.assign(static_cast<size_t>(b.n_logits() * V), 0.f);
    all.forward(b, logits.data());
    for (size_t i = 0; i < owner.size(); ++i)
      got[static_cast<size_t>(owner[i])].insert(got[static_cast<size_t>(owner[i])].end(), logits.begin() + i * V,
                                               logits.begin() + (i + 1) * V);
  }
  for (size_t s = 0; s < 3; ++s) EXPECT_EQ(got[s], alone[s]) << "sequence " << s << " differs from its run alone";
  EXPECT_EQ(all.position(0), n);
  EXPECT_EQ(all.position(2), n / 2);
}

TEST_F(EngineTest, BadBatchesAreNamed) {
  const Config& c = model_->config;
  KVCache kv(c.num_layers, 8, c.kv_size(), 2);
  Context ctx(1);
  Workspace ws(c, 4, 8, 2, ctx);
  Batch b;
  b.add(5, 0, 1, true);  // sequence 0 is empty: position 0 comes first
  EXPECT_NE(check_batch(*model_, b, kv, ws).find("should be 0"), std::string::npos);
  b.clear();
  b.add(5, 2, 0, true);
  EXPECT_NE(check_batch(*model_, b, kv, ws).find("sequence id 2"), std::string::npos);
  b.clear();
  for (int i = 0; i < 5; ++i) b.add(5, 0, i, false);
  EXPECT_NE(check_batch(*model_, b, kv, ws).find("more than the 4"), std::string::npos);
  b.clear();
  b.add(static_cast<int32_t>(c.vocab_size), 0, 0, false);
  EXPECT_NE(check_batch(*model_, b, kv, ws).find("outside the vocabulary"), std::string::npos);
}

TEST_F(EngineTest, HalfPrecisionCachesStayCloseToTheReference) {
  // f16 keeps 11 significant bits, bf16 8: measured max rel errors on tiny-a are printed; the bars
  // leave headroom but would catch a cache read with the wrong type or stride.
  for (auto [type, bar] : {std::pair{KvType::F16, 5e-3}, std::pair{KvType::BF16, 5e-2}}) {
    const auto logits = run(2, 512, type);
    const double err = max_rel_err(logits, golden_);
    std::printf("[cache %s] tiny-a max rel err %.3g (bar %.0e)\n", kv_type_name(type), err, bar);
    EXPECT_LT(err, bar) << kv_type_name(type);
    EXPECT_GT(err, 0.0) << kv_type_name(type) << ": a half-precision cache that changes nothing is suspicious";
  }
}

}  // namespace groak::test
