#include "kernels/probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "util/proc_file.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GROAK_HAVE_X86 1
#endif

namespace groak {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Sums 64-bit words: cheap enough per byte that memory, not the core, limits it.
uint64_t read_sum(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

#ifdef GROAK_HAVE_X86
// 32-byte loads into independent integer sums: one add per 32 bytes, far below what memory delivers.
// The share is read as kStreams interleaved sequential streams, as the weight kernels read rows: one
// stream alone leaves most of the memory system's parallelism unused on many cores.
constexpr size_t kStreams = 8;
__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint64_t* p, size_t n) {
  const size_t len = n / kStreams / 16 * 16;  // words per stream, whole 128-byte steps
  __m256i acc[kStreams];
  for (auto& a : acc) a = _mm256_setzero_si256();
  for (size_t i = 0; i < len; i += 16)
    for (size_t s = 0; s < kStreams; ++s) {
      const __m256i* q = reinterpret_cast<const __m256i*>(p + s * len + i);
      acc[s] = _mm256_add_epi64(acc[s], _mm256_add_epi64(_mm256_add_epi64(_mm256_load_si256(q), _mm256_load_si256(q + 1)),
                                                         _mm256_add_epi64(_mm256_load_si256(q + 2), _mm256_load_si256(q + 3))));
    }
  __m256i a = acc[0];
  for (size_t s = 1; s < kStreams; ++s) a = _mm256_add_epi64(a, acc[s]);
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), a);
  uint64_t sum = out[0] + out[1] + out[2] + out[3];
  for (size_t i = kStreams * len; i < n; ++i) sum += p[i];
  return sum;
}

// 12 independent FMA chains of 8 lanes: enough to cover the FMA latency on every current x86 core.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iters) {
  __m256 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
  __m256 s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, acc[k]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}
// The same with 16 lanes: a core with 512-bit FMA units (this machine's kind) retires twice the MACs of
// the 8-lane loop, and its exact prefill tiles use them (avx512_f32.cpp), so that is its peak.
__attribute__((target("avx512f"))) float fma_loop16(int64_t iters) {
  __m512 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_fmadd_ps(acc[k], m, c);
  __m512 s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}
bool simd_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool simd_fma16() { return __builtin_cpu_supports("avx512f"); }
#endif

float scalar_fma_loop(int64_t iters) {
  float acc[8];
  for (int k = 0; k < 8; ++k) acc[k] = static_cast<float>(k) * 1e-3f;
  for (int64_t i = 0; i < iters; ++i)
    for (float& a : acc) a = a * 0.999999f + 1e-7f;
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

}  // namespace

namespace {

// The first number in a file ("max" and unreadable files: 0).
uint64_t number_in(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  return in >> v ? v : 0;
}

// The memory limit of this process's cgroup, v2 or v1 (0 = none found). Inside a cgroup namespace the
// path is "/", so the files at the root of the mount are the ones to read.
uint64_t cgroup_limit() {
  std::ifstream in("/proc/self/cgroup");
  uint64_t limit = 0;
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::vector<std::string> files;
    if (controllers.empty()) files = {"/sys/fs/cgroup" + path + "/memory.max", "/sys/fs/cgroup/memory.max"};
    else if (("," + controllers + ",").find(",memory,") != std::string::npos)
      files = {"/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (const std::string& f : files)
      if (const uint64_t v = number_in(f); v > 0) {
        // v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages).
        if (v < (uint64_t{1} << 60) && (limit == 0 || v < limit)) limit = v;
        break;
      }
  }
  return limit;
}

}  // namespace

size_t memory_budget_bytes() {
  uint64_t available = proc_field("/proc/meminfo", "MemAvailable:").value_or(0) * 1024;
  const uint64_t cg = cgroup_limit();
  if (cg > 0 && (available == 0 || cg < available)) available = cg;
  return static_cast<size_t>(available);
}

double probe_read_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  if (bytes == 0) {
    bytes = size_t{512} << 20;
    if (const size_t budget = memory_budget_bytes(); budget > 0) bytes = std::min(bytes, budget / 8);
    if (bytes < (size_t{64} << 20)) return 0;
  }
  const size_t words = bytes / 8 / 64 * 64;  // whole 512-byte pieces per thread start 32-byte aligned
  std::unique_ptr<uint64_t, void (*)(void*)> buf(static_cast<uint64_t*>(std::aligned_alloc(64, words * 8)), std::free);
  if (!buf) return 0;
#ifdef GROAK_HAVE_X86
  const bool simd = __builtin_cpu_supports("avx2");
#else
  const bool simd = false;
#endif
  // Touch every page from the thread that will read it, so first-touch places it near that thread.
  const int T = pool.size();
  pool.run(T, [&](int64_t t, int) {
    const size_t b = words * t / T, e = words * (t + 1) / T;
    for (size_t i = b; i < e; ++i) buf.get()[i] = i;
  });
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    pool.run(T, [&](int64_t t, int) {
      const size_t b = words / 4 * t / T * 4, e = words / 4 * (t + 1) / T * 4;
#ifdef GROAK_HAVE_X86
      if (simd) {
        sink += read_sum_avx2(buf.get() + b, e - b);
        return;
      }
#endif
      sink += read_sum(buf.get() + b, e - b);
    });
    best = std::max(best, static_cast<double>(words * 8) / (now_s() - t0) / 1e9);
  }
  return best;
}

double probe_fma_gmacs(ThreadPool& pool) {
  const int T = pool.size();
  std::atomic<uint64_t> sink{0};
  double best = 0;
#ifdef GROAK_HAVE_X86
  if (simd_fma()) {
    constexpr int64_t kIters = 20'000'000;
    const bool wide = simd_fma16();
    const double macs_per_iter = 12.0 * (wide ? 16 : 8);
    for (int r = 0; r < 3; ++r) {
      const double t0 = now_s();
      pool.run(T, [&](int64_t, int) {
        sink += static_cast<uint64_t>((wide ? fma_loop16(kIters) : fma_loop(kIters)) != 0);
      });
      best = std::max(best, macs_per_iter * kIters * T / (now_s() - t0) / 1e9);
    }
    return best;
  }
#endif
  constexpr int64_t kIters = 20'000'000;
  for (int r = 0; r < 3; ++r) {
    const double t0 = now_s();
    pool.run(T, [&](int64_t, int) { sink += static_cast<uint64_t>(scalar_fma_loop(kIters) != 0); });
    best = std::max(best, 8.0 * kIters * T / (now_s() - t0) / 1e9);
  }
  return best;
}

}  // namespace groak
