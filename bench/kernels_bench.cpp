// Google Benchmark micro-benchmarks of the matrix-product kernels at Grok-1's shapes, through the same
// threaded ops the model calls. Each reports bytes of weights streamed per second (GB/s) for decode
// (one row) and multiply-adds per second for prefill (many rows). Weights are synthetic (their values
// do not change the speed; the i-quants and ternary types, which groak cannot write, are random blocks); every
// matrix is larger than the last-level cache, as the real ones are.
//
//   build/groak_kernel_bench [--benchmark_filter=decode] [--threads=N]
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/context.h"
#include "kernels/ops.h"
#include "kernels/probe.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace groak {
namespace {

int g_threads = 0;  // --threads=N (0 = every core)

Context& context() {
  static Context ctx(g_threads);
  return ctx;
}

// The types groak reads but does not write, by benchmark name (null for the others).
const GgmlType* read_only_type(const std::string& kind) {
  static const std::pair<const char*, GgmlType> kTypes[] = {
      {"iq1_s", GgmlType::IQ1_S},   {"iq1_m", GgmlType::IQ1_M},   {"iq2_xxs", GgmlType::IQ2_XXS},
      {"iq2_xs", GgmlType::IQ2_XS}, {"iq2_s", GgmlType::IQ2_S},   {"iq3_xxs", GgmlType::IQ3_XXS},
      {"iq3_s", GgmlType::IQ3_S},   {"iq4_nl", GgmlType::IQ4_NL}, {"iq4_xs", GgmlType::IQ4_XS},
      {"tq1_0", GgmlType::TQ1_0},   {"tq2_0", GgmlType::TQ2_0}};
  for (const auto& [name, t] : kTypes)
    if (kind == name) return &t;
  return nullptr;
}

struct Weights {
  std::vector<uint8_t> bytes;
  Matrix m;
};

// A d → f projection (Grok-1: 6144 → 32768, one expert's `linear`) in the given storage.
Weights make(const std::string& kind, int64_t n_in, int64_t n_out) {
  if (kind.size() > 3 && kind.compare(kind.size() - 3, 3, "_r8") == 0) {  // q8_0_r8, q4_0_r8: the repacked copy
    const Weights src = make(kind.substr(0, kind.size() - 3), n_in, n_out);
    Weights w;
    w.bytes.resize(rows8_bytes(src.m));
    rows8_pack(src.m, 0, (n_out + 7) / 8, w.bytes.data());
    w.m = rows8_view(src.m, w.bytes.data());
    return w;
  }
  Weights w;
  std::mt19937 g(1);
  Matrix& m = w.m;
  m.n_in = n_in;
  m.n_out = n_out;
  if (kind == "xai_int8") {
    m.format = WeightFormat::XaiInt8;
    m.layout = Layout::InOut;
    m.scale_blocks = 1;
    w.bytes.resize(static_cast<size_t>(n_in * n_out) + 2 * static_cast<size_t>(n_out) + 64);
    for (auto& b : w.bytes) b = static_cast<uint8_t>(g());
    for (size_t i = static_cast<size_t>(n_in * n_out); i < w.bytes.size(); i += 2) w.bytes[i + 1] = 0x3c;  // bf16 ~0.01
    m.data = w.bytes.data();
    m.scales = w.bytes.data() + n_in * n_out;
    return w;
  }
  m.layout = Layout::OutIn;
  if (kind == "f32") {
    m.format = WeightFormat::F32;
    w.bytes.resize(static_cast<size_t>(n_in * n_out) * 4);
    float* f = reinterpret_cast<float*>(w.bytes.data());
    for (int64_t i = 0; i < n_in * n_out; ++i) f[i] = static_cast<float>(g() % 1000) * 1e-4f;
    m.data = w.bytes.data();
    return w;
  }
  m.format = WeightFormat::Ggml;
  if (const GgmlType* t = read_only_type(kind)) {  // no quantizer: random blocks with a moderate f16 scale d
    m.ggml = *t;
    w.bytes.resize(row_bytes(m.ggml, n_in) * static_cast<size_t>(n_out));
    for (auto& b : w.bytes) b = static_cast<uint8_t>(g());
    const size_t bs = type_size(m.ggml);
    const uint16_t d = f32_to_fp16(0.01f);
    for (size_t k = 0; k < w.bytes.size(); k += bs) {
      uint8_t* b = w.bytes.data() + k;
      if (m.ggml == GgmlType::IQ1_M) {  // d is spread over the top nibbles of the 4 scale words at byte 48
        for (int j = 0; j < 4; ++j) b[49 + 2 * j] = static_cast<uint8_t>((b[49 + 2 * j] & 0x0f) | (((d >> (4 * j)) & 0xf) << 4));
      } else {
        std::memcpy(b + (m.ggml == GgmlType::TQ1_0 ? 52 : m.ggml == GgmlType::TQ2_0 ? 64 : 0), &d, 2);
      }
    }
    m.data = w.bytes.data();
    return w;
  }
  m.ggml = kind == "q8_0" ? GgmlType::Q8_0 : kind == "q4_0" ? GgmlType::Q4_0 : kind == "q2_k" ? GgmlType::Q2_K
         : kind == "q3_k" ? GgmlType::Q3_K : kind == "q4_k" ? GgmlType::Q4_K : kind == "q5_k" ? GgmlType::Q5_K
         : kind == "q6_k" ? GgmlType::Q6_K : kind == "f16" ? GgmlType::F16 : GgmlType::BF16;
  const size_t rb = row_bytes(m.ggml, n_in);
  w.bytes.resize(rb * static_cast<size_t>(n_out));
  // Every one of these types has a quantizer: one random row, quantised once, repeated for every output
  // (quantising 32768 rows of 6144 with the k-quants' scale searches would take seconds per kind).
  std::vector<float> row(static_cast<size_t>(n_in));
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (auto& v : row) v = nd(g);
  quantize_row(m.ggml, row.data(), w.bytes.data(), n_in);
  for (int64_t o = 1; o < n_out; ++o) std::memcpy(w.bytes.data() + rb * static_cast<size_t>(o), w.bytes.data(), rb);
  m.data = w.bytes.data();
  return w;
}

void run_product(benchmark::State& state, const std::string& kind, int64_t n_in, int64_t n_out) {
  const int64_t rows = state.range(0);
  static std::string cached_kind;
  static Weights w;
  if (cached_kind != kind || w.m.n_in != n_in || w.m.n_out != n_out) {
    w = make(kind, n_in, n_out);
    cached_kind = kind;
  }
  std::vector<float> x(static_cast<size_t>(rows * n_in)), y(static_cast<size_t>(rows * n_out));
  std::mt19937 g(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(g);
  for (auto _ : state) {
    matmul(context(), w.m, x.data(), y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = static_cast<double>(w.m.data_bytes() + w.m.scale_bytes());
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(rows * n_in * n_out) / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  std::vector<std::string> kinds = {"xai_int8", "q8_0", "q4_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "f16", "bf16", "f32",
                           "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq4_nl", "iq4_xs", "tq1_0",
                           "tq2_0"};
  if (fast_kernels().reads_rows8) kinds.insert(kinds.begin() + 3, {"q8_0_r8", "q4_0_r8"});  // kernels/repack.h
  for (const std::string& k : kinds) {
    benchmark::RegisterBenchmark(("decode/" + k).c_str(), [k](benchmark::State& s) { run_product(s, k, 6144, 32768); })
        ->Arg(1)
        ->Arg(2)
        ->Arg(3)
        ->Arg(4)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    // The same rows from L2 (6144 → 128): what the kernel computes per second when memory is no limit.
    benchmark::RegisterBenchmark(("decode_l2/" + k).c_str(), [k](benchmark::State& s) { run_product(s, k, 6144, 128); })
        ->Arg(1)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("prefill/" + k).c_str(), [k](benchmark::State& s) { run_product(s, k, 6144, 4096); })
        ->Arg(128)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    // An expert's down projection (32768 inputs; 2048 of its 6144 outputs): panels of wide rows.
    benchmark::RegisterBenchmark(("prefill_down/" + k).c_str(), [k](benchmark::State& s) { run_product(s, k, 32768, 2048); })
        ->Arg(128)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  // The quantizers (what `groak convert` spends its time in), one thread: values quantised per second,
  // without (Arg 0) and with (Arg 1) an importance matrix. GROAK_KERNELS=reference runs the scalar searches.
  const std::pair<const char*, GgmlType> kQuantTypes[] = {
      {"q4_0", GgmlType::Q4_0}, {"q4_1", GgmlType::Q4_1}, {"q5_0", GgmlType::Q5_0}, {"q5_1", GgmlType::Q5_1},
      {"q8_0", GgmlType::Q8_0}, {"q2_k", GgmlType::Q2_K}, {"q3_k", GgmlType::Q3_K}, {"q4_k", GgmlType::Q4_K},
      {"q5_k", GgmlType::Q5_K}, {"q6_k", GgmlType::Q6_K}, {"iq4_nl", GgmlType::IQ4_NL}, {"iq4_xs", GgmlType::IQ4_XS},
      {"iq3_s", GgmlType::IQ3_S}, {"iq3_xxs", GgmlType::IQ3_XXS}, {"iq2_s", GgmlType::IQ2_S}, {"iq2_xs", GgmlType::IQ2_XS},
      {"iq2_xxs", GgmlType::IQ2_XXS}, {"iq1_m", GgmlType::IQ1_M}, {"iq1_s", GgmlType::IQ1_S}, {"tq1_0", GgmlType::TQ1_0},
      {"tq2_0", GgmlType::TQ2_0}};
  for (const auto& [name, type] : kQuantTypes) {
    const GgmlType t = type;
    benchmark::RegisterBenchmark((std::string("quantize/") + name).c_str(), [t](benchmark::State& s) {
      constexpr int64_t kRows = 16, kCols = 6144;  // 16 rows of Grok-1's d_model
      std::mt19937 g(3);
      std::normal_distribution<float> gauss(0.f, 0.02f);
      std::uniform_real_distribution<float> uni(0.f, 4.f);
      std::vector<float> x(static_cast<size_t>(kRows * kCols)), imatrix(static_cast<size_t>(kCols));
      for (float& v : x) v = gauss(g);
      for (float& v : imatrix) v = uni(g);
      std::vector<uint8_t> out(static_cast<size_t>(kRows * kCols) * 2);
      if (!s.range(0) && quantize_requires_imatrix(t)) return s.SkipWithError("needs an importance matrix");
      const float* qw = s.range(0) ? imatrix.data() : nullptr;
      for (auto _ : s) {
        quantize_rows(t, x.data(), out.data(), kRows, kCols, qw);
        benchmark::DoNotOptimize(out.data());
      }
      s.counters["Mvalues/s"] = benchmark::Counter(static_cast<double>(kRows * kCols) * 1e-6,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    })
        ->Arg(0)
        ->Arg(1)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("probe/read_bandwidth", [](benchmark::State& s) {
    double gbs = 0;
    for (auto _ : s) gbs = probe_read_bandwidth(context().pool(), size_t{256} << 20, 1);
    s.counters["GB/s"] = gbs;
  })->Iterations(3)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("probe/fma_peak", [](benchmark::State& s) {
    double g = 0;
    for (auto _ : s) g = probe_fma_gmacs(context().pool());
    s.counters["GMAC/s"] = g;
  })->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace groak

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      groak::g_threads = std::atoi(argv[i] + 10);
    else
      rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  groak::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
