// groak's quantizers against llama.cpp's: every type groak can write (Q4_0 … Q8_0, Q2_K … Q6_K, TQ1_0,
// TQ2_0), with and without an importance matrix, must produce exactly the bytes of ggml_quantize_chunk
// of llama.cpp c392e5094 (loaded at run time through ggml_peer.h; those tests skip without a build).
// The tests after them need no llama.cpp: round-trip error bounds, determinism, row independence, which
// types read the imatrix, and digests of fixed inputs (checked against ggml by the peer test) so that CI
// without llama.cpp still notices a drift.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml_peer.h"
#include "kernels/quant.h"

namespace groak {
namespace {

// The types with quantizers, in ggml's order.
const GgmlType kQuantizedTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                    GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                    GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::TQ1_0, GgmlType::TQ2_0};

// ggml_quantize_chunk ignores the imatrix for these (no weighted search exists).
bool ignores_imatrix(GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0; }

// ---------------------------------------------------------------------------------------------------------
// Inputs

// Row shapes: rows of distribution kind k, chosen to reach every branch of the searches (all-zero and
// constant groups, groups below GROUP_MAX_EPS, a single dominant value, f16 overflow of d, x² overflow).
enum class Dist {
  Gaussian, HeavyTailed, AllEqual, AllEqualNegative, Zeros, Tiny, Subnormal, Huge, Overflowing, OneOutlier,
  UniformPositive, Sparse, Ternary, BlockScaled,
};
constexpr Dist kDists[] = {Dist::Gaussian,  Dist::HeavyTailed, Dist::AllEqual,    Dist::AllEqualNegative,
                           Dist::Zeros,     Dist::Tiny,        Dist::Subnormal,   Dist::Huge,
                           Dist::Overflowing, Dist::OneOutlier, Dist::UniformPositive, Dist::Sparse,
                           Dist::Ternary,   Dist::BlockScaled};

const char* dist_name(Dist d) {
  switch (d) {
    case Dist::Gaussian: return "gaussian";
    case Dist::HeavyTailed: return "heavy-tailed (student t, 1.5 dof)";
    case Dist::AllEqual: return "all equal (0.37)";
    case Dist::AllEqualNegative: return "all equal (-2.5)";
    case Dist::Zeros: return "zeros";
    case Dist::Tiny: return "tiny (gaussian 1e-7)";
    case Dist::Subnormal: return "subnormal (gaussian 1e-39)";
    case Dist::Huge: return "huge (gaussian 1e6: f16 d overflows)";
    case Dist::Overflowing: return "overflowing (gaussian 1e19: x^2 overflows)";
    case Dist::OneOutlier: return "one outlier per row";
    case Dist::UniformPositive: return "uniform [0, 1)";
    case Dist::Sparse: return "sparse (90% zeros)";
    case Dist::Ternary: return "ternary {-0.7, 0, 0.7}";
    case Dist::BlockScaled: return "gaussian, log-uniform scale per 32";
  }
  return "?";
}

void fill_row(Dist d, std::mt19937& g, float* x, int64_t n) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  std::student_t_distribution<float> heavy(1.5f);
  float block_scale = 1.f;
  for (int64_t i = 0; i < n; ++i) {
    float& v = x[i];
    switch (d) {
      case Dist::Gaussian: v = normal(g); break;
      case Dist::HeavyTailed: v = heavy(g); break;
      case Dist::AllEqual: v = 0.37f; break;
      case Dist::AllEqualNegative: v = -2.5f; break;
      case Dist::Zeros: v = 0.f; break;
      case Dist::Tiny: v = normal(g) * 1e-7f; break;
      case Dist::Subnormal: v = normal(g) * 1e-39f; break;
      case Dist::Huge: v = normal(g) * 1e6f; break;
      case Dist::Overflowing: v = normal(g) * 1e19f; break;
      case Dist::OneOutlier: v = normal(g) * 0.02f; break;
      case Dist::UniformPositive: v = uniform(g); break;
      case Dist::Sparse: v = uniform(g) < 0.9f ? 0.f : normal(g); break;
      case Dist::Ternary: v = 0.7f * static_cast<float>(static_cast<int>(uniform(g) * 3.f) - 1); break;
      case Dist::BlockScaled:
        if (i % 32 == 0) block_scale = std::pow(10.f, uniform(g) * 6.f - 3.f);
        v = normal(g) * block_scale;
        break;
    }
  }
  if (d == Dist::OneOutlier) x[std::uniform_int_distribution<int64_t>(0, n - 1)(g)] = -10.f;
}

// Importance matrices: none, moderate, very wide range, and half the columns zero (llama-imatrix writes
// zeros for columns no token reached, e.g. an expert never routed to).
enum class ImatrixCase { None, Moderate, WideRange, HalfZero };
constexpr ImatrixCase kImatrices[] = {ImatrixCase::None, ImatrixCase::Moderate, ImatrixCase::WideRange, ImatrixCase::HalfZero};

const char* imatrix_name(ImatrixCase m) {
  switch (m) {
    case ImatrixCase::None: return "no imatrix";
    case ImatrixCase::Moderate: return "imatrix exp(1) + 0.01";
    case ImatrixCase::WideRange: return "imatrix log-uniform 1e-6..1e6";
    case ImatrixCase::HalfZero: return "imatrix with half zeros";
  }
  return "?";
}

std::vector<float> make_imatrix(ImatrixCase m, std::mt19937& g, int64_t n) {
  std::vector<float> w;
  if (m == ImatrixCase::None) return w;
  std::exponential_distribution<float> expo(1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  w.resize(static_cast<size_t>(n));
  for (float& v : w) {
    switch (m) {
      case ImatrixCase::Moderate: v = expo(g) + 0.01f; break;
      case ImatrixCase::WideRange: v = std::pow(10.f, uniform(g) * 12.f - 6.f); break;
      case ImatrixCase::HalfZero: v = uniform(g) < 0.5f ? 0.f : expo(g); break;
      case ImatrixCase::None: break;
    }
  }
  return w;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t n,
                              const float* imatrix) {
  std::vector<uint8_t> q(row_bytes(t, n) * static_cast<size_t>(rows));
  quantize_rows(t, x.data(), q.data(), rows, n, imatrix);
  return q;
}

std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    s += buf;
  }
  return s;
}

// A fixed input made with a plain LCG (the same with every standard library): rows × n values with
// per-256 scales, a few outliers and an imatrix with a wide range.
struct FixedInput {
  std::vector<float> x, imatrix;
};
FixedInput fixed_input(int64_t rows, int64_t n) {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto uniform = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(s >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  };
  FixedInput in;
  in.x.resize(static_cast<size_t>(rows * n));
  for (int64_t i = 0; i < rows * n; ++i) {
    const float block_scale = static_cast<float>((i / 256) % 5 + 1) * 0.37f;
    in.x[static_cast<size_t>(i)] = (uniform() * 2.0f - 1.0f) * block_scale * ((i % 61 == 0) ? 6.0f : 1.0f);
  }
  in.imatrix.resize(static_cast<size_t>(n));
  for (float& w : in.imatrix) w = 0.01f + 4.f * uniform() * uniform();
  return in;
}

uint64_t fnv1a(const std::vector<uint8_t>& b) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t v : b) h = (h ^ v) * 1099511628211ull;
  return h;
}

constexpr int64_t kFixedRows = 4, kFixedN = 4096;

// Digests of quantize_rows(t, fixed_input(4, 4096)) without and with its imatrix. Written by groak and
// checked against ggml_quantize_chunk of llama.cpp c392e5094 by QuantizeGgml.FixedInputDigests (which
// fails, naming the type, if ggml writes anything else).
struct Digest {
  GgmlType t;
  uint64_t plain, weighted;
};
const Digest kDigests[] = {
    {GgmlType::Q4_0, 0x3ceace3b9ee542b0ull, 0x6b20c2cd567b1bf5ull},
    {GgmlType::Q4_1, 0x9aabb2e785afd914ull, 0xb7f1150e0d1f5c27ull},
    {GgmlType::Q5_0, 0xaefc0f9c1add31c0ull, 0x0eac1099edfe9601ull},
    {GgmlType::Q5_1, 0x5c3b564e97bc05dcull, 0x9a90251f673d3501ull},
    {GgmlType::Q8_0, 0x6f6cbd8c1ca7c007ull, 0x6f6cbd8c1ca7c007ull},
    {GgmlType::Q2_K, 0x46ff2fed378cf768ull, 0xc9aa8b2c85da4682ull},
    {GgmlType::Q3_K, 0x78e8d6fab4cdb68bull, 0x43fc9a2c6d2ceaa8ull},
    {GgmlType::Q4_K, 0x4ca909f23ce7aa13ull, 0x0cb0ef713279efceull},
    {GgmlType::Q5_K, 0x3894084c32edcd75ull, 0x732865e7bf6f4ee7ull},
    {GgmlType::Q6_K, 0xcf6688d3198e37d9ull, 0x8868fcb5fe4c5477ull},
    {GgmlType::TQ1_0, 0x787796ccafe5e219ull, 0x787796ccafe5e219ull},
    {GgmlType::TQ2_0, 0x92359ea13695176cull, 0x92359ea13695176cull},
};

// ---------------------------------------------------------------------------------------------------------
// Against llama.cpp

class QuantizeGgml : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantizeGgml, ByteIdenticalToQuantizeChunk) {
  GROAK_REQUIRE_GGML_PEER(peer);
  const GgmlType t = GetParam();
  const size_t block_bytes = type_size(t);
  std::mt19937 g(1000 + static_cast<uint32_t>(t));
  struct Shape {
    int64_t n, rows;
  };
  // 6144 is a Grok-1 row (d_model); 32768 a d_ff row, once per case.
  const Shape shapes[] = {{256, 6}, {512, 6}, {6144, 2}, {32768, 1}};
  int64_t rows_checked = 0, rows_differing = 0;
  for (ImatrixCase m : kImatrices) {
    for (Dist d : kDists) {
      for (const Shape& s : shapes) {
        std::vector<float> x(static_cast<size_t>(s.rows * s.n));
        for (int64_t r = 0; r < s.rows; ++r) fill_row(d, g, x.data() + r * s.n, s.n);
        const std::vector<float> w = make_imatrix(m, g, s.n);
        const float* imatrix = w.empty() ? nullptr : w.data();
        const std::vector<uint8_t> ours = quantize(t, x, s.rows, s.n, imatrix);
        std::vector<uint8_t> theirs(ours.size(), 0xA5);
        const size_t written = peer->quantize_chunk(static_cast<int>(t), x.data(), theirs.data(), 0, s.rows, s.n, imatrix);
        ASSERT_EQ(written, ours.size()) << type_name(t);
        const size_t rb = row_bytes(t, s.n);
        for (int64_t r = 0; r < s.rows; ++r, ++rows_checked) {
          const uint8_t* a = ours.data() + r * rb;
          const uint8_t* b = theirs.data() + r * rb;
          if (std::memcmp(a, b, rb) == 0) continue;
          if (++rows_differing > 3) continue;  // report the first few only
          size_t k = 0;
          while (a[k] == b[k]) ++k;
          const size_t blk = k / block_bytes;
          ADD_FAILURE() << type_name(t) << ", " << dist_name(d) << ", " << imatrix_name(m) << ", n_per_row " << s.n
                        << ", row " << r << ": first difference in block " << blk << " at byte " << k % block_bytes
                        << "\n  groak " << hex(a + blk * block_bytes, block_bytes)
                        << "\n  ggml  " << hex(b + blk * block_bytes, block_bytes)
                        << "\n  (the quantizer no longer follows ggml-quants.c's arithmetic: compare the search or "
                           "packing of this type with ggml's, and check the file is built with -ffp-contract=off)";
        }
      }
    }
  }
  std::printf("%s: %lld rows compared with %s, %lld differ\n", type_name(t), static_cast<long long>(rows_checked),
              peer->library.c_str(), static_cast<long long>(rows_differing));
  EXPECT_EQ(rows_differing, 0) << type_name(t);
}

TEST_P(QuantizeGgml, FixedInputDigests) {
  GROAK_REQUIRE_GGML_PEER(peer);
  const GgmlType t = GetParam();
  const FixedInput in = fixed_input(kFixedRows, kFixedN);
  for (const Digest& dg : kDigests) {
    if (dg.t != t) continue;
    for (const float* imatrix : {static_cast<const float*>(nullptr), in.imatrix.data()}) {
      std::vector<uint8_t> theirs(row_bytes(t, kFixedN) * kFixedRows);
      peer->quantize_chunk(static_cast<int>(t), in.x.data(), theirs.data(), 0, kFixedRows, kFixedN, imatrix);
      EXPECT_EQ(fnv1a(theirs), imatrix ? dg.weighted : dg.plain)
          << type_name(t) << (imatrix ? " with" : " without") << " imatrix: kDigests no longer matches ggml";
    }
    return;
  }
  FAIL() << type_name(t) << " has no row in kDigests";
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizeGgml, ::testing::ValuesIn(kQuantizedTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return std::string(type_name(i.param)); });

// ---------------------------------------------------------------------------------------------------------
// Without llama.cpp

TEST(QuantizeDigests, FixedInputMatchesGgmlBytes) {
  const FixedInput in = fixed_input(kFixedRows, kFixedN);
  for (const Digest& dg : kDigests) {
    const uint64_t plain = fnv1a(quantize(dg.t, in.x, kFixedRows, kFixedN, nullptr));
    const uint64_t weighted = fnv1a(quantize(dg.t, in.x, kFixedRows, kFixedN, in.imatrix.data()));
    EXPECT_EQ(plain, dg.plain) << type_name(dg.t) << " without imatrix no longer writes ggml's bytes";
    EXPECT_EQ(weighted, dg.weighted) << type_name(dg.t) << " with imatrix no longer writes ggml's bytes";
  }
}

struct RoundTripError {
  double rel_rmse;       // sqrt(Σ e²/Σ x²)
  double weighted_rmse;  // sqrt(Σ w·e² / Σ w·x²), w = the imatrix (1 when none)
};

RoundTripError round_trip(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t n, const float* imatrix,
                          const std::vector<float>& weights) {
  const std::vector<uint8_t> q = quantize(t, x, rows, n, imatrix);
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t, q.data() + r * row_bytes(t, n), y.data() + r * n, n);
  double e2 = 0, x2 = 0, we2 = 0, wx2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = static_cast<double>(x[i]) - y[i], w = weights[i % static_cast<size_t>(n)];
    e2 += e * e;
    x2 += static_cast<double>(x[i]) * x[i];
    we2 += w * e * e;
    wx2 += w * static_cast<double>(x[i]) * x[i];
  }
  return {std::sqrt(e2 / x2), std::sqrt(we2 / wx2)};
}

// Relative RMS error of quantize → dequantize on N(0, 1) rows, per type, about step/sqrt(12) of each
// format; bounds are the measured values (printed) plus ~20%, so a broken search or packing fails.
TEST(QuantizeRoundTrip, RelativeErrorPerType) {
  struct Bound {
    GgmlType t;
    double plain, weighted;
  };
  // Measured (libstdc++'s normal_distribution): Q4_0 0.086/0.083 (plain/with imatrix), Q4_1 0.078/0.073,
  // Q5_0 0.042/0.041, Q5_1 0.038/0.035, Q8_0 0.0053, Q2_K 0.296/0.285, Q3_K 0.151/0.150, Q4_K 0.071/0.074,
  // Q5_K 0.036/0.037, Q6_K 0.0177/0.0182; TQ1_0/TQ2_0 0.804 (ternary is not meant for gaussian data).
  const Bound bounds[] = {
      {GgmlType::Q4_0, 0.10, 0.10},    {GgmlType::Q4_1, 0.094, 0.088},  {GgmlType::Q5_0, 0.051, 0.049},
      {GgmlType::Q5_1, 0.045, 0.043},  {GgmlType::Q8_0, 0.0064, 0.0064}, {GgmlType::Q2_K, 0.355, 0.345},
      {GgmlType::Q3_K, 0.18, 0.18},    {GgmlType::Q4_K, 0.085, 0.088},  {GgmlType::Q5_K, 0.044, 0.044},
      {GgmlType::Q6_K, 0.0213, 0.022}, {GgmlType::TQ1_0, 0.85, 0.85},   {GgmlType::TQ2_0, 0.85, 0.85},
  };
  constexpr int64_t kRows = 16, kN = 1024;
  std::mt19937 g(7);
  std::vector<float> x(kRows * kN);
  fill_row(Dist::Gaussian, g, x.data(), kRows * kN);
  const std::vector<float> imatrix = make_imatrix(ImatrixCase::Moderate, g, kN);
  const std::vector<float> ones(kN, 1.f);
  for (const Bound& b : bounds) {
    const double plain = round_trip(b.t, x, kRows, kN, nullptr, ones).rel_rmse;
    const double weighted = round_trip(b.t, x, kRows, kN, imatrix.data(), ones).rel_rmse;
    std::printf("%-6s relative rmse %.5f, with imatrix %.5f\n", type_name(b.t), plain, weighted);
    EXPECT_LT(plain, b.plain) << type_name(b.t);
    EXPECT_LT(weighted, b.weighted) << type_name(b.t);
  }
}

// The point of an imatrix: the error weighted by column importance goes down (summed over many rows; a
// single block may go either way).
TEST(QuantizeRoundTrip, ImatrixLowersImportanceWeightedError) {
  constexpr int64_t kRows = 16, kN = 1024;
  std::mt19937 g(8);
  std::vector<float> x(kRows * kN);
  fill_row(Dist::Gaussian, g, x.data(), kRows * kN);
  const std::vector<float> imatrix = make_imatrix(ImatrixCase::WideRange, g, kN);
  for (GgmlType t : kQuantizedTypes) {
    if (ignores_imatrix(t)) continue;
    const double plain = round_trip(t, x, kRows, kN, nullptr, imatrix).weighted_rmse;
    const double weighted = round_trip(t, x, kRows, kN, imatrix.data(), imatrix).weighted_rmse;
    std::printf("%-6s importance-weighted relative rmse %.5f, with imatrix %.5f\n", type_name(t), plain, weighted);
    EXPECT_LT(weighted, plain) << type_name(t);
  }
}

TEST(QuantizeRows, DeterministicIndependentRowsAnyAlignment) {
  constexpr int64_t kRows = 4, kN = 512;
  std::mt19937 g(9);
  std::vector<float> x(kRows * kN);
  fill_row(Dist::HeavyTailed, g, x.data(), kRows * kN);
  const std::vector<float> w = make_imatrix(ImatrixCase::Moderate, g, kN);
  for (GgmlType t : kQuantizedTypes) {
    for (const float* imatrix : {static_cast<const float*>(nullptr), w.data()}) {
      const std::vector<uint8_t> all = quantize(t, x, kRows, kN, imatrix);
      EXPECT_EQ(all, quantize(t, x, kRows, kN, imatrix)) << type_name(t) << ": not deterministic";
      // Row by row (as a threaded converter calls it), into an odd address.
      const size_t rb = row_bytes(t, kN);
      std::vector<uint8_t> buf(rb + 1);
      for (int64_t r = 0; r < kRows; ++r) {
        quantize_rows(t, x.data() + r * kN, buf.data() + 1, 1, kN, imatrix);
        EXPECT_EQ(std::memcmp(buf.data() + 1, all.data() + r * rb, rb), 0)
            << type_name(t) << " row " << r << (imatrix ? " with" : " without") << " imatrix";
      }
    }
  }
}

TEST(QuantizeRows, ImatrixIsReadExactlyByTheTypesGgmlWeights) {
  constexpr int64_t kRows = 4, kN = 512;
  std::mt19937 g(10);
  std::vector<float> x(kRows * kN);
  fill_row(Dist::Gaussian, g, x.data(), kRows * kN);
  const std::vector<float> w = make_imatrix(ImatrixCase::WideRange, g, kN);
  for (GgmlType t : kQuantizedTypes) {
    const bool same = quantize(t, x, kRows, kN, nullptr) == quantize(t, x, kRows, kN, w.data());
    EXPECT_EQ(same, ignores_imatrix(t)) << type_name(t)
                                        << (same ? ": the imatrix changed nothing" : ": ggml ignores the imatrix here");
  }
}

TEST(QuantizeRows, NonFiniteAndExtremeInputIsDefined) {
  // Garbage in, garbage out, but no undefined behaviour (the sanitizer build checks every cast and shift).
  for (GgmlType t : kQuantizedTypes) {
    std::vector<float> x(kQK_K, 1.f);
    x[3] = NAN;
    x[40] = INFINITY;
    x[77] = -INFINITY;
    x[100] = 3e38f;
    x[200] = 1e-45f;
    const std::vector<float> w(kQK_K, 1.f);
    quantize(t, x, 1, kQK_K, nullptr);
    quantize(t, x, 1, kQK_K, w.data());
  }
}

}  // namespace
}  // namespace groak
