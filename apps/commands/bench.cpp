// groak bench: llama-bench's prompt (pp) and generation (tg) tests, against this machine's read bandwidth
// and FMA peak measured in the same run.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "runtime/bench.h"

namespace groak::cli {

namespace {

struct BenchArgs {
  std::string model;
  BenchOptions opt;
  EngineArgs engine;
};

int run_bench_cli(BenchArgs& a, Job& job) {
  a.opt.cache_type = cache_type_named(a.engine.cache_type);
  Model m = job.load([&] {
    a.opt.kernels = &kernels_named(a.engine.kernels);
    return load_with_progress(a.model);
  });
  a.opt.threads = a.engine.threads;
  if (!job.leader()) return job.follow(m, a.opt.threads, *a.opt.kernels);
  if (a.opt.threads == 0) a.opt.threads = job.default_threads();
  std::fprintf(stderr, "bench: %s, warming up (the first pass reads the weights into memory)\n", m.format.c_str());
  BenchResult r = run_bench(m, a.opt);
  uint64_t size = 0;
  for (const auto& t : m.tensors) size += t.bytes;
  const std::string name = std::filesystem::path(m.location).filename().string();
  std::printf("| model | size | params | kernels | threads | test | t/s |\n|---|---:|---:|---|---:|---|---:|\n");
  auto row = [&](const std::string& test, const BenchStat& st) {
    std::printf("| %s | %s | %.2f B | %s | %d | %s | %.2f ± %.2f |\n", name.c_str(), human_bytes(static_cast<double>(size)).c_str(),
                static_cast<double>(m.parameter_count()) / 1e9, r.kernels.c_str(), r.threads, test.c_str(), st.mean, st.stddev);
  };
  const std::string at = a.opt.depth > 0 ? " @ d" + std::to_string(a.opt.depth) : "";
  if (a.opt.prompt > 0) row("pp" + std::to_string(a.opt.prompt) + at, r.pp);
  if (a.opt.gen > 0) row("tg" + std::to_string(a.opt.gen) + at, r.tg);
  std::printf("\n");
  if (a.opt.gen > 0) {
    const double gbs = static_cast<double>(r.bytes_per_token) * r.tg.mean / 1e9;
    std::printf("decode:  %s of weights per token x %.2f tok/s = %.1f GB/s", human_bytes(static_cast<double>(r.bytes_per_token)).c_str(),
                r.tg.mean, gbs);
    if (r.read_gbs > 0) std::printf(" = %.0f %% of the %.1f GB/s read bandwidth measured in this run", 100 * gbs / r.read_gbs, r.read_gbs);
    std::printf("\n");
  }
  if (a.opt.prompt > 0) {
    const double gmacs = r.macs_per_prompt_token * r.pp.mean / 1e9;
    std::printf("prefill: %.2f GMAC per token x %.2f tok/s = %.1f GMAC/s", r.macs_per_prompt_token / 1e9, r.pp.mean, gmacs);
    if (r.fma_gmacs > 0)
      std::printf(" = %.0f %% of the %.1f GMAC/s f32 FMA peak measured in this run", 100 * gmacs / r.fma_gmacs, r.fma_gmacs);
    std::printf("\n");
  }
  if (job.size() > 1)
    std::printf("tensor parallel: %d ranks, %.0f all-reduces per decoded token; rank 0's time in all-reduces and gathers "
                "(waiting for the other ranks included): pp %.0f %%, tg %.0f %%\n",
                job.size(), r.tg_all_reduces_per_token, 100 * r.pp_comm_share, 100 * r.tg_comm_share);
  check_stdout();
  return 0;
}

}  // namespace

Command bench_command() {
  auto a = std::make_shared<BenchArgs>();
  Command c;
  c.name = "bench";
  c.description = "Measure prompt (pp) and generation (tg) speed, llama-bench style, against this machine's read "
                  "bandwidth and FMA peak";
  c.under_mpirun = true;
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("-p,--n-prompt", a->opt.prompt, "prompt tokens of the pp test (0 = skip)")->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    cmd.add_option("-n,--n-gen", a->opt.gen, "tokens of the tg test (0 = skip)")->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    cmd.add_option("-r,--repetitions", a->opt.reps, "repetitions of each test")->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd.add_option("-b,--batch-size", a->opt.batch, "tokens per forward pass in pp")->capture_default_str()
        ->check(CLI::Range(int64_t{1}, kMaxProductRows));
    cmd.add_flag("--no-probes", [a](int64_t) { a->opt.probes = false; }, "skip the bandwidth and FMA probes");
    cmd.add_option("-d,--depth", a->opt.depth, "tokens already in the context when each test starts")
        ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    add_engine_options(cmd, a->engine, nullptr);  // the context is what the tests need
  };
  c.check = [a] {
    if (a->opt.prompt == 0 && a->opt.gen == 0) throw CLI::ValidationError("bench: -p and -n are both 0; nothing to measure");
  };
  c.run = [a](Job& job) { return run_bench_cli(*a, job); };
  return c;
}

}  // namespace groak::cli
