// groak bench: llama-bench's prompt (pp) and generation (tg) tests, against this machine's read bandwidth
// and FMA peak measured in the same run. Several -p/-n/-t values run one after another on the model loaded
// once; -o md|csv|json|jsonl as llama-bench's -o; --profile adds the time of each phase of the step.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "../cli.h"
#include "../options.h"
#include "runtime/bench.h"

namespace groak::cli {

namespace {

using json = nlohmann::ordered_json;  // columns in the order written, model first as llama-bench's

struct BenchArgs {
  std::string model, output = "md";
  std::vector<int64_t> prompts{512}, gens{128};
  BenchOptions opt;
  EngineArgs engine;
};

// The phases of PhaseTimes, in the order the step runs them.
constexpr std::pair<const char*, double PhaseTimes::*> kPhases[] = {
    {"embed", &PhaseTimes::embed},     {"attention", &PhaseTimes::attention}, {"router", &PhaseTimes::router},
    {"experts", &PhaseTimes::experts}, {"head", &PhaseTimes::head},           {"reduce", &PhaseTimes::reduce}};

// One measured test (pp or tg) as a row of every output format.
json test_row(const BenchArgs& a, const Model& m, const BenchResult& r, bool pp, int64_t tokens) {
  const BenchStat& st = pp ? r.pp : r.tg;
  uint64_t size = 0;
  for (const auto& t : m.tensors) size += t.bytes;
  json row = {{"model_filename", std::filesystem::path(m.location).filename().string()},
              {"model_type", m.format},
              {"model_size", size},
              {"model_n_params", m.parameter_count()},
              {"kernels", r.kernels},
              {"n_threads", r.threads},
              {"n_prompt", pp ? tokens : 0},
              {"n_gen", pp ? 0 : tokens},
              {"n_depth", a.opt.depth},
              {"n_batch", a.opt.batch},
              {"repetitions", a.opt.reps},
              {"test", (pp ? "pp" : "tg") + std::to_string(tokens) + (a.opt.depth > 0 ? " @ d" + std::to_string(a.opt.depth) : "")},
              {"avg_ts", st.mean},
              {"stddev_ts", st.stddev}};
  if (pp) {
    row["macs_per_token"] = r.macs_per_prompt_token;
    row["gmacs"] = r.macs_per_prompt_token * st.mean / 1e9;
    row["fma_peak_gmacs"] = r.fma_gmacs;
  } else {
    row["bytes_per_token"] = r.bytes_per_token;
    row["weights_gbs"] = static_cast<double>(r.bytes_per_token) * st.mean / 1e9;
    row["read_bandwidth_gbs"] = r.read_gbs;
  }
  if (const auto& d = pp ? r.pp_disk_bytes_per_token : r.tg_disk_bytes_per_token) row["disk_read_bytes_per_token"] = *d;
  if (a.opt.profile) {  // milliseconds per token of each phase; "other": sampling, batching, the loop
    const PhaseTimes& ph = pp ? r.pp_phases : r.tg_phases;
    const double per = 1e3 / static_cast<double>(tokens * a.opt.reps);
    json prof;
    for (const auto& [name, field] : kPhases) prof[name] = ph.*field * per;
    prof["other"] = std::max(0.0, (pp ? r.pp_seconds : r.tg_seconds) - ph.total()) * per;
    row["profile_ms_per_token"] = prof;
    // The thread pool: loops per token, and the share of the test on one thread (outside every loop).
    const ThreadPool::Stats& pool = pp ? r.pp_pool : r.tg_pool;
    const double seconds = pp ? r.pp_seconds : r.tg_seconds;
    row["parallel_loops_per_token"] = static_cast<double>(pool.loops) / static_cast<double>(tokens * a.opt.reps);
    row["serial_share"] = seconds > 0 ? std::max(0.0, 1 - pool.seconds / seconds) : 0.0;
  }
  return row;
}

void print_md(const std::vector<json>& rows, bool profile) {
  std::printf("| model | size | params | kernels | threads | test | t/s |\n|---|---:|---:|---|---:|---|---:|\n");
  for (const json& r : rows)
    std::printf("| %s | %s | %.2f B | %s | %d | %s | %.2f ± %.2f |\n", r["model_filename"].get<std::string>().c_str(),
                human_bytes(r["model_size"].get<double>()).c_str(), r["model_n_params"].get<double>() / 1e9,
                r["kernels"].get<std::string>().c_str(), r["n_threads"].get<int>(), r["test"].get<std::string>().c_str(),
                r["avg_ts"].get<double>(), r["stddev_ts"].get<double>());
  std::printf("\n");
  for (const json& r : rows) {
    const int t = r["n_threads"].get<int>();
    const std::string test = r["test"].get<std::string>() + ", " + std::to_string(t) + (t == 1 ? " thread" : " threads");
    if (r.contains("bytes_per_token")) {
      const double gbs = r["weights_gbs"], bw = r["read_bandwidth_gbs"];
      std::printf("decode %s: %s of weights per token x %.2f tok/s = %.1f GB/s", test.c_str(),
                  human_bytes(r["bytes_per_token"].get<double>()).c_str(), r["avg_ts"].get<double>(), gbs);
      if (bw > 0) std::printf(" = %.0f %% of the %.1f GB/s read bandwidth measured in this run", 100 * gbs / bw, bw);
    } else {
      const double g = r["gmacs"], peak = r["fma_peak_gmacs"];
      std::printf("prefill %s: %.2f GMAC per token x %.2f tok/s = %.1f GMAC/s", test.c_str(),
                  r["macs_per_token"].get<double>() / 1e9, r["avg_ts"].get<double>(), g);
      if (peak > 0) {
        std::printf(" = %.0f %% of the %.1f GMAC/s f32 FMA peak measured in this run", 100 * g / peak, peak);
        // The f32 peak bounds the exact (f32-activation) paths; 8-bit products (vpdpbusd) run past it.
        if (g > peak) std::printf(" (8-bit integer products are not bound by it)");
      }
    }
    // Storage reads: zero while the weights stay in the page cache; a model larger than the RAM reads here.
    if (r.contains("disk_read_bytes_per_token"))
      std::printf("; %s read from disk per token", human_bytes(r["disk_read_bytes_per_token"].get<double>()).c_str());
    std::printf("\n");
  }
  if (!profile) return;
  std::printf("\nms per token in each phase of the step (share of the test's time):\n\n| test | threads |");
  for (const auto& [name, field] : kPhases) std::printf(" %s |", name);
  std::printf(" other | parallel loops / token | serial |\n|---|---:|");
  for (size_t i = 0; i <= std::size(kPhases) + 2; ++i) std::printf("---:|");
  std::printf("\n");
  for (const json& r : rows) {
    const json& p = r["profile_ms_per_token"];
    double total = 0;
    for (const auto& [k, v] : p.items()) total += v.get<double>();
    std::printf("| %s | %d |", r["test"].get<std::string>().c_str(), r["n_threads"].get<int>());
    for (const auto& [name, field] : kPhases)
      std::printf(" %.3f (%.0f %%) |", p[name].get<double>(), total > 0 ? 100 * p[name].get<double>() / total : 0.0);
    std::printf(" %.3f (%.0f %%) | %.1f | %.1f %% |\n", p["other"].get<double>(),
                total > 0 ? 100 * p["other"].get<double>() / total : 0.0, r["parallel_loops_per_token"].get<double>(),
                100 * r["serial_share"].get<double>());
  }
  std::printf("\n(serial: the share of the test outside every parallel loop, on one thread; `groak bench --profile`"
              " times each loop)\n");
}

// CSV: one header, then one line per test; nested profile fields flattened as profile_<phase>_ms.
void print_csv(const std::vector<json>& rows) {
  std::vector<std::string> keys;
  for (const json& r : rows)
    for (const auto& [k, v] : r.items()) {
      std::vector<std::string> names;
      if (v.is_object())
        for (const auto& [pk, pv] : v.items()) names.push_back("profile_" + pk + "_ms");
      else
        names.push_back(k);
      for (const std::string& n : names)
        if (std::find(keys.begin(), keys.end(), n) == keys.end()) keys.push_back(n);
    }
  for (size_t i = 0; i < keys.size(); ++i) std::printf("%s%s", i ? "," : "", keys[i].c_str());
  std::printf("\n");
  for (const json& r : rows) {
    json flat;
    for (const auto& [k, v] : r.items()) {
      if (v.is_object())
        for (const auto& [pk, pv] : v.items()) flat["profile_" + pk + "_ms"] = pv;
      else
        flat[k] = v;
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      const json v = flat.value(keys[i], json());
      // Strings are quoted (a model file name may hold a comma); numbers as JSON writes them.
      std::printf("%s%s", i ? "," : "", v.is_null() ? "" : v.dump().c_str());
    }
    std::printf("\n");
  }
}

int run_bench_cli(BenchArgs& a, Job& job) {
  a.opt.cache_type = cache_type_named(a.engine.cache_type);
  if (job.size() > 1 && a.engine.thread_list.size() > 1)
    throw Error("several -t values run one after another in one process; under mpirun give one");
  Model m = job.load([&] {
    a.opt.kernels = &kernels_named(a.engine.kernels);
    return load_with_progress(a.model);
  });
  std::vector<int> threads = a.engine.thread_list;
  if (threads.empty()) threads.push_back(0);
  if (!job.leader()) return job.follow(m, threads[0], *a.opt.kernels);
  for (int& t : threads)
    if (t == 0) t = job.default_threads();
  std::fprintf(stderr, "bench: %s, warming up (the first pass reads the weights into memory)\n", m.format.c_str());
  std::vector<json> rows;
  for (int t : threads) {
    bool probed = false;  // the machine's ceilings, once per thread count, shown beside every test
    double read_gbs = 0, fma_gmacs = 0;
    auto run = [&](int64_t prompt, int64_t gen) {
      BenchOptions o = a.opt;
      o.threads = t;
      o.prompt = prompt;
      o.gen = gen;
      o.probes = a.opt.probes && !probed;
      std::fprintf(stderr, "bench: %s%lld, %d threads\n", prompt ? "pp" : "tg",
                   static_cast<long long>(prompt ? prompt : gen), t);
      BenchResult r = run_bench(m, o);
      if (o.probes) {
        read_gbs = r.read_gbs;
        fma_gmacs = r.fma_gmacs;
        probed = true;
      }
      r.read_gbs = read_gbs;
      r.fma_gmacs = fma_gmacs;
      rows.push_back(test_row(a, m, r, prompt > 0, prompt ? prompt : gen));
      if (job.size() > 1)
        rows.back()["tensor_parallel"] = {{"ranks", job.size()},
                                          {"comm_share", prompt ? r.pp_comm_share : r.tg_comm_share},
                                          {"all_reduces_per_token", r.tg_all_reduces_per_token}};
    };
    for (int64_t p : a.prompts)
      if (p > 0) run(p, 0);
    for (int64_t n : a.gens)
      if (n > 0) run(0, n);
  }
  if (a.output == "md") {
    print_md(rows, a.opt.profile);
    for (const json& r : rows)
      if (r.contains("tensor_parallel"))
        std::printf("tensor parallel %s: %d ranks, rank 0's time in all-reduces and gathers (waiting for the other "
                    "ranks included) %.0f %%, %.0f all-reduces per decoded token\n",
                    r["test"].get<std::string>().c_str(), r["tensor_parallel"]["ranks"].get<int>(),
                    100 * r["tensor_parallel"]["comm_share"].get<double>(),
                    r["tensor_parallel"]["all_reduces_per_token"].get<double>());
  } else if (a.output == "csv") {
    print_csv(rows);
  } else if (a.output == "json") {
    std::printf("%s\n", json(rows).dump(2).c_str());
  } else {  // jsonl
    for (const json& r : rows) std::printf("%s\n", r.dump().c_str());
  }
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
    // Lists as llama-bench takes them: -p 128,512 (or -p 128 -p 512) runs both.
    cmd.add_option("-p,--n-prompt", a->prompts, "prompt tokens of the pp test, or a comma-separated list (0 = skip)")
        ->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    cmd.add_option("-n,--n-gen", a->gens, "tokens of the tg test, or a comma-separated list (0 = skip)")
        ->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    cmd.add_option("-r,--repetitions", a->opt.reps, "repetitions of each test")->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd.add_option("-b,--batch-size", a->opt.batch, "tokens per forward pass in pp")->capture_default_str()
        ->check(CLI::Range(int64_t{1}, kMaxProductRows));
    cmd.add_flag("--no-probes", [a](int64_t) { a->opt.probes = false; }, "skip the bandwidth and FMA probes");
    cmd.add_option("-d,--depth", a->opt.depth, "tokens already in the context when each test starts")
        ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    cmd.add_option("-o,--output", a->output, "output format: md (a table and the ceilings), csv, json or jsonl "
                                             "(llama-bench's -o; machine-readable ones print only the rows)")
        ->capture_default_str()->check(CLI::IsMember({"md", "csv", "json", "jsonl"}));
    cmd.add_flag("--profile", a->opt.profile,
                 "time each phase of the step (embed, attention, router, experts, head, reduce) in the measured runs");
    add_engine_options(cmd, a->engine, nullptr, /*thread_list=*/true);  // the context is what the tests need
  };
  c.check = [a] {
    bool any = false;
    for (int64_t v : a->prompts) any = any || v > 0;
    for (int64_t v : a->gens) any = any || v > 0;
    if (!any) throw UsageError("-p and -n are both 0: nothing to measure");
  };
  c.run = [a](Job& job) { return run_bench_cli(*a, job); };
  return c;
}

}  // namespace groak::cli
