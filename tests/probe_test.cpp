// Probes in the forward pass (model/probe.h): they change no logit, and what they record is what the model
// used — the router and attention softmaxes against shared/tools/ref_grok.py's float64 recomputation of
// model.py on tiny-a (tests/probe_ref.py captures them); expert statistics against a count by hand.
#include <cmath>
#include <cstring>
#include <fstream>

#include "model/loader.h"
#include "runtime/engine.h"
#include "runtime/experts.h"
#include "runtime/inspect.h"
#include "synth/synth.h"
#include "test_util.h"

namespace groak::test {

namespace {

constexpr double kSoftmaxTolerance = 1e-5;  // absolute, on probabilities (the bar)
constexpr double kRmsTolerance = 1e-5;      // relative

std::vector<double> read_f64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<double> v(bytes.size() / 8);
  std::memcpy(v.data(), bytes.data(), v.size() * 8);
  return v;
}

// A synthetic tiny model (the tiny-a shapes) in a temporary folder.
struct TinyModel {
  TempDir dir;
  Model model;
  TinyModel() : model(make(dir)) {}
  static Model make(const TempDir& d) {
    write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 7, d / "m", {});
    return load_model(d / "m");
  }
};

std::vector<float> run(const Model& m, const std::vector<int32_t>& tokens, int64_t batch, ForwardProbe* probe) {
  Engine e(m, {.context = static_cast<int64_t>(tokens.size()), .batch = batch, .threads = 2});
  e.probe(probe);
  std::vector<float> logits;
  e.eval(tokens, logits, LogitRows::All);
  return logits;
}

}  // namespace

TEST(Probe, LogitsAreBitIdenticalWithProbesOnAndOff) {
  TinyModel t;
  std::vector<int32_t> tokens;
  for (int i = 0; i < 37; ++i) tokens.push_back(1 + (i * 97) % 500);
  const auto off = run(t.model, tokens, 512, nullptr);
  Context ctx(2);
  for (int64_t batch : {int64_t{512}, int64_t{5}}) {
    Inspector in(ctx, t.model, {.positions = 37});
    ExpertCounter ex(t.model.config);
    EXPECT_EQ(run(t.model, tokens, batch, &in), off) << "Inspector, batches of " << batch;
    EXPECT_EQ(run(t.model, tokens, batch, &ex), off) << "ExpertCounter, batches of " << batch;
    EXPECT_EQ(in.recorded, 37);
    ASSERT_FALSE(in.attn_full.empty());
    // The logit lens of the last layer is the model's own output: its top token is the argmax.
    const int64_t V = t.model.config.vocab_size, last = in.N - 1;
    const auto am = argmax_rows(off, V);
    for (int64_t p = 0; p < 37; ++p)
      EXPECT_EQ(in.lens_ids[static_cast<size_t>((p * in.N + last) * in.lens_k)], am[static_cast<size_t>(p)]) << p;
  }
}

TEST(Probe, RouterAndAttentionSoftmaxesEqualAFloat64Recomputation) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/tokens.txt");
  const std::string ref = shared_dir() + "/tools";
  GROAK_REQUIRE_SHARED(ref + "/ref_grok.py");
  if (run_command("/usr/bin/python3 -c 'import numpy'") != 0)
    GTEST_SKIP() << "needs /usr/bin/python3 with numpy (the float64 reference); skipped";
  const Model m = load_model(fixture_dir());
  const Config& c = m.config;
  const auto tokens = read_tokens(fixture_dir() + "/tokens.txt");
  const int64_t T = static_cast<int64_t>(tokens.size()), L = c.num_layers, E = c.num_experts, H = c.num_q_heads;
  TempDir dir;
  std::string list, log;
  for (int32_t id : tokens) list += (list.empty() ? "" : ",") + std::to_string(id);
  ASSERT_EQ(run_command("/usr/bin/python3 " GROAK_SOURCE_DIR "/tests/probe_ref.py " + ref + " " + fixture_dir() +
                            " " + list + " " + dir.path(), &log), 0)
      << "tests/probe_ref.py failed:\n" << log;
  const auto router = read_f64(dir / "router.f64");        // [T, L, E]
  const auto attention = read_f64(dir / "attention.f64");  // [L, H, T, T]
  const auto hidden = read_f64(dir / "hidden.f64");        // [L, T, d]
  ASSERT_EQ(router.size(), static_cast<size_t>(T * L * E));
  ASSERT_EQ(attention.size(), static_cast<size_t>(L * H * T * T));

  Context ctx(2);
  Inspector in(ctx, m, {.positions = T});
  run(m, tokens, 7, &in);  // in chunks, so that the recording spans passes
  double worst_router = 0, worst_attn = 0, worst_rms = 0;
  for (size_t i = 0; i < router.size(); ++i) worst_router = std::max(worst_router, std::fabs(router[i] - in.router_probs[i]));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < T; ++p)
        for (int64_t j = 0; j < T; ++j) {
          const double want = attention[static_cast<size_t>(((l * H + h) * T + p) * T + j)];
          const double got = j <= p ? in.attn_full[static_cast<size_t>(((l * H + h) * T + p) * T + j)] : 0.0;
          worst_attn = std::max(worst_attn, std::fabs(want - got));
        }
  for (int64_t l = 0; l < L; ++l)
    for (int64_t p = 0; p < T; ++p) {
      double ss = 0;
      for (int64_t i = 0; i < c.emb_size; ++i) ss += std::pow(hidden[static_cast<size_t>((l * T + p) * c.emb_size + i)], 2);
      const double want = std::sqrt(ss / static_cast<double>(c.emb_size));
      const double got = in.residual_rms[static_cast<size_t>((p * L + l) * kResidualPoints + 2)];
      worst_rms = std::max(worst_rms, std::fabs(got - want) / want);
    }
  std::printf("worst |groak - float64|: router %.3g, attention %.3g (bar %.0e); residual RMS rel %.3g\n",
              worst_router, worst_attn, kSoftmaxTolerance, worst_rms);
  EXPECT_LT(worst_router, kSoftmaxTolerance) << "the router probabilities recorded are not model.py's";
  EXPECT_LT(worst_attn, kSoftmaxTolerance) << "the attention weights recorded are not model.py's";
  EXPECT_LT(worst_rms, kRmsTolerance);
  // The chosen experts are the two largest probabilities, largest first; summaries agree with the maps.
  for (int64_t p = 0; p < T; ++p)
    for (int64_t l = 0; l < L; ++l) {
      const float* q = in.router_probs.data() + (p * L + l) * E;
      const auto top = top_k_experts(q, E, 2);
      EXPECT_EQ(in.chosen[static_cast<size_t>((p * L + l) * 2)], top[0]);
      EXPECT_EQ(in.chosen[static_cast<size_t>((p * L + l) * 2 + 1)], top[1]);
      EXPECT_GE(in.routing_margin(p, l), 0.f);
      for (int64_t h = 0; h < H; ++h) {
        const size_t at = static_cast<size_t>((p * in.N + l) * H + h);
        EXPECT_EQ(in.attn_sink[at], in.attn_full[static_cast<size_t>(((l * H + h) * T + p) * T)]);
        EXPECT_GE(in.attn_top_w[at * kAttentionTop], in.attn_top_w[at * kAttentionTop + 1]);
      }
    }
}

TEST(Probe, ExpertCounterAddsUp) {
  TinyModel t;
  const Config& c = t.model.config;
  std::vector<int32_t> tokens;
  for (int i = 0; i < 50; ++i) tokens.push_back(1 + (i * 31) % 400);
  Context ctx(2);
  Inspector in(ctx, t.model, {.positions = 50, .lens_top = 0});
  ExpertCounter ex(c);
  Engine e(t.model, {.context = 50, .batch = 16, .threads = 2});
  std::vector<float> logits;
  e.probe(&in);
  e.eval(tokens, logits, LogitRows::LastOnly);
  e.reset();
  e.probe(&ex);
  e.eval(tokens, logits, LogitRows::LastOnly);
  const int64_t L = c.num_layers, E = c.num_experts, K = c.num_selected_experts;
  for (int64_t l = 0; l < L; ++l) {
    EXPECT_EQ(ex.tokens[static_cast<size_t>(l)], 50);
    int64_t sum = 0, reused = 0;
    std::vector<int64_t> by_hand(static_cast<size_t>(E), 0);
    for (int64_t p = 0; p < 50; ++p)
      for (int64_t j = 0; j < K; ++j) {
        const int32_t e_now = in.chosen[static_cast<size_t>((p * L + l) * K + j)];
        ++by_hand[static_cast<size_t>(e_now)];
        if (p > 0)
          for (int64_t i = 0; i < K; ++i) reused += in.chosen[static_cast<size_t>(((p - 1) * L + l) * K + i)] == e_now;
      }
    for (int64_t x = 0; x < E; ++x) {
      EXPECT_EQ(ex.counts[static_cast<size_t>(l * E + x)], by_hand[static_cast<size_t>(x)]);
      sum += ex.counts[static_cast<size_t>(l * E + x)];
      EXPECT_EQ(ex.pairs[static_cast<size_t>((l * E + x) * E + x)], 0);
    }
    EXPECT_EQ(sum, 50 * K);
    EXPECT_EQ(ex.reused[static_cast<size_t>(l)], reused);
    EXPECT_DOUBLE_EQ(ex.reuse_rate(l), static_cast<double>(reused) / (49.0 * K));
    EXPECT_GE(ex.imbalance(l), 1.0);
  }
}

TEST(Probe, InspectorRefusesALayerOutsideTheModel) {
  TinyModel t;
  Context ctx(1);
  error_of([&] { Inspector in(ctx, t.model, {.layers = {0, 9}, .positions = 4}); }, {"layer 9", "0-1"});
  error_of([&] { Inspector in(ctx, t.model, {.positions = 0}); }, {"0 positions"});
}

TEST(Probe, FullAttentionMapsStopAtTheirBudget) {
  TinyModel t;  // 2 layers × 4 heads: full maps while 8·P² ≤ kFullAttentionMaxFloats
  Context ctx(1);
  const auto fits = static_cast<int64_t>(std::sqrt(static_cast<double>(kFullAttentionMaxFloats / 8)));
  EXPECT_FALSE(Inspector(ctx, t.model, {.positions = fits, .lens_top = 0}).attn_full.empty());
  EXPECT_TRUE(Inspector(ctx, t.model, {.positions = fits + 1, .lens_top = 0}).attn_full.empty());
  EXPECT_FALSE(Inspector(ctx, t.model, {.layers = {1}, .positions = fits + 1, .lens_top = 0}).attn_full.empty());
}

}  // namespace groak::test
