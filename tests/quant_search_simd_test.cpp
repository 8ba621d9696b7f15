// The SIMD tables of the quantizers' scale searches (x86/avx2_quant_search.cpp, x86/avx512_quant_search.cpp)
// against the scalar oracle (quant_search.cpp): for every table this CPU runs, every call shape the
// quantizers make, and groups of many distributions (zeros, constants, tiny, subnormal, huge, overflowing,
// outliers, NaN, ±inf), the returned scale and min and every level must be bit-identical. The scalar code
// is itself checked byte for byte against llama.cpp by quantize_test.cpp; if this test fails, the SIMD
// lane arithmetic differs from the scalar order (a contracted FMA, a rounding mode, a missed fallback).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/quant_search.h"

namespace groak::quant {
namespace {

std::vector<const SearchKernels*> simd_tables() {
  std::vector<const SearchKernels*> t;
  if (const SearchKernels* k = avx2_search_kernels()) t.push_back(k);
  if (const SearchKernels* k = avx512_search_kernels()) t.push_back(k);
  return t;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

constexpr int kDistributions = 16;

// Group g of distribution d, n values.
void make_group(int d, std::mt19937& rng, int n, float* x) {
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) {
    const float g = gauss(rng);
    switch (d) {
      case 0: x[i] = g; break;
      case 1: x[i] = g / std::pow(uni(rng) + 1e-3f, 0.7f); break;  // heavy tails
      case 2: x[i] = 0.37f; break;
      case 3: x[i] = -2.5f; break;
      case 4: x[i] = 0.f; break;
      case 5: x[i] = 1e-7f * g; break;
      case 6: x[i] = 1e-39f * g; break;  // subnormal
      case 7: x[i] = 1e6f * g; break;
      case 8: x[i] = 1e19f * g; break;  // x² overflows
      case 9: x[i] = i == 5 ? 1000.f * g : 0.01f * g; break;
      case 10: x[i] = uni(rng); break;
      case 11: x[i] = uni(rng) < 0.9f ? 0.f : g; break;
      case 12: x[i] = 0.7f * static_cast<float>(static_cast<int>(uni(rng) * 3.f) - 1); break;
      case 13: x[i] = i == 3 ? std::nanf("") : g; break;
      case 14: x[i] = i == 7 ? (g > 0 ? inf : -inf) : g; break;
      case 15: x[i] = std::ldexp(g, static_cast<int>(uni(rng) * 200.f) - 100); break;  // any exponent
    }
  }
}

// Weights as the quantizers form them: |x|, rms + |x|, an imatrix-like qw·sqrt(σ² + x²), random, zeros.
void make_weights(int kind, std::mt19937& rng, int n, const float* x, float* w) {
  std::uniform_real_distribution<float> uni(0.f, 2.f);
  float sum_x2 = 0;
  for (int i = 0; i < n; ++i) sum_x2 += x[i] * x[i];
  const float av_x = std::sqrt(sum_x2 / static_cast<float>(n));
  for (int i = 0; i < n; ++i) {
    switch (kind) {
      case 0: w[i] = std::fabs(x[i]); break;
      case 1: w[i] = av_x + std::fabs(x[i]); break;
      case 2: w[i] = uni(rng) * std::sqrt(2.f * sum_x2 / 256.f + x[i] * x[i]); break;
      case 3: w[i] = uni(rng); break;
      default: w[i] = 0.f; break;
    }
  }
}

struct QkxShape {
  int n, nmax;
  float rmin, rdelta;
  int nstep;
  ErrorNorm norm;
};
// Every make_qkx_quants call of the quantizers (Q2_K, Q4_K, Q5_K reference; the imatrix searches of
// Q2_K, Q4_K, Q5_K, Q4_1, Q5_1), plus shapes no caller uses yet.
const QkxShape kQkxShapes[] = {
    {16, 3, -0.5f, 0.1f, 15, ErrorNorm::Absolute},  {32, 15, -1.f, 0.1f, 20, ErrorNorm::Squared},
    {32, 31, -0.5f, 0.1f, 15, ErrorNorm::Squared},  {16, 3, -0.9f, 0.05f, 36, ErrorNorm::Squared},
    {32, 15, -0.9f, 0.05f, 36, ErrorNorm::Squared}, {32, 31, -0.9f, 0.05f, 36, ErrorNorm::Squared},
    {8, 7, -0.5f, 0.1f, 5, ErrorNorm::Absolute},    {32, 15, -1.f, 0.1f, 1, ErrorNorm::Squared},
    {32, 15, -1.f, 0.1f, 0, ErrorNorm::Squared},
};

TEST(QuantSearchSimd, QkxMatchesScalarBitForBit) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "this CPU has no SIMD search table (AVX2)";
  const SearchKernels& ref = scalar_search_kernels();
  std::mt19937 rng(7);
  int checked = 0;
  for (const SearchKernels* simd : tables) {
    for (const QkxShape& s : kQkxShapes) {
      for (int d = 0; d < kDistributions; ++d) {
        for (int rep = 0; rep < 60; ++rep) {
          float x[kMaxSearchGroup], w[kMaxSearchGroup];
          make_group(d, rng, s.n, x);
          make_weights(rep % 5, rng, s.n, x, w);
          uint8_t L0[kMaxSearchGroup], L1[kMaxSearchGroup], aux[kMaxSearchGroup];
          float min0 = -1, min1 = -1;
          const float sc0 = ref.make_qkx_quants(s.n, s.nmax, x, w, L0, &min0, aux, s.rmin, s.rdelta, s.nstep, s.norm);
          const float sc1 =
              simd->make_qkx_quants(s.n, s.nmax, x, w, L1, &min1, aux, s.rmin, s.rdelta, s.nstep, s.norm);
          ASSERT_EQ(bits(sc0), bits(sc1)) << simd->name << " n " << s.n << " nmax " << s.nmax << " dist " << d
                                          << " rep " << rep << ": scale " << sc0 << " vs " << sc1;
          ASSERT_EQ(bits(min0), bits(min1)) << simd->name << " dist " << d << " rep " << rep;
          ASSERT_EQ(0, std::memcmp(L0, L1, static_cast<size_t>(s.n))) << simd->name << " dist " << d << " rep " << rep;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// make_qkx_quants8 (one group per lane) against 8 scalar calls: each batch mixes distributions, so a
// constant, all-zero or tiny group shares its vector with ordinary ones, and a NaN or ±inf anywhere sends
// the batch to the scalar code.
TEST(QuantSearchSimd, Qkx8MatchesScalarBitForBit) {
  std::vector<const SearchKernels*> tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "this CPU has no SIMD search table (AVX2)";
  std::mt19937 rng(13);
  int checked = 0;
  for (const SearchKernels* simd : tables) {
    ASSERT_NE(simd->make_qkx_quants8, nullptr) << simd->name;
    for (const QkxShape& s : kQkxShapes) {
      for (int rep = 0; rep < 400; ++rep) {
        float x[8 * kMaxSearchGroup], w[8 * kMaxSearchGroup];
        for (int j = 0; j < 8; ++j) {
          // Mostly ordinary groups; every distribution shows up beside them.
          const int d = rep % 3 == 0 ? static_cast<int>(rng() % kDistributions) : static_cast<int>(rng() % 2);
          make_group(d, rng, s.n, x + j * s.n);
          make_weights(static_cast<int>(rng() % 5), rng, s.n, x + j * s.n, w + j * s.n);
        }
        uint8_t L0[8 * kMaxSearchGroup], L1[8 * kMaxSearchGroup];
        float sc0[8], sc1[8], m0[8], m1[8];
        scalar_make_qkx_quants8(s.n, s.nmax, x, w, L0, sc0, m0, s.rmin, s.rdelta, s.nstep, s.norm);
        simd->make_qkx_quants8(s.n, s.nmax, x, w, L1, sc1, m1, s.rmin, s.rdelta, s.nstep, s.norm);
        for (int j = 0; j < 8; ++j) {
          ASSERT_EQ(bits(sc0[j]), bits(sc1[j])) << simd->name << " n " << s.n << " nmax " << s.nmax << " nstep "
                                                << s.nstep << " rep " << rep << " group " << j << ": scale "
                                                << sc0[j] << " vs " << sc1[j];
          ASSERT_EQ(bits(m0[j]), bits(m1[j])) << simd->name << " rep " << rep << " group " << j << ": min " << m0[j]
                                              << " vs " << m1[j];
        }
        ASSERT_EQ(0, std::memcmp(L0, L1, static_cast<size_t>(8 * s.n))) << simd->name << " rep " << rep;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

struct QxShape {
  int n, nmax;
  bool weighted;
};
// Q3_K imatrix (nmax 4, and 32 for its scales), Q6_K (nmax 32, with and without the imatrix), Q4_0 /
// Q5_0 imatrix (n 32, nmax 8 and 16).
const QxShape kQxShapes[] = {{16, 4, true}, {16, 32, true}, {16, 32, false}, {32, 8, true}, {32, 16, true}};

TEST(QuantSearchSimd, QxMatchesScalarBitForBit) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "this CPU has no SIMD search table (AVX2)";
  const SearchKernels& ref = scalar_search_kernels();
  std::mt19937 rng(11);
  for (const SearchKernels* simd : tables) {
    for (const QxShape& s : kQxShapes) {
      for (int d = 0; d < kDistributions; ++d) {
        for (int rep = 0; rep < 60; ++rep) {
          float x[kMaxSearchGroup], w[kMaxSearchGroup];
          make_group(d, rng, s.n, x);
          make_weights(rep % 5, rng, s.n, x, w);
          int8_t L0[kMaxSearchGroup], L1[kMaxSearchGroup];
          const float* qw = s.weighted ? w : nullptr;
          const float sc0 = ref.make_qx_quants(s.n, s.nmax, x, L0, qw);
          const float sc1 = simd->make_qx_quants(s.n, s.nmax, x, L1, qw);
          ASSERT_EQ(bits(sc0), bits(sc1)) << simd->name << " n " << s.n << " nmax " << s.nmax << " dist " << d
                                          << " rep " << rep << ": scale " << sc0 << " vs " << sc1;
          ASSERT_EQ(0, std::memcmp(L0, L1, static_cast<size_t>(s.n))) << simd->name << " dist " << d << " rep " << rep;
        }
      }
    }
  }
}

// IQ4's sweep: the 15 inverse scales IQ4_NL / IQ4_XS try ((itry − 127)/max), and arbitrary ones (values
// landing on level midpoints, beyond the end levels, huge and NaN products), any m up to 16.
TEST(QuantSearchSimd, Iq4FitsMatchScalarBitForBit) {
  const auto tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "this CPU has no SIMD search table (AVX2)";
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-3.f, 3.f);
  int checked = 0;
  for (const SearchKernels* simd : tables) {
    for (int d = 0; d < kDistributions; ++d) {
      for (int rep = 0; rep < 40; ++rep) {
        float x[32], w[32], ids[kMaxIq4Candidates];
        make_group(d, rng, 32, x);
        make_weights(rep % 5, rng, 32, x, w);
        float max = 0, amax = 0;
        for (float v : x)
          if (std::fabs(v) > amax) amax = std::fabs(v), max = v;
        const int m = rep % 3 == 0 ? 1 + rep % kMaxIq4Candidates : 15;
        for (int t = 0; t < m; ++t)
          ids[t] = rep % 3 == 1 ? uni(rng) * 40.f : static_cast<float>(t - 7 - 127) / (max != 0 ? max : 1.f);
        if (rep % 7 == 0) ids[0] = 1.f, x[1] = 0.5f * (13.f + 25.f), x[2] = -116.f;  // a midpoint, past −104…−127
        float qx0[kMaxIq4Candidates], q20[kMaxIq4Candidates], qx1[kMaxIq4Candidates], q21[kMaxIq4Candidates];
        scalar_iq4_fits(x, w, ids, m, qx0, q20);
        simd->iq4_fits(x, w, ids, m, qx1, q21);
        for (int t = 0; t < m; ++t) {
          ASSERT_EQ(bits(qx0[t]), bits(qx1[t])) << simd->name << " dist " << d << " rep " << rep << " candidate " << t;
          ASSERT_EQ(bits(q20[t]), bits(q21[t])) << simd->name << " dist " << d << " rep " << rep << " candidate " << t;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace groak::quant
