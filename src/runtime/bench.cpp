#include "runtime/bench.h"

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/probe.h"
#include "model/repack.h"
#include "runtime/engine.h"
#include "util/proc_file.h"

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

std::optional<uint64_t> process_disk_read_bytes() { return proc_field("/proc/self/io", "read_bytes:"); }

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
  Engine s(model, ctx, {.context = context, .batch = std::min(opt.batch, context), .cache_type = opt.cache_type});
  std::vector<float> logits;
  // The context each test starts from: empty, or `depth` tokens already evaluated (kept as a snapshot
  // by re-running them would cost more than the test; instead the cache is rewound to `depth`).
  std::vector<int32_t> past(static_cast<size_t>(opt.depth));
  for (auto& t : past) t = pick(rng);
  if (opt.depth > 0) s.eval(past, logits, LogitRows::LastOnly);
  auto rewind = [&] { s.rewind(opt.depth); };

  // Seconds of each test and of its communication (tensor parallelism), over the measured repetitions.
  struct Totals {
    double seconds = 0, comm = 0;
    int64_t all_reduces = 0;
    ThreadPool::Stats pool;
    uint64_t disk_read = 0;
    bool disk_known = true;  // false once /proc/self/io could not be read
  } pp_total, tg_total;
  ctx.pool().set_timing(opt.profile);
  auto timed = [&](Totals& total, const auto& body) {
    const CommStats c0 = model.comm().stats();
    const ThreadPool::Stats p0 = ctx.pool().stats();
    const std::optional<uint64_t> d0 = process_disk_read_bytes();
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double sec = since(t0);
    const std::optional<uint64_t> d1 = process_disk_read_bytes();
    if (d0 && d1) total.disk_read += *d1 - *d0;
    else total.disk_known = false;
    const CommStats c1 = model.comm().stats();
    const ThreadPool::Stats p1 = ctx.pool().stats();
    total.pool.loops += p1.loops - p0.loops;
    total.pool.seconds += p1.seconds - p0.seconds;
    total.seconds += sec;
    total.comm += c1.reduce_seconds - c0.reduce_seconds;
    total.all_reduces += c1.all_reduces - c0.all_reduces;
    return sec;
  };
  auto run_pp = [&](Totals& total) {
    rewind();
    s.profile(&total == &pp_total && opt.profile ? &res.pp_phases : nullptr);
    return static_cast<double>(opt.prompt) / timed(total, [&] { s.eval(prompt, logits, LogitRows::LastOnly); });
  };
  auto run_tg = [&](Totals& total) {
    rewind();
    s.profile(&total == &tg_total && opt.profile ? &res.tg_phases : nullptr);
    int32_t tok = pick(rng);
    return static_cast<double>(opt.gen) / timed(total, [&] {
      for (int64_t i = 0; i < opt.gen; ++i) s.eval(std::span<const int32_t>(&tok, 1), logits, LogitRows::LastOnly);
    });
  };

  // One warm-up of each test: pages of the mapped weights come into memory, caches and pools settle; every
  // repacked copy is made first (a decode-only run would otherwise make the copies of the experts its
  // warm-up did not route to while it is measured).
  make_repacked_copies(model, ctx);
  Totals warm;
  if (opt.prompt > 0) run_pp(warm);
  if (opt.gen > 0) run_tg(warm);
  std::vector<double> pp, tg;
  for (int r = 0; r < opt.reps; ++r) {
    if (opt.prompt > 0) pp.push_back(run_pp(pp_total));
    if (opt.gen > 0) tg.push_back(run_tg(tg_total));
  }
  s.profile(nullptr);
  res.pp_seconds = pp_total.seconds;
  res.tg_seconds = tg_total.seconds;
  res.pp_pool = pp_total.pool;
  res.tg_pool = tg_total.pool;
  res.pp = stat_of(pp);
  res.tg = stat_of(tg);
  if (pp_total.seconds > 0) res.pp_comm_share = pp_total.comm / pp_total.seconds;
  const auto per_token = [&](const Totals& t, int64_t tokens) -> std::optional<double> {
    if (!t.disk_known || tokens <= 0) return std::nullopt;
    return static_cast<double>(t.disk_read) / static_cast<double>(tokens);
  };
  res.pp_disk_bytes_per_token = per_token(pp_total, opt.prompt * opt.reps);
  res.tg_disk_bytes_per_token = per_token(tg_total, opt.gen * opt.reps);
  if (tg_total.seconds > 0) {
    res.tg_comm_share = tg_total.comm / tg_total.seconds;
    res.tg_all_reduces_per_token = static_cast<double>(tg_total.all_reduces) / static_cast<double>(opt.gen * opt.reps);
  }
  if (opt.probes) {
    res.read_gbs = probe_read_bandwidth(ctx.pool());
    res.fma_gmacs = probe_fma_gmacs(ctx.pool());
  }
  return res;
}

}  // namespace groak
