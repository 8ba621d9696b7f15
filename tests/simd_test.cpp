// Every fast kernel table (portable, and AVX2 where the CPU has it) against a float64 evaluation of
// the same product, on every weight format, odd sizes (column and row tails), unaligned pointers and
// strided slices; then the invariances the engine relies on: a row's result does not depend on how
// many rows share the product, nor on how the outputs are split between threads (bit for bit).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "iquant_util.h"
#include "kernel_util.h"
#include "kernels/context.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace groak::test {

namespace {


// A weight matrix in some format, stored at an odd address, with its logical values W[i][o] in double.
struct TestMatrix {
  std::string label;
  Matrix m;
  std::vector<uint8_t> bytes;
  std::vector<double> w;  // [n_in, n_out] dequantised

  double at(int64_t i, int64_t o) const { return w[static_cast<size_t>(i * m.n_out + o)]; }
};

TestMatrix xai_int8(int64_t n_in, int64_t n_out, int64_t blocks, uint32_t seed) {
  TestMatrix t;
  t.label = "xai int8, " + std::to_string(blocks) + " scale blocks";
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> ud(0.001f, 0.05f);
  t.bytes.resize(3 + static_cast<size_t>(n_in * n_out) + 1 + static_cast<size_t>(2 * blocks * n_out));
  uint8_t* q = t.bytes.data() + 3;
  uint8_t* sc = q + n_in * n_out + 1;
  std::vector<float> s(static_cast<size_t>(blocks * n_out));
  for (auto& v : s) v = bf16_to_f32(f32_to_bf16(ud(g)));
  for (size_t i = 0; i < s.size(); ++i) {
    const uint16_t b = f32_to_bf16(s[i]);
    std::memcpy(sc + 2 * i, &b, 2);
  }
  t.w.resize(static_cast<size_t>(n_in * n_out));
  for (int64_t i = 0; i < n_in; ++i)
    for (int64_t o = 0; o < n_out; ++o) {
      const int8_t v = static_cast<int8_t>(static_cast<int>(g() % 255) - 127);
      q[i * n_out + o] = static_cast<uint8_t>(v);
      t.w[static_cast<size_t>(i * n_out + o)] = static_cast<double>(v) * s[static_cast<size_t>((i / (n_in / blocks)) * n_out + o)];
    }
  t.m.format = WeightFormat::XaiInt8;
  t.m.layout = Layout::InOut;
  t.m.n_in = n_in;
  t.m.n_out = n_out;
  t.m.data = q;
  t.m.scales = sc;
  t.m.scale_blocks = blocks;
  return t;
}

TestMatrix f32_matrix(int64_t n_in, int64_t n_out, Layout layout, uint32_t seed) {
  TestMatrix t;
  t.label = layout == Layout::InOut ? "f32 [in, out]" : "f32 [out, in]";
  auto v = randn(static_cast<size_t>(n_in * n_out), seed);
  t.bytes.resize(1 + 4 * v.size());
  t.w.resize(v.size());
  for (int64_t i = 0; i < n_in; ++i)
    for (int64_t o = 0; o < n_out; ++o) {
      const float x = v[static_cast<size_t>(i * n_out + o)];
      const size_t idx = layout == Layout::InOut ? static_cast<size_t>(i * n_out + o) : static_cast<size_t>(o * n_in + i);
      std::memcpy(t.bytes.data() + 1 + 4 * idx, &x, 4);
      t.w[static_cast<size_t>(i * n_out + o)] = x;
    }
  t.m.format = WeightFormat::F32;
  t.m.layout = layout;
  t.m.n_in = n_in;
  t.m.n_out = n_out;
  t.m.data = t.bytes.data() + 1;
  return t;
}

TestMatrix ggml_matrix(GgmlType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  TestMatrix t;
  t.label = std::string("ggml ") + type_name(type);
  auto v = randn(static_cast<size_t>(n_in * n_out), seed);
  const size_t rb = row_bytes(type, n_in);
  t.bytes.resize(1 + rb * static_cast<size_t>(n_out));
  t.w.resize(v.size());
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t o = 0; o < n_out; ++o) {
    uint8_t* dst = t.bytes.data() + 1 + rb * static_cast<size_t>(o);
    quantize_row(type, v.data() + o * n_in, dst, n_in);
    dequantize_row(type, dst, row.data(), n_in);
    for (int64_t i = 0; i < n_in; ++i) t.w[static_cast<size_t>(i * n_out + o)] = row[static_cast<size_t>(i)];
  }
  t.m.format = WeightFormat::Ggml;
  t.m.ggml = type;
  t.m.layout = Layout::OutIn;
  t.m.n_in = n_in;
  t.m.n_out = n_out;
  t.m.data = t.bytes.data() + 1;
  return t;
}

// The reference weights and the matrix view of t's blocks (one leading pad byte: unaligned rows).
void finish_ggml_matrix(TestMatrix& t, GgmlType type, int64_t n_in, int64_t n_out) {
  const size_t rb = row_bytes(type, n_in);
  t.w.resize(static_cast<size_t>(n_in * n_out));
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row(type, t.bytes.data() + 1 + rb * static_cast<size_t>(o), row.data(), n_in);
    for (int64_t i = 0; i < n_in; ++i) t.w[static_cast<size_t>(i * n_out + o)] = row[static_cast<size_t>(i)];
  }
  t.m.format = WeightFormat::Ggml;
  t.m.ggml = type;
  t.m.layout = Layout::OutIn;
  t.m.n_in = n_in;
  t.m.n_out = n_out;
  t.m.data = t.bytes.data() + 1;
}

// A k-quant matrix of random blocks: every bit pattern of the codes and packed scales (Q3_K's −32, Q6_K's
// −128, 6-bit scales and mins at their limits), with small positive f16 factors so that no value is
// inf or NaN. Types without a quantizer (Q2_K, Q3_K, Q5_K) are tested this way too.
TestMatrix random_kquant(GgmlType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  TestMatrix t;
  t.label = std::string("ggml ") + type_name(type) + " (random blocks)";
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  const size_t rb = row_bytes(type, n_in), bb = type_size(type);
  t.bytes.resize(1 + rb * static_cast<size_t>(n_out));
  for (size_t i = 1; i < t.bytes.size(); ++i) t.bytes[i] = static_cast<uint8_t>(g());
  // Byte offsets of each block's f16 factors (d, and dmin where the type has one).
  std::vector<size_t> halves;
  switch (type) {
    case GgmlType::Q2_K: halves = {80, 82}; break;
    case GgmlType::Q3_K: halves = {108}; break;
    case GgmlType::Q4_K: case GgmlType::Q5_K: halves = {0, 2}; break;
    case GgmlType::Q6_K: halves = {208}; break;
    default: ADD_FAILURE() << "not a k-quant"; break;
  }
  for (size_t b = 0; b < rb * static_cast<size_t>(n_out) / bb; ++b)
    for (size_t h : halves) {
      const uint16_t v = f32_to_fp16(scale(g));
      std::memcpy(t.bytes.data() + 1 + b * bb + h, &v, 2);
    }
  finish_ggml_matrix(t, type, n_in, n_out);
  return t;
}

// A matrix of a type groak reads but cannot write: random blocks (iquant_util.h), then dequantised.
TestMatrix iquant_matrix(GgmlType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  TestMatrix t;
  t.label = std::string("ggml ") + type_name(type);
  const size_t rb = row_bytes(type, n_in);
  const std::vector<uint8_t> blocks =
      random_iquant_blocks(type, rb / type_size(type) * static_cast<size_t>(n_out), seed);
  t.bytes.resize(1 + blocks.size());
  std::memcpy(t.bytes.data() + 1, blocks.data(), blocks.size());
  finish_ggml_matrix(t, type, n_in, n_out);
  return t;
}

constexpr GgmlType kKQuants[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<TestMatrix> all_formats() {
  std::vector<TestMatrix> v;
  // Odd output counts (column tails), inputs not a multiple of 8 where the format allows.
  v.push_back(xai_int8(96, 53, 1, 1));
  v.push_back(xai_int8(96, 53, 8, 2));
  v.push_back(xai_int8(600, 37, 8, 3));  // longer than one packed panel of the tiled path
  v.push_back(xai_int8(75, 29, 1, 6));   // n_in odd: the input tail after the last whole vector
  v.push_back(f32_matrix(9, 4, Layout::OutIn, 7));  // n_in = one vector + 1
  v.push_back(f32_matrix(75, 41, Layout::InOut, 4));
  v.push_back(f32_matrix(75, 41, Layout::OutIn, 5));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    v.push_back(ggml_matrix(t, 77, 23, 10 + static_cast<uint32_t>(t)));
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0})
    v.push_back(ggml_matrix(t, 160, 23, 20 + static_cast<uint32_t>(t)));
  // k-quants: 2 and 3 super-blocks per row; 9 outputs leave a partial panel of 8, 37 cross the panels of
  // 16 and the ops' grain.
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    v.push_back(ggml_matrix(t, 512, 9, 30 + static_cast<uint32_t>(t)));
    v.push_back(ggml_matrix(t, 768, 37, 40 + static_cast<uint32_t>(t)));
  }
  for (GgmlType t : kKQuants) {
    v.push_back(random_kquant(t, 512, 9, 50 + static_cast<uint32_t>(t)));
    v.push_back(random_kquant(t, 768, 37, 60 + static_cast<uint32_t>(t)));
  }
  // i-quants, ternary, MXFP4 (random blocks): the same shapes, or 5 and 7 blocks of the 32-element types.
  for (GgmlType t : iquant_types()) {
    const bool small = block_size(t) == 32;
    v.push_back(iquant_matrix(t, small ? 160 : 512, 9, 50 + static_cast<uint32_t>(t)));
    v.push_back(iquant_matrix(t, small ? 224 : 768, 37, 60 + static_cast<uint32_t>(t)));
  }
  return v;
}

std::vector<const Kernels*> fast_tables() {
  std::vector<const Kernels*> v = {&portable_kernels()};
  if (const Kernels* k = avx2_kernels()) v.push_back(k);
  if (const Kernels* k = avx512_vnni_kernels()) v.push_back(k);
  return v;
}

// The activations a table's product sees: rows quantised by the reference quantiser (q8_0 or q8_K) where
// the table asks for them, dequantised.
std::vector<double> seen_activations(const Kernels& k, const Matrix& m, const std::vector<float>& x, int64_t rows) {
  std::vector<double> out(x.begin(), x.end());
  const ActFormat f = k.act_format(m);
  if (f == ActFormat::F32) return out;
  std::vector<uint8_t> q(act_row_bytes(f, m.n_in));
  std::vector<float> back(static_cast<size_t>(m.n_in));
  for (int64_t r = 0; r < rows; ++r) {
    if (f == ActFormat::Q8_0) {
      quantize_row(GgmlType::Q8_0, x.data() + r * m.n_in, q.data(), m.n_in);
      dequantize_row(GgmlType::Q8_0, q.data(), back.data(), m.n_in);
    } else {
      quantize_row_q8_K(x.data() + r * m.n_in, q.data(), m.n_in);
      dequantize_row_q8_K(q.data(), back.data(), m.n_in);
    }
    for (int64_t i = 0; i < m.n_in; ++i) out[static_cast<size_t>(r * m.n_in + i)] = back[static_cast<size_t>(i)];
  }
  return out;
}

}  // namespace

TEST(Simd, EveryTableMatchesFloat64OnEveryFormat) {
  for (const Kernels* k : fast_tables()) {
    for (const TestMatrix& t : all_formats()) {
      for (int64_t rows : {1, 2, 5, 7, 13}) {
        const Matrix& m = t.m;
        auto x = randn(static_cast<size_t>(rows * m.n_in), 77 + static_cast<uint32_t>(rows));
        std::vector<float> y(static_cast<size_t>(rows * m.n_out), -1.f);
        kernel_matmul(*k, m, x.data(), y.data(), rows);
        const auto xs = seen_activations(*k, m, x, rows);
        double worst = 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < m.n_out; ++o) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < m.n_in; ++i) {
              const double p = xs[static_cast<size_t>(r * m.n_in + i)] * t.at(i, o);
              ref += p;
              mag += std::abs(p);
            }
            // f32 accumulation over n_in terms: error ≤ a few ulps of the sum of magnitudes.
            const double err = std::abs(y[static_cast<size_t>(r * m.n_out + o)] - ref) / (mag + 1e-30);
            worst = std::max(worst, err);
          }
        EXPECT_LT(worst, 2e-6) << k->name << " " << t.label << " rows " << rows;
      }
    }
  }
}

TEST(Simd, QuantisedActivationsMatchTheReferenceQuantiser) {
  // q8_0 activations must be ggml's quantize_row_q8_0_ref byte for byte (llama.cpp-compatible error).
  for (const Kernels* k : fast_tables()) {
    constexpr int64_t kN = 32 * 12;
    auto x = randn(kN, 5, 3.f);
    x[7] = 0.5f;  // exact ties round away from zero
    float* b1 = x.data() + 32;  // block 1: max 127 → id 1, so x·id are the values themselves
    b1[0] = 127.f;
    b1[1] = 2.5f;   // 3
    b1[2] = -3.5f;  // −4
    b1[3] = 0.49999997f;  // 0 (a naive +0.5 would round up)
    b1[4] = -0.5f;  // −1
    std::fill(x.begin() + 64, x.begin() + 96, 0.f);  // block 2: all zero
    x[96 + 9] = std::nanf("");                         // block 3: a NaN (the reference's max restarts)
    std::fill(x.begin() + 128, x.begin() + 160, 1e-39f);  // block 4: subnormal d, id = inf → 0
    x[160 + 4] = std::numeric_limits<float>::infinity();   // block 5: an infinite max → id 0
    for (int j = 0; j < 32; ++j) x[192 + j] = 1e30f * (j - 16);  // block 6: huge values
    x[224 + 31] = -7.f;  // block 7: the max in the last element
    std::vector<uint8_t> a(row_bytes(GgmlType::Q8_0, kN)), b(a.size());
    k->quantize_q8_0(x.data(), a.data(), kN);
    quantize_row(GgmlType::Q8_0, x.data(), b.data(), kN);
    EXPECT_EQ(a, b) << k->name;
    // Many random scales, where x·id lands near halves.
    for (uint32_t seed = 0; seed < 50; ++seed) {
      auto y = randn(32 * 16, 100 + seed, 0.1f + seed);
      std::vector<uint8_t> c(row_bytes(GgmlType::Q8_0, 32 * 16)), e(c.size());
      k->quantize_q8_0(y.data(), c.data(), 32 * 16);
      quantize_row(GgmlType::Q8_0, y.data(), e.data(), 32 * 16);
      ASSERT_EQ(c, e) << k->name << " seed " << seed;
    }
  }
  // q8_K activations (k-quant weights) must be ggml's quantize_row_q8_K_ref byte for byte, sums included.
  for (const Kernels* k : fast_tables()) {
    constexpr int64_t kBlocks = 6;
    auto x = randn(256 * kBlocks, 6, 2.f);
    std::fill(x.begin() + 256, x.begin() + 512, 0.f);  // block 1: all zero
    float* b2 = x.data() + 512;                         // block 2: max −127 → iscale 1, exact ties
    b2[3] = -127.f;
    b2[10] = 2.5f;   // ties round to even: 2
    b2[11] = -3.5f;  // −4
    b2[12] = 0.5f;   // 0
    b2[300 - 256] = 127.f;  // same magnitude as the max, later: the max stays −127
    float* b3 = x.data() + 768;  // block 3: equal magnitudes, the first one is the signed max
    b3[5] = 9.f;
    b3[6] = -9.f;
    float* b4 = x.data() + 1024;  // block 4: a NaN is skipped by the max and quantised to 0
    b4[17] = std::nanf("");
    x[1280 + 255] = -1e-30f;  // block 5: a tiny max in the last element
    std::vector<uint8_t> a(q8_K_row_bytes(256 * kBlocks)), b(a.size());
    k->quantize_q8_K(x.data(), a.data(), 256 * kBlocks);
    quantize_row_q8_K(x.data(), b.data(), 256 * kBlocks);
    EXPECT_EQ(a, b) << k->name;
  }
}

TEST(Simd, ARowsResultDoesNotDependOnItsBatchOrOnTheThreadSplit) {
  for (const Kernels* k : fast_tables()) {
    for (const TestMatrix& t : all_formats()) {
      const Matrix& m = t.m;
      const int64_t rows = 11;
      auto x = randn(static_cast<size_t>(rows * m.n_in), 3);
      std::vector<float> all(static_cast<size_t>(rows * m.n_out)), one(static_cast<size_t>(m.n_out));
      kernel_matmul(*k, m, x.data(), all.data(), rows);
      for (int64_t r = 0; r < rows; ++r) {
        kernel_matmul(*k, m, x.data() + r * m.n_in, one.data(), 1);
        EXPECT_EQ(0, std::memcmp(one.data(), all.data() + r * m.n_out, 4 * static_cast<size_t>(m.n_out)))
            << k->name << " " << t.label << ": row " << r << " alone differs from the same row in a batch of " << rows;
      }
      // Decode-sized batches (one token per sequence of a server's step) take their own tiles.
      for (int64_t few : {2, 3, 4}) {
        std::vector<float> part(static_cast<size_t>(few * m.n_out));
        kernel_matmul(*k, m, x.data(), part.data(), few);
        EXPECT_EQ(0, std::memcmp(part.data(), all.data(), part.size() * 4))
            << k->name << " " << t.label << ": a batch of " << few << " differs from the same rows in a batch of " << rows;
      }
      // Outputs split at 16 (the ops' grain) give the same bits as one range.
      std::vector<float> split(all.size());
      const int64_t at = std::min<int64_t>(16, m.n_out - 1);
      kernel_matmul(*k, m, x.data(), split.data(), rows, 0, at);
      kernel_matmul(*k, m, x.data(), split.data(), rows, at, m.n_out);
      EXPECT_EQ(split, all) << k->name << " " << t.label;
    }
  }
}

TEST(Simd, QuantisedProductsAreBatchInvariantAcrossTheirPaths) {
  // q8_0/q4_0 tables switch layouts with the number of rows (in place for decode, repacked panels of 8
  // outputs for prefill, row blocks of 64): every row of a 70-row product, with output counts that leave
  // partial panels, must equal the same row computed alone, bit for bit.
  for (const Kernels* k : fast_tables()) {
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
      for (int64_t n_out : {1, 23, 37}) {
        const TestMatrix t = ggml_matrix(type, 224, n_out, 90 + static_cast<uint32_t>(n_out));
        const int64_t rows = 70;
        auto x = randn(static_cast<size_t>(rows * t.m.n_in), 11, 2.f);
        std::vector<float> all(static_cast<size_t>(rows * n_out)), some(all.size()), one(static_cast<size_t>(n_out));
        kernel_matmul(*k, t.m, x.data(), all.data(), rows);
        for (int64_t r = 0; r < rows; r += 9) {
          kernel_matmul(*k, t.m, x.data() + r * t.m.n_in, one.data(), 1);
          EXPECT_EQ(0, std::memcmp(one.data(), all.data() + r * n_out, 4 * one.size()))
              << k->name << " " << t.label << ": row " << r << " alone differs from the same row among 70";
        }
        for (int64_t part : {3, 9}) {  // 3 rows: the in-place path; 9: one full panel tile and one row
          kernel_matmul(*k, t.m, x.data() + 20 * t.m.n_in, some.data(), part);
          EXPECT_EQ(0, std::memcmp(some.data(), all.data() + 20 * n_out, 4 * static_cast<size_t>(part * n_out)))
              << k->name << " " << t.label << ": rows 20.." << 20 + part - 1;
        }
      }
    }
  }
}

TEST(Simd, KQuantProductsAreBatchInvariantAcrossTheirPaths) {
  // k-quant (and grid i-quant) products read rows in place for up to 7 rows and pack panels of 8 (AVX2) or 16 (AVX-512)
  // rows from 8 on, with tiles of 8, 4, 2 and 1 activation rows: every row of a 45-row product must equal
  // the same row alone and in every smaller batch, bit for bit; and the AVX2 and AVX-512 tables, which
  // follow the same order of arithmetic, must agree bit for bit.
  const Kernels* avx2 = avx2_kernels();
  const Kernels* vnni = avx512_vnni_kernels();
  // The grid i-quants share the k-quants' form and paths (iquant_blocks.h).
  std::vector<GgmlType> types(std::begin(kKQuants), std::end(kKQuants));
  for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S,
                     GgmlType::IQ1_S, GgmlType::IQ1_M})
    types.push_back(t);
  for (const Kernels* k : fast_tables()) {
    for (GgmlType type : types) {
      for (int64_t n_out : {1, 23, 40}) {
        const bool grid = std::find(std::begin(kKQuants), std::end(kKQuants), type) == std::end(kKQuants);
        const TestMatrix t = grid ? iquant_matrix(type, 768, n_out, 70 + static_cast<uint32_t>(n_out))
                                  : random_kquant(type, 768, n_out, 70 + static_cast<uint32_t>(n_out));
        if (k->act_format(t.m) != ActFormat::Q8_K) continue;  // the portable table: f32 activations
        const int64_t rows = 45;
        auto x = randn(static_cast<size_t>(rows * t.m.n_in), 12, 2.f);
        std::vector<float> all(static_cast<size_t>(rows * n_out));
        kernel_matmul(*k, t.m, x.data(), all.data(), rows);
        for (int64_t part : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31}) {
          const int64_t r0 = (part * 5) % (rows - part + 1);
          std::vector<float> some(static_cast<size_t>(part * n_out));
          kernel_matmul(*k, t.m, x.data() + r0 * t.m.n_in, some.data(), part);
          EXPECT_EQ(0, std::memcmp(some.data(), all.data() + r0 * n_out, 4 * some.size()))
              << k->name << " " << t.label << " n_out " << n_out << ": rows " << r0 << ".." << r0 + part - 1
              << " differ from the same rows among " << rows;
        }
        if (k == vnni && avx2) {
          std::vector<float> other(all.size());
          kernel_matmul(*avx2, t.m, x.data(), other.data(), rows);
          EXPECT_EQ(0, std::memcmp(other.data(), all.data(), 4 * all.size())) << t.label << " n_out " << n_out
              << ": the avx2 and avx512vnni tables differ";
        }
      }
    }
  }
}

TEST(Simd, ExactInOutTilesAgreeAcrossTablesAndBatches) {
  // The [in, out] prefill packs 16-column panels; AVX2 runs a tile per panel, the AVX-512 table a tile over
  // two panels (8 rows × 32 columns in zmm) and AVX2's for an odd panel left over. 85 outputs = two pairs,
  // one lone panel and a 5-column tail; 19 rows = tiles of 8, 8 and 3. Every row must equal the row alone
  // (the streaming path) and both tables must agree bit for bit.
  const Kernels* avx2 = avx2_kernels();
  const Kernels* vnni = avx512_vnni_kernels();
  if (!avx2 || !vnni) GTEST_SKIP() << "needs a CPU with AVX-512 VNNI (and AVX2)";
  for (const TestMatrix& t : {xai_int8(600, 85, 4, 81), f32_matrix(300, 85, Layout::InOut, 82)}) {
    const int64_t rows = 19;
    auto x = randn(static_cast<size_t>(rows * t.m.n_in), 13);
    std::vector<float> a(static_cast<size_t>(rows * t.m.n_out)), b(a.size()), one(static_cast<size_t>(t.m.n_out));
    kernel_matmul(*avx2, t.m, x.data(), a.data(), rows);
    kernel_matmul(*vnni, t.m, x.data(), b.data(), rows);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), 4 * a.size())) << t.label << ": the avx2 and avx512vnni tables differ";
    for (int64_t r = 0; r < rows; ++r) {
      kernel_matmul(*vnni, t.m, x.data() + r * t.m.n_in, one.data(), 1);
      EXPECT_EQ(0, std::memcmp(one.data(), b.data() + r * t.m.n_out, 4 * one.size())) << t.label << ": row " << r;
    }
  }
}

TEST(Simd, SlicesAreViewsThatMultiplyLikeTheWhole) {
  for (const Kernels* k : fast_tables()) {
    for (const TestMatrix& t : all_formats()) {
      const Matrix& m = t.m;
      const int64_t rows = 3;
      auto x = randn(static_cast<size_t>(rows * m.n_in), 8);
      std::vector<float> full(static_cast<size_t>(rows * m.n_out));
      kernel_matmul(*k, m, x.data(), full.data(), rows);
      // Output slice [5, 5+n): a strided view for [in, out] matrices, a row range for [out, in].
      const int64_t o0 = std::min<int64_t>(5, m.n_out / 3), n = m.n_out - o0 - 2;
      const Matrix s = m.slice_out(o0, n);
      std::vector<float> part(static_cast<size_t>(rows * n));
      kernel_matmul(*k, s, x.data(), part.data(), rows);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < n; ++o)
          EXPECT_EQ(part[static_cast<size_t>(r * n + o)], full[static_cast<size_t>(r * m.n_out + o0 + o)])
              << k->name << " " << t.label << " slice_out";
    }
  }
}

TEST(Simd, InputSlicesSumToTheWhole) {
  // Tensor parallelism splits linear_1 by input rows at scale-block boundaries: the partial products
  // of the halves add up to the whole product.
  for (const Kernels* k : fast_tables()) {
    const TestMatrix t = xai_int8(96, 40, 8, 9);
    const int64_t rows = 2, half = 48;
    auto x = randn(static_cast<size_t>(rows * 96), 10);
    std::vector<float> full(static_cast<size_t>(rows * 40)), lo(full.size()), hi(full.size());
    kernel_matmul(*k, t.m, x.data(), full.data(), rows);
    std::vector<float> xl, xh;
    for (int64_t r = 0; r < rows; ++r) {
      xl.insert(xl.end(), x.begin() + r * 96, x.begin() + r * 96 + half);
      xh.insert(xh.end(), x.begin() + r * 96 + half, x.begin() + (r + 1) * 96);
    }
    kernel_matmul(*k, t.m.slice_in(0, half), xl.data(), lo.data(), rows);
    kernel_matmul(*k, t.m.slice_in(half, half), xh.data(), hi.data(), rows);
    for (size_t i = 0; i < full.size(); ++i) EXPECT_NEAR(lo[i] + hi[i], full[i], 1e-5 * (1 + std::abs(full[i]))) << k->name;
  }
}

TEST(Simd, AttentionHelpersMatchFloat64) {
  for (const Kernels* k : fast_tables()) {
    for (int64_t hd : {128, 20}) {
      const int64_t n = 37, stride = hd + 3;
      auto q = randn(static_cast<size_t>(hd), 1), K = randn(static_cast<size_t>(n * stride), 2);
      auto p = randn(static_cast<size_t>(n), 3);
      std::vector<float> dots(static_cast<size_t>(n)), out(static_cast<size_t>(hd));
      k->dots(q.data(), K.data(), KvType::F32, stride, n, hd, dots.data());
      k->weighted_sum(p.data(), K.data(), KvType::F32, stride, n, hd, out.data());
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0;
        for (int64_t i = 0; i < hd; ++i) ref += static_cast<double>(q[i]) * K[j * stride + i];
        EXPECT_NEAR(dots[j], ref, 1e-5) << k->name;
      }
      for (int64_t i = 0; i < hd; ++i) {
        double ref = 0;
        for (int64_t j = 0; j < n; ++j) ref += static_cast<double>(p[j]) * K[j * stride + i];
        EXPECT_NEAR(out[i], ref, 1e-5) << k->name;
      }
    }
  }
}

TEST(Simd, AttentionHelpersReadHalfPrecisionCaches) {
  // f16/bf16 caches: each table reads the stored halves exactly (compared with the f32 of those halves).
  for (const Kernels* k : fast_tables()) {
    for (KvType t : {KvType::F16, KvType::BF16}) {
      const int64_t hd = 136, n = 29, stride = hd + 8;
      auto q = randn(static_cast<size_t>(hd), 4), src = randn(static_cast<size_t>(n * stride), 5);
      auto p = randn(static_cast<size_t>(n), 6);
      std::vector<uint16_t> half(src.size());
      store_kv_row(src.data(), half.data(), t, static_cast<int64_t>(src.size()));
      std::vector<float> widened(src.size());
      for (size_t i = 0; i < half.size(); ++i) widened[i] = t == KvType::F16 ? fp16_to_f32(half[i]) : bf16_to_f32(half[i]);
      EXPECT_NEAR(widened[3], src[3], t == KvType::F16 ? 2e-3 : 1.6e-2);  // rounding only
      std::vector<float> dh(static_cast<size_t>(n)), df(static_cast<size_t>(n)), oh(static_cast<size_t>(hd)),
          of(static_cast<size_t>(hd));
      k->dots(q.data(), half.data(), t, stride, n, hd, dh.data());
      k->dots(q.data(), widened.data(), KvType::F32, stride, n, hd, df.data());
      k->weighted_sum(p.data(), half.data(), t, stride, n, hd, oh.data());
      k->weighted_sum(p.data(), widened.data(), KvType::F32, stride, n, hd, of.data());
      EXPECT_EQ(dh, df) << k->name << " " << kv_type_name(t);
      EXPECT_EQ(oh, of) << k->name << " " << kv_type_name(t);
    }
  }
}

TEST(Simd, GeluMatchesFloat64) {
  std::vector<float> x = randn(4096, 21, 4.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 9.f, -9.f, 30.f, -30.f, 300.f, -300.f}) x.push_back(v);
  for (const Kernels* k : fast_tables()) {
    for (size_t n : {x.size(), size_t{7}}) {  // a vector run and a tail-only call
      std::vector<float> y(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
      k->gelu_tanh(y.data(), static_cast<int64_t>(n));
      for (size_t i = 0; i < n; ++i) {
        const double u = x[i];
        const double z = 0.7978845608028654 * (u + 0.044715 * u * u * u);
        const double exact = u / (1 + std::exp(-2 * z));  // = 0.5·u·(1 + tanh z), without cancellation
        // A few ulp, times the condition of e^(−2z) to the rounding of z in float (|2z| grows as u³);
        // below 1e-35 (u < −10, where the tables clamp e^(−2z) at e^88) every value is zero to a product.
        EXPECT_NEAR(y[i], exact, 4e-7 * std::abs(exact) * (1 + 2 * std::abs(z)) + 1e-35) << k->name << " u=" << u;
      }
    }
  }
}

// The attention logits' soft cap and the softmax (attention and router) against float64, for every
// table: scores from tiny to far past the cap, masked keys (−1e30: exactly 0 after the softmax), a fully
// masked row (uniform), lengths that are whole vectors, tails only, and both.
TEST(Simd, SoftCapAndSoftmaxMatchFloat64) {
  const float cap = 30.f, mult = 0.08838834764831845f;
  std::vector<float> x = randn(1000, 23, 60.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 7.f, -7.f, 7.1f, 339.f, -339.f, 1e6f, -1e6f}) x.push_back(v);
  for (const Kernels* k : fast_tables()) {
    std::vector<float> y = x;
    k->soft_cap(y.data(), static_cast<int64_t>(y.size()), cap, mult);
    for (size_t i = 0; i < x.size(); ++i) {
      const float arg = x[i] * mult / cap;  // the argument in f32, as every table forms it
      const double exact = cap * std::tanh(static_cast<double>(arg));
      EXPECT_NEAR(y[i], exact, 3e-7 * std::abs(exact) + 1e-37) << k->name << " x=" << x[i];
    }
    for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{64}, size_t{77}, size_t{1000}}) {
      std::vector<float> p(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n));
      if (n > 8) p[3] = p[n - 2] = -1e30f;  // masked keys
      std::vector<float> q = p;
      k->softmax(q.data(), static_cast<int64_t>(n));
      float mx = p[0];  // the max subtracted in f32, as every table does
      double sum = 0;
      for (float v : p) mx = std::max(mx, v);
      for (float v : p) sum += std::exp(static_cast<double>(v - mx));
      for (size_t i = 0; i < n; ++i) {
        const double exact = std::exp(static_cast<double>(p[i] - mx)) / sum;
        EXPECT_NEAR(q[i], exact, 4e-7 * exact + 1e-38) << k->name << " n=" << n << " i=" << i;
        if (p[i] == -1e30f) {
          EXPECT_EQ(q[i], 0.f) << k->name;
        }
      }
    }
    std::vector<float> masked(13, -1e30f);
    k->softmax(masked.data(), 13);
    for (float v : masked) EXPECT_FLOAT_EQ(v, 1.f / 13) << k->name << ": a fully masked row is uniform";
  }
}

TEST(Simd, GatedExpertProductEqualsItsParts) {
  // gelu(x·gate) ⊙ (x·up) as one operation = the two products, then the GELU, bit for bit, whatever
  // the rows, the threads and the types (equal types share one quantisation; mixed ones do not).
  const int64_t n_in = 512, n_out = 272;  // > 64 KB of weights: split over the threads
  for (auto [tg, tu] : {std::pair{GgmlType::Q4_K, GgmlType::Q4_K}, std::pair{GgmlType::Q8_0, GgmlType::Q8_0},
                        std::pair{GgmlType::Q4_K, GgmlType::Q8_0}}) {
    const TestMatrix g = ggml_matrix(tg, n_in, n_out, 31), u = ggml_matrix(tu, n_in, n_out, 32);
    for (int threads : {1, 2}) {
      Context ctx(threads);
      for (int64_t rows : {1, 9}) {
        const auto x = randn(static_cast<size_t>(rows * n_in), 33);
        std::vector<float> h(static_cast<size_t>(rows * n_out)), up(h.size()), g2(h.size()), u2(h.size());
        matmul_gelu_gated(ctx, g.m, u.m, x.data(), h.data(), up.data(), rows);
        matmul(ctx, g.m, x.data(), g2.data(), rows);
        matmul(ctx, u.m, x.data(), u2.data(), rows);
        ctx.kernels().gelu_tanh(g2.data(), rows * n_out);
        for (size_t i = 0; i < g2.size(); ++i) g2[i] *= u2[i];
        EXPECT_EQ(up, u2) << type_name(tg) << "/" << type_name(tu) << " rows " << rows;
        EXPECT_EQ(h, g2) << type_name(tg) << "/" << type_name(tu) << " rows " << rows;
      }
    }
  }
}

TEST(Simd, ThreadedProductEqualsOneThread) {
  const TestMatrix t = xai_int8(96, 300, 8, 12);
  auto x = randn(96 * 4, 13);
  std::vector<float> y1(4 * 300), y2(4 * 300);
  Context c1(1), c2(2);
  matmul(c1, t.m, x.data(), y1.data(), 4);
  matmul(c2, t.m, x.data(), y2.data(), 4);
  EXPECT_EQ(y1, y2);
}

}  // namespace groak::test
