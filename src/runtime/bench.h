// `groak bench`: llama-bench's two tests (pp: a prompt of P tokens in one go; tg: N tokens decoded one at
// a time from an empty context), repeated, with the machine's own ceilings measured in the same run.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "model/grok.h"
#include "model/weights.h"

namespace groak {

struct BenchOptions {
  int64_t prompt = 512;        // -p: prompt tokens (0 = skip the pp test)
  int64_t gen = 128;           // -n: generated tokens (0 = skip the tg test)
  int reps = 3;                // -r: repetitions of each test (after one warm-up)
  int threads = 0;             // -t: 0 = every core
  int64_t batch = 512;         // tokens per forward pass in pp
  const Kernels* kernels = nullptr;  // null = the fastest for this CPU
  bool probes = true;          // measure read bandwidth and the FMA peak
  int64_t depth = 0;           // -d: tokens already in the context before each test (attention at depth)
  KvType cache_type = KvType::F32;
  bool profile = false;        // --profile: time each phase of the forward pass in the measured runs
};

struct BenchStat {
  double mean = 0, stddev = 0;  // tokens per second over the repetitions
};

struct BenchResult {
  BenchStat pp, tg;
  int threads = 0;
  std::string kernels;
  uint64_t bytes_per_token = 0;     // weights one decoded token reads
  double macs_per_prompt_token = 0; // multiply-adds of the matrix products per prompt token
  double read_gbs = 0;              // probe: read bandwidth of this machine, all threads
  double fma_gmacs = 0;             // probe: peak f32 multiply-adds per second, all threads
  // Tensor parallelism (rank 0's view): share of the test's time spent in all-reduces and gathers
  // (waiting for slower ranks included), and all-reduces per decoded token.
  double pp_comm_share = 0, tg_comm_share = 0, tg_all_reduces_per_token = 0;
  // --profile: seconds per phase summed over the measured repetitions, and the tests' own seconds.
  PhaseTimes pp_phases, tg_phases;
  double pp_seconds = 0, tg_seconds = 0;
  // Bytes this process had read from storage (not the page cache) per token of each test, over the measured
  // repetitions: what a model larger than the RAM costs in disk reads. Empty where /proc/self/io is
  // unreadable (not Linux, or a restricted /proc).
  std::optional<double> pp_disk_bytes_per_token, tg_disk_bytes_per_token;
  // --profile: the thread pool over the measured repetitions: loops that woke the workers, and seconds
  // inside them (the rest of the test ran on one thread: its serial part).
  ThreadPool::Stats pp_pool, tg_pool;
};

BenchResult run_bench(const Model& model, const BenchOptions& opt);

// `read_bytes` of /proc/self/io: bytes the whole process (every thread) caused to be fetched from storage,
// page faults on mapped files included; empty where it cannot be read.
std::optional<uint64_t> process_disk_read_bytes();

// Multiply-adds of every matrix product one token needs (attention projections, router, the selected
// experts), without the LM head and the attention over the cache.
double macs_per_token(const Model& model);

}  // namespace groak
