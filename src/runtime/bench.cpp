#include "runtime/bench.h"

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/probe.h"
#include "runtime/session.h"

namespace groak {

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

BenchStat stat_of(const std::vector<double>& tps) {
  BenchStat s;
  if (tps.empty()) return s;
  for (double v : tps) s.mean += v;
  s.mean /= static_cast<double>(tps.size());
  for (double v : tps) s.stddev += (v - s.mean) * (v - s.mean);
  s.stddev = tps.size() > 1 ? std::sqrt(s.stddev / static_cast<double>(tps.size() - 1)) : 0;
  return s;
}

}  // namespace

double macs_per_token(const Model& model) {
  const Config& c = model.config;
  const double d = static_cast<double>(c.emb_size), q = static_cast<double>(c.q_size());
  const double kv = static_cast<double>(c.kv_size()), f = static_cast<double>(c.ffn_size());
  const double per_layer = d * (q + 2 * kv) + q * d + d * static_cast<double>(c.num_experts) +
                           static_cast<double>(c.num_selected_experts) * 3 * d * f;
  return per_layer * static_cast<double>(c.num_layers);
}

BenchResult run_bench(const Model& model, const BenchOptions& opt) {
  const Config& c = model.config;
  Context ctx(opt.threads, opt.kernels);
  BenchResult res;
  res.threads = ctx.threads();
  res.kernels = ctx.kernels().name;
  res.bytes_per_token = model.weight_bytes_per_token();
  res.macs_per_prompt_token = macs_per_token(model);

  // Random tokens, as llama-bench uses (never PAD, so no key is masked).
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(static_cast<int32_t>(std::min<int64_t>(3, c.vocab_size - 1)),
                                              static_cast<int32_t>(c.vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(opt.prompt));
  for (auto& t : prompt) t = pick(rng);
  const int64_t context = opt.depth + std::max<int64_t>(1, std::max(opt.prompt, opt.gen));
  Session s(model, ctx, context, std::min(opt.batch, context), opt.cache_type);
  std::vector<float> logits;
  // The context each test starts from: empty, or `depth` tokens already evaluated (kept as a snapshot
  // by re-running them would cost more than the test; instead the cache is rewound to `depth`).
  std::vector<int32_t> past(static_cast<size_t>(opt.depth));
  for (auto& t : past) t = pick(rng);
  if (opt.depth > 0) s.eval(past, logits, LogitRows::LastOnly);
  auto rewind = [&] { s.rewind(opt.depth); };

  auto run_pp = [&] {
    rewind();
    const auto t0 = std::chrono::steady_clock::now();
    s.eval(prompt, logits, LogitRows::LastOnly);
    return static_cast<double>(opt.prompt) / since(t0);
  };
  auto run_tg = [&] {
    rewind();
    int32_t tok = pick(rng);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < opt.gen; ++i) s.eval(std::span<const int32_t>(&tok, 1), logits, LogitRows::LastOnly);
    return static_cast<double>(opt.gen) / since(t0);
  };

  // One warm-up of each test: pages of the mapped weights come into memory, caches and pools settle.
  if (opt.prompt > 0) run_pp();
  if (opt.gen > 0) run_tg();
  std::vector<double> pp, tg;
  for (int r = 0; r < opt.reps; ++r) {
    if (opt.prompt > 0) pp.push_back(run_pp());
    if (opt.gen > 0) tg.push_back(run_tg());
  }
  res.pp = stat_of(pp);
  res.tg = stat_of(tg);
  if (opt.probes) {
    res.read_gbs = probe_read_bandwidth(ctx.pool());
    res.fma_gmacs = probe_fma_gmacs(ctx.pool());
  }
  return res;
}

}  // namespace groak
