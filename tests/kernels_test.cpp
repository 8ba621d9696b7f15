// Each reference kernel against its formula, evaluated independently in double precision.
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/kernels.h"
#include "model/grok.h"
#include "kernel_util.h"
#include "test_util.h"

namespace groak::test {

namespace {
const Kernels& K = reference_kernels();

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

TEST(Kernels, RmsNormMatchesFormula) {
  const int64_t n = 67;
  auto x = random_vec(n, 1, 3.f), scale = random_vec(n, 2);
  std::vector<float> y(n);
  K.rms_norm(x.data(), scale.data(), y.data(), n, 1e-5f);
  double ms = 0;
  for (float v : x) ms += static_cast<double>(v) * v;
  ms /= n;
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], scale[i] * x[i] / std::sqrt(ms + 1e-5), 1e-5 * std::abs(y[i]) + 1e-7);
  // eps matters for tiny inputs: x = 0 gives 0, not NaN.
  std::vector<float> z(n, 0.f);
  K.rms_norm(z.data(), scale.data(), y.data(), n, 1e-5f);
  for (float v : y) EXPECT_EQ(v, 0.f);
}

TEST(Kernels, RopeIsRotateHalfWithBase10000) {
  const int64_t heads = 3, hd = 16, pos = 37;
  auto x = random_vec(heads * hd, 3);
  auto y = x;
  K.rope(y.data(), heads, hd, pos, 10000.f);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double theta = pos / std::pow(10000.0, 2.0 * i / hd);
      const double a = x[h * hd + i], b = x[h * hd + i + hd / 2];
      EXPECT_NEAR(y[h * hd + i], a * std::cos(theta) - b * std::sin(theta), 2e-5);
      EXPECT_NEAR(y[h * hd + i + hd / 2], b * std::cos(theta) + a * std::sin(theta), 2e-5);
    }
  }
  // Position 0 is the identity; rotation preserves each pair's norm.
  auto z = x;
  K.rope(z.data(), heads, hd, 0, 10000.f);
  EXPECT_EQ(z, x);
}

TEST(Kernels, GeluIsTheTanhApproximation) {
  std::vector<float> x = {-12.f, -3.f, -1.f, -0.5f, 0.f, 0.25f, 1.f, 2.5f, 8.f, 15.f};
  auto y = x;
  K.gelu_tanh(y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = x[i];
    const double tanh_form = 0.5 * u * (1 + std::tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
    const double erf_form = 0.5 * u * (1 + std::erf(u / std::sqrt(2.0)));
    EXPECT_NEAR(y[i], tanh_form, 1e-6 * std::max(1.0, std::abs(tanh_form)));
    // The two forms differ by ~1e-4 near |u| = 2; make sure we are on the tanh side of that gap.
    if (std::abs(tanh_form - erf_form) > 1e-5) {
      EXPECT_LT(std::abs(y[i] - tanh_form), std::abs(y[i] - erf_form));
    }
  }
}

TEST(Kernels, SoftmaxSumsToOneAndIsShiftInvariant) {
  std::vector<float> x = {1000.f, 999.f, 998.f, -1e30f};
  auto y = x;
  K.softmax(y.data(), 4);
  const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(y[0], 1 / z, 1e-6);
  EXPECT_NEAR(y[1], std::exp(-1.0) / z, 1e-6);
  EXPECT_NEAR(y[2], std::exp(-2.0) / z, 1e-6);
  EXPECT_EQ(y[3], 0.f);
  // A fully masked row (all -1e30) becomes uniform, as in model.py.
  std::vector<float> m(5, -1e30f);
  K.softmax(m.data(), 5);
  for (float v : m) EXPECT_FLOAT_EQ(v, 0.2f);
}

TEST(Kernels, TopTwoKeepsRawProbabilitiesOrderAndTies) {
  std::vector<float> p = {0.05f, 0.30f, 0.10f, 0.30f, 0.25f};
  EXPECT_EQ(top_k_experts(p.data(), 5, 2), (std::vector<int64_t>{1, 3}));  // tie: lower index first
  std::vector<float> q = {0.1f, 0.2f, 0.4f, 0.3f};
  EXPECT_EQ(top_k_experts(q.data(), 4, 2), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(top_k_experts(q.data(), 4, 1), (std::vector<int64_t>{2}));
}

// Builds an xAI int8 matrix [n_in, n_out] with `blocks` scale rows at a deliberately odd offset.
struct XaiMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
  std::vector<int8_t> q;
  std::vector<float> s;  // [blocks, n_out] as f32
  XaiMatrix(int64_t n_in, int64_t n_out, int64_t blocks, uint32_t seed) : q(n_in * n_out), s(blocks * n_out) {
    std::mt19937 g(seed);
    for (auto& v : q) v = static_cast<int8_t>(static_cast<int>(g() % 255) - 127);
    std::uniform_real_distribution<float> ud(0.001f, 0.05f);
    for (auto& v : s) v = bf16_to_f32(f32_to_bf16(ud(g)));  // exactly representable in bf16
    bytes.resize(3 + q.size() + 1 + 2 * s.size());
    std::memcpy(bytes.data() + 3, q.data(), q.size());  // offset 3: unaligned
    uint8_t* sp = bytes.data() + 3 + q.size() + 1;      // odd offset for the bf16 scales too
    for (size_t i = 0; i < s.size(); ++i) {
      uint16_t b = f32_to_bf16(s[i]);
      std::memcpy(sp + 2 * i, &b, 2);
    }
    m.format = WeightFormat::XaiInt8;
    m.layout = Layout::InOut;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = bytes.data() + 3;
    m.scales = sp;
    m.scale_blocks = blocks;
  }
  double w(int64_t i, int64_t o) const {
    const int64_t b = i / (m.n_in / m.scale_blocks);
    return static_cast<double>(q[i * m.n_out + o]) * s[b * m.n_out + o];
  }
};

TEST(Kernels, DequantisationIsExactForColumnAndRowBlockScales) {
  for (int64_t blocks : {1, 8}) {
    XaiMatrix x(48, 5, blocks, 7);
    // get_row on an [in, out] matrix reads output unit o's weights: W[:, o].
    std::vector<float> col(48);
    for (int64_t o = 0; o < 5; ++o) {
      K.get_row(x.m, o, col.data());
      for (int64_t i = 0; i < 48; ++i) EXPECT_EQ(col[i], static_cast<float>(x.w(i, o))) << "int8 x bf16 is exact in f32";
    }
  }
}

TEST(Kernels, MatmulMatchesDoubleOnMisalignedInt8) {
  for (int64_t blocks : {1, 8}) {
    const int64_t n_in = 64, n_out = 37, rows = 3;
    XaiMatrix x(n_in, n_out, blocks, 11);
    auto in = random_vec(rows * n_in, 12);
    std::vector<float> y(rows * n_out);
    kernel_matmul(K, x.m, in.data(), y.data(), rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < n_out; ++o) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n_in; ++i) ref += in[r * n_in + i] * x.w(i, o), mag += std::abs(in[r * n_in + i] * x.w(i, o));
        EXPECT_NEAR(y[r * n_out + o], ref, 1e-6 * mag + 1e-7) << "blocks " << blocks << " row " << r << " out " << o;
      }
  }
}

TEST(Kernels, MatmulF32BothLayoutsMisaligned) {
  const int64_t n_in = 21, n_out = 13, rows = 2;
  auto w = random_vec(n_in * n_out, 5);  // logical W[i][o]
  auto in = random_vec(rows * n_in, 6);
  for (Layout layout : {Layout::InOut, Layout::OutIn}) {
    std::vector<uint8_t> bytes(1 + 4 * w.size());
    for (int64_t i = 0; i < n_in; ++i)
      for (int64_t o = 0; o < n_out; ++o) {
        const size_t idx = layout == Layout::InOut ? i * n_out + o : o * n_in + i;
        std::memcpy(bytes.data() + 1 + 4 * idx, &w[i * n_out + o], 4);
      }
    Matrix m;
    m.format = WeightFormat::F32;
    m.layout = layout;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = bytes.data() + 1;
    std::vector<float> y(rows * n_out);
    kernel_matmul(K, m, in.data(), y.data(), rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < n_out; ++o) {
        double ref = 0;
        for (int64_t i = 0; i < n_in; ++i) ref += static_cast<double>(in[r * n_in + i]) * w[i * n_out + o];
        EXPECT_NEAR(y[r * n_out + o], ref, 1e-5);
      }
  }
}

TEST(Kernels, Bf16Conversion) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);        // halfway between 1 and 1+2^-7: ties to even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);        // halfway, odd below: rounds up
  EXPECT_EQ(bf16_to_f32(0xc2f7), -123.5f);
}

}  // namespace groak::test

namespace groak::test {

// The portable table against the oracle on every weight format, misaligned, several row counts
// (the SIMD tables have their own, stricter test: simd_test.cpp).
TEST(Kernels, PortableMatmulMatchesReferenceOnAllFormats) {
  const Kernels& F = portable_kernels();
  const Kernels& R = reference_kernels();
  std::vector<Matrix> cases;
  XaiMatrix xai1(256, 40, 1, 21), xai8(256, 40, 8, 22);
  cases.push_back(xai1.m);
  cases.push_back(xai8.m);
  std::vector<std::vector<uint8_t>> keep;
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K,
                     GgmlType::Q6_K}) {
    const int64_t n_in = 256, n_out = 19;
    auto w = random_vec(n_in * n_out, 30 + static_cast<uint32_t>(t));
    std::vector<uint8_t> bytes(1 + n_out * row_bytes(t, n_in));
    for (int64_t o = 0; o < n_out; ++o) quantize_row(t, w.data() + o * n_in, bytes.data() + 1 + o * row_bytes(t, n_in), n_in);
    keep.push_back(std::move(bytes));
    Matrix m;
    m.format = WeightFormat::Ggml;
    m.ggml = t;
    m.layout = Layout::OutIn;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = keep.back().data() + 1;  // odd address
    cases.push_back(m);
  }
  for (const Matrix& m : cases) {
    for (int64_t rows : {1, 3}) {
      auto x = random_vec(rows * m.n_in, 99);
      std::vector<float> yf(rows * m.n_out), yr(rows * m.n_out);
      kernel_matmul(F, m, x.data(), yf.data(), rows);
      kernel_matmul(R, m, x.data(), yr.data(), rows);
      double scale = 0;
      for (float v : yr) scale = std::max(scale, std::abs(static_cast<double>(v)));
      for (size_t i = 0; i < yf.size(); ++i)
        EXPECT_NEAR(yf[i], yr[i], 1e-5 * scale) << format_name(m.format) << " ggml " << static_cast<int>(m.ggml);
    }
  }
}

}  // namespace groak::test
