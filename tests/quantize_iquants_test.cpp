// The i-quant quantizers (kernels/quantize_iq*.cpp): byte for byte against llama.cpp's ggml_quantize_chunk
// (loaded from a llama.cpp build, c392e5094; skipped without one) on many kinds of rows, with and without an
// importance matrix; and, always: the round-trip error of each type, determinism, quantizing from many
// threads at once (the lazily built search tables), and that an importance matrix changes the result.
//
// When a byte comparison fails it names the row kind, the row and the first differing block with both
// blocks' bytes: quantize that row alone with both to find the branch where they part.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ggml_peer.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "util/error.h"

namespace groak::test {
namespace {

struct IquantCase {
  GgmlType t;
  bool ggml_needs_imatrix;  // ggml_quantize_requires_imatrix (IQ2_XXS, IQ2_XS, IQ1_S)
  float max_rel_rmse;       // round-trip bound on gaussian rows, with a random imatrix
  bool in_c392e5094 = true; // llama.cpp's reference build has the type (MXFP4 came later)
  bool uses_imatrix = true; // the search is weighted by the imatrix (not MXFP4's)
};

// The quantizers groak has, in the order they were written.
const std::vector<IquantCase>& cases() {
  static const std::vector<IquantCase> v = {
      {GgmlType::IQ4_NL, false, 0.12f},
      {GgmlType::IQ4_XS, false, 0.12f},
      {GgmlType::IQ3_S, false, 0.25f},
      {GgmlType::IQ3_XXS, false, 0.25f},
      {GgmlType::IQ2_S, false, 0.4f},
      {GgmlType::IQ2_XS, true, 0.4f},
      {GgmlType::IQ2_XXS, true, 0.45f},
      {GgmlType::IQ1_S, true, 0.6f},
      {GgmlType::IQ1_M, false, 0.6f},
      {GgmlType::MXFP4, false, 0.2f, false, false},
  };
  return v;
}

// A row kind: how its values are drawn.
enum class RowKind { Gaussian, HeavyTailed, AllEqual, Zeros, OneOutlier, ZeroBlocks, Tiny, Mixed };
const char* kind_name(RowKind k) {
  switch (k) {
    case RowKind::Gaussian: return "gaussian";
    case RowKind::HeavyTailed: return "heavy-tailed";
    case RowKind::AllEqual: return "all-equal";
    case RowKind::Zeros: return "zeros";
    case RowKind::OneOutlier: return "one-outlier";
    case RowKind::ZeroBlocks: return "zero-blocks";
    case RowKind::Tiny: return "tiny";
    case RowKind::Mixed: return "mixed";
  }
  return "?";
}

// rows × n values of one kind.
std::vector<float> make_rows(RowKind kind, int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::student_t_distribution<float> td(2.f);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x.data() + r * n;
    const float scale = std::exp(ud(g) * 3.f) * 0.02f;  // rows of different magnitudes
    for (int64_t j = 0; j < n; ++j) {
      switch (kind) {
        case RowKind::Gaussian: xr[j] = scale * nd(g); break;
        case RowKind::HeavyTailed: xr[j] = scale * td(g); break;
        case RowKind::AllEqual: xr[j] = r % 2 ? -scale : scale; break;
        case RowKind::Zeros: xr[j] = 0.f; break;
        case RowKind::OneOutlier: xr[j] = scale * nd(g); break;
        case RowKind::ZeroBlocks: xr[j] = (j / 32) % 3 == 1 ? 0.f : scale * nd(g); break;
        case RowKind::Tiny: xr[j] = 1e-6f * nd(g); break;
        case RowKind::Mixed: xr[j] = (j / 64) % 2 ? scale * td(g) : scale * 0.01f * ud(g); break;
      }
    }
    if (kind == RowKind::OneOutlier) xr[g() % n] = scale * 50.f * (g() & 1 ? 1.f : -1.f);
  }
  return x;
}

// A random positive importance matrix of n columns (llama.cpp's are mean squared activations).
// With zero_columns, about one column in five is 0 (real imatrix files have columns no activation reached).
std::vector<float> make_imatrix(int64_t n, uint32_t seed, bool zero_columns = false) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.5f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w) v = zero_columns && g() % 5 == 0 ? 0.f : std::exp(nd(g));
  return w;
}

// How a byte comparison weights the rows.
enum class IqImatrix { Random, SomeZeroColumns, None };
const char* imatrix_name(IqImatrix m) {
  return m == IqImatrix::Random ? "with an imatrix" : m == IqImatrix::None ? "without imatrix" : "with an imatrix with zero columns";
}

// groak's bytes for rows × n, calling the family's row quantizer directly, so that the types groak
// requires an imatrix for but ggml does not (IQ2_S, IQ1_M) can be compared without one too.
std::vector<uint8_t> groak_quantize(GgmlType t, const float* x, int64_t rows, int64_t n, const float* imatrix) {
  const size_t rb = row_bytes(t, n);
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  const quant::RowQuant rq = quant::iquant_row_quant(t);
  for (int64_t r = 0; r < rows; ++r) rq(x + r * n, out.data() + static_cast<size_t>(r) * rb, n, imatrix);
  return out;
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

// Compares groak with ggml on rows of one kind; returns the number of rows compared (0 after a failure).
int64_t compare_with_ggml(const GgmlPeer* peer, const IquantCase& c, RowKind kind, int64_t rows, int64_t n,
                          IqImatrix mode, uint32_t seed) {
  const std::vector<float> x = make_rows(kind, rows, n, seed);
  const std::vector<float> im = make_imatrix(n, seed ^ 0x9e3779b9u, mode == IqImatrix::SomeZeroColumns);
  const float* imatrix = mode != IqImatrix::None ? im.data() : nullptr;
  const std::vector<uint8_t> ours = groak_quantize(c.t, x.data(), rows, n, imatrix);
  std::vector<uint8_t> theirs(ours.size(), 0xcd);
  const size_t written = peer->quantize_chunk(static_cast<int>(c.t), x.data(), theirs.data(), 0, rows, n, imatrix);
  EXPECT_EQ(written, ours.size());
  const size_t bytes = type_size(c.t), per_row = row_bytes(c.t, n) / bytes;
  for (size_t b = 0; b < ours.size() / bytes; ++b) {
    if (std::memcmp(ours.data() + b * bytes, theirs.data() + b * bytes, bytes) == 0) continue;
    ADD_FAILURE() << type_name(c.t) << ": " << kind_name(kind) << " rows of " << n << " " << imatrix_name(mode)
                  << " (seed " << seed << "): row " << b / per_row << ", block " << b % per_row
                  << " differs from ggml_quantize_chunk\n  groak: " << hex(ours.data() + b * bytes, bytes)
                  << "\n  ggml:  " << hex(theirs.data() + b * bytes, bytes);
    return 0;
  }
  return rows;
}

const RowKind kAllKinds[] = {RowKind::Gaussian,   RowKind::HeavyTailed, RowKind::AllEqual, RowKind::Zeros,
                             RowKind::OneOutlier, RowKind::ZeroBlocks,  RowKind::Tiny,     RowKind::Mixed};

TEST(QuantizeIquants, ByteIdenticalToGgmlQuantizeChunk) {
  GROAK_REQUIRE_GGML_PEER(peer);
  for (const IquantCase& c : cases()) {
    if (!c.in_c392e5094) continue;
    int64_t compared = 0;
    uint32_t seed = 1000 * static_cast<uint32_t>(c.t);
    for (IqImatrix mode : {IqImatrix::Random, IqImatrix::SomeZeroColumns, IqImatrix::None}) {
      if (mode == IqImatrix::None && c.ggml_needs_imatrix) continue;
      // ggml's IQ2_XXS aborts on zero weights (make_qp_quants divides 0 by 0, then asserts scale ≥ 0).
      if (mode == IqImatrix::SomeZeroColumns && c.t == GgmlType::IQ2_XXS) continue;
      for (RowKind kind : kAllKinds) {
        // IQ1_S and IQ1_M: a zero block inside a non-zero row gets, in ggml, the shift of a block it never
        // wrote (another row's, or uninitialised stack): not reproducible (quantize_iq1.cpp says more).
        if (kind == RowKind::ZeroBlocks && (c.t == GgmlType::IQ1_S || c.t == GgmlType::IQ1_M)) continue;
        const int64_t shortest = block_size(c.t) < kQK_K ? 96 : 256;  // IQ4_NL rows need not fill 256
        for (int64_t n : {shortest, int64_t{512}, int64_t{2048}, int64_t{4352}}) {
          const int64_t rows = n >= 2048 ? 2 : 8;  // ~25 s of CPU in all under ASan
          if (mode == IqImatrix::SomeZeroColumns && n != 512) continue;  // one length is enough there
          compared += compare_with_ggml(peer, c, kind, rows, n, mode, ++seed);
        }
      }
    }
    std::printf("  %-8s %lld rows byte-identical to ggml_quantize_chunk (%s)\n", type_name(c.t),
                static_cast<long long>(compared), peer->library.c_str());
  }
}

// ---------------------------------------------------------------------------------------------------------
// Without llama.cpp

double rel_rmse(GgmlType t, const std::vector<float>& x, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(x.size());
  const size_t rb = row_bytes(t, n);
  for (size_t r = 0; r < x.size() / static_cast<size_t>(n); ++r)
    dequantize_row(t, q.data() + r * rb, y.data() + r * static_cast<size_t>(n), n);
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    s += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(e / s);
}

TEST(QuantizeIquants, RoundTripErrorIsBounded) {
  constexpr int64_t kRows = 8, kN = 2048;
  for (const IquantCase& c : cases()) {
    ASSERT_TRUE(has_quantizer(c.t)) << type_name(c.t);
    const std::vector<float> x = make_rows(RowKind::Gaussian, kRows, kN, 7);
    const std::vector<float> im = make_imatrix(kN, 8);
    std::vector<uint8_t> q(row_bytes(c.t, kN) * kRows);
    quantize_rows(c.t, x.data(), q.data(), kRows, kN, im.data());
    const double err = rel_rmse(c.t, x, q, kN);
    std::printf("  %-8s relative RMS error %.4f on gaussian rows (bound %.3f)\n", type_name(c.t), err, c.max_rel_rmse);
    EXPECT_LT(err, c.max_rel_rmse) << type_name(c.t);
    EXPECT_GT(err, 0.0) << type_name(c.t) << ": a lossy type cannot be exact on gaussian data";
  }
}

TEST(QuantizeIquants, ZeroRowsDequantiseToZero) {
  constexpr int64_t kN = 512;
  const std::vector<float> x(kN, 0.f);
  const std::vector<float> im = make_imatrix(kN, 3);
  for (const IquantCase& c : cases()) {
    std::vector<uint8_t> q(row_bytes(c.t, kN));
    quantize_rows(c.t, x.data(), q.data(), 1, kN, im.data());
    std::vector<float> y(kN, 1.f);
    dequantize_row(c.t, q.data(), y.data(), kN);
    for (int64_t j = 0; j < kN; ++j) ASSERT_EQ(std::fabs(y[j]), 0.f) << type_name(c.t) << " element " << j;
  }
}

// Zero imatrix columns, whole zero blocks of imatrix, denormal and large rows: every type still writes blocks
// that decode to finite values (ggml aborts on some of these for IQ2_XXS and IQ1_M, and writes d = NaN in
// IQ4_NL for a block whose imatrix is all zero; groak must not).
TEST(QuantizeIquants, DegenerateInputGivesFiniteBlocks) {
  constexpr int64_t kN = 512;
  std::vector<float> im = make_imatrix(kN, 41, true);
  for (int64_t j = 64; j < 128; ++j) im[j] = 0.f;
  for (RowKind kind : kAllKinds) {
    for (float scale : {1.f, 1e-38f, 1e3f}) {  // (much larger rows overflow the f16 scales)
      std::vector<float> x = make_rows(kind, 2, kN, 42);
      for (float& v : x) v *= scale;
      for (const IquantCase& c : cases()) {
        std::vector<uint8_t> q(row_bytes(c.t, kN) * 2);
        quantize_rows(c.t, x.data(), q.data(), 2, kN, im.data());
        std::vector<float> y(x.size());
        dequantize_row(c.t, q.data(), y.data(), 2 * kN);
        for (size_t i = 0; i < y.size(); ++i)
          if (!std::isfinite(y[i])) { ADD_FAILURE() << type_name(c.t) << " " << kind_name(kind) << " ×" << scale << " element " << i; break; }
      }
    }
  }
}

TEST(QuantizeIquants, DeterministicAndRowsIndependent) {
  constexpr int64_t kRows = 6, kN = 512;
  const std::vector<float> x = make_rows(RowKind::Mixed, kRows, kN, 11);
  const std::vector<float> im = make_imatrix(kN, 12);
  for (const IquantCase& c : cases()) {
    const size_t rb = row_bytes(c.t, kN);
    std::vector<uint8_t> a(rb * kRows), b(rb * kRows);
    quantize_rows(c.t, x.data(), a.data(), kRows, kN, im.data());
    quantize_rows(c.t, x.data(), b.data(), kRows, kN, im.data());
    EXPECT_EQ(a, b) << type_name(c.t);
    // Row 3 alone gives the bytes it had in the batch.
    std::vector<uint8_t> one(rb);
    quantize_rows(c.t, x.data() + 3 * kN, one.data(), 1, kN, im.data());
    EXPECT_EQ(0, std::memcmp(one.data(), a.data() + 3 * rb, rb)) << type_name(c.t);
  }
}

TEST(QuantizeIquants, ManyThreadsAtOnceGiveTheSingleThreadBytes) {
  constexpr int kThreads = 6;
  constexpr int64_t kRows = 4, kN = 1024;
  const std::vector<float> x = make_rows(RowKind::HeavyTailed, kRows * kThreads, kN, 21);
  const std::vector<float> im = make_imatrix(kN, 22);
  for (const IquantCase& c : cases()) {
    const size_t rb = row_bytes(c.t, kN);
    std::vector<uint8_t> threaded(rb * kRows * kThreads);
    std::vector<std::thread> pool;
    // All threads start together, so the first use of a type's search tables is a race if it can be.
    for (int k = 0; k < kThreads; ++k)
      pool.emplace_back([&, k] {
        quantize_rows(c.t, x.data() + k * kRows * kN, threaded.data() + k * kRows * rb, kRows, kN, im.data());
      });
    for (std::thread& th : pool) th.join();
    std::vector<uint8_t> serial(threaded.size());
    quantize_rows(c.t, x.data(), serial.data(), kRows * kThreads, kN, im.data());
    EXPECT_EQ(threaded, serial) << type_name(c.t);
  }
}

TEST(QuantizeIquants, ImportanceMatrixChangesTheResult) {
  constexpr int64_t kRows = 4, kN = 1024;
  const std::vector<float> x = make_rows(RowKind::Gaussian, kRows, kN, 31);
  std::vector<float> flat(kN, 1.f);
  const std::vector<float> im = make_imatrix(kN, 32);
  for (const IquantCase& c : cases()) {
    if (!c.uses_imatrix) continue;
    const size_t rb = row_bytes(c.t, kN);
    std::vector<uint8_t> a(rb * kRows), b(rb * kRows);
    quantize_rows(c.t, x.data(), a.data(), kRows, kN, flat.data());
    quantize_rows(c.t, x.data(), b.data(), kRows, kN, im.data());
    EXPECT_NE(a, b) << type_name(c.t);
    // And the weighted error is lower where the imatrix asks for it: Σ im·(x − y)² with im beats flat.
    std::vector<float> ya(x.size()), yb(x.size());
    for (int64_t r = 0; r < kRows; ++r) {
      dequantize_row(c.t, a.data() + r * rb, ya.data() + r * kN, kN);
      dequantize_row(c.t, b.data() + r * rb, yb.data() + r * kN, kN);
    }
    double ea = 0, eb = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double w = im[i % kN];
      ea += w * (x[i] - ya[i]) * (x[i] - ya[i]);
      eb += w * (x[i] - yb[i]) * (x[i] - yb[i]);
    }
    EXPECT_LT(eb, ea) << type_name(c.t) << ": the imatrix-weighted error should drop when that imatrix is used";
  }
}

// MXFP4: values on the format's grid come back exactly; the exponent puts the block maximum in [4, 8)·2^(e−127);
// the biggest value clips to ±6·scale; zero, tiny and huge blocks stay finite.
TEST(QuantizeIquants, Mxfp4FollowsItsDefinition) {
  const float kE2M1[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = (j % 2 ? -1.f : 1.f) * kE2M1[j % 8] * 0.125f;  // max 0.75 → scale 2^-3
  uint8_t b[17];
  quantize_row(GgmlType::MXFP4, x, b, 32);
  EXPECT_EQ(b[0], 127 - 3);  // ⌊log2 0.75⌋ − 2 + 127
  float y[32];
  dequantize_row(GgmlType::MXFP4, b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]) << j;
  // A value between two grid points goes to the nearer one; 7.9·scale clips to 6·scale.
  x[0] = 0.125f * 2.6f;
  x[2] = 0.125f * 7.9f;  // now the maximum: same exponent, as 7.9 < 8
  quantize_row(GgmlType::MXFP4, x, b, 32);
  dequantize_row(GgmlType::MXFP4, b, y, 32);
  EXPECT_EQ(b[0], 127 - 3);
  EXPECT_EQ(y[0], 0.125f * 3.f);
  EXPECT_EQ(y[2], 0.125f * 6.f);
  for (float m : {0.f, 1e-42f, 3e38f}) {
    for (float& v : x) v = m;
    quantize_row(GgmlType::MXFP4, x, b, 32);
    dequantize_row(GgmlType::MXFP4, b, y, 32);
    for (int j = 0; j < 32; ++j) ASSERT_TRUE(std::isfinite(y[j])) << m;
    if (m > 1.f) {
      EXPECT_NEAR(y[0] / m, 1.f, 0.34f);
    }
  }
}

TEST(QuantizeIquants, TypesThatNeedAnImatrixRefuseWithoutOne) {
  const std::vector<float> x(256, 1.f);
  std::vector<uint8_t> q(256);
  for (const IquantCase& c : cases()) {
    if (!quantize_requires_imatrix(c.t)) continue;
    EXPECT_THROW(quantize_rows(c.t, x.data(), q.data(), 1, 256, nullptr), Error) << type_name(c.t);
  }
}

}  // namespace
}  // namespace groak::test
