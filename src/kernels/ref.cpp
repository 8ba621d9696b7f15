// Scalar reference kernels: the oracle every faster kernel is tested against. Plain loops, f32
// arithmetic as the model specifies; no -ffast-math (the summation order is the written one).
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace groak {

const char* format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::XaiInt8: return "int8+bf16";
  }
  return "?";
}

namespace {

// Dequantised element (i, o) of w, for the row-access path (get_row) and OutIn matrices.
inline float element(const Matrix& w, int64_t i, int64_t o) {
  const size_t idx = w.layout == Layout::InOut ? static_cast<size_t>(i * w.n_out + o)
                                               : static_cast<size_t>(o * w.n_in + i);
  switch (w.format) {
    case WeightFormat::F32: return load_f32(w.data + 4 * idx);
    case WeightFormat::XaiInt8: {
      const int64_t block = i / (w.n_in / w.scale_blocks);
      const float s = load_bf16(w.scales + 2 * static_cast<size_t>(block * w.n_out + o));
      return static_cast<float>(static_cast<int8_t>(w.data[idx])) * s;  // exact in f32
    }
  }
  return 0.f;
}

// y = x·W for an [in, out] matrix: stream the rows of W once, accumulating every output.
// For int8 the scale is factored out of each input block (spec §7.1):
//   y[o] = Σ_b s[b][o] · Σ_{i in block b} x[i]·q[i][o]
void matmul_inout(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  std::vector<float> acc(static_cast<size_t>(n_rows * n_out));  // [n_rows, n_out] per-block partial sums
  std::vector<float> row(static_cast<size_t>(n_out));           // one dequantised-free row of W
  for (int64_t r = 0; r < n_rows * n_out; ++r) y[r] = 0.f;
  const int64_t blocks = w.format == WeightFormat::XaiInt8 ? w.scale_blocks : 1;
  const int64_t block_len = n_in / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t i = b * block_len; i < (b + 1) * block_len; ++i) {
      if (w.format == WeightFormat::F32) {
        for (int64_t o = 0; o < n_out; ++o) row[o] = load_f32(w.data + 4 * static_cast<size_t>(i * n_out + o));
      } else {
        const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + i * n_out;
        for (int64_t o = 0; o < n_out; ++o) row[o] = static_cast<float>(q[o]);
      }
      for (int64_t r = 0; r < n_rows; ++r) {
        const float xi = x[r * n_in + i];
        float* a = acc.data() + r * n_out;
        for (int64_t o = 0; o < n_out; ++o) a[o] += xi * row[o];
      }
    }
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* a = acc.data() + r * n_out;
      float* yr = y + r * n_out;
      if (w.format == WeightFormat::F32) {
        for (int64_t o = 0; o < n_out; ++o) yr[o] += a[o];
      } else {
        const uint8_t* s = w.scales + 2 * static_cast<size_t>(b * n_out);
        for (int64_t o = 0; o < n_out; ++o) yr[o] += load_bf16(s + 2 * o) * a[o];
      }
    }
  }
}

// y = x·W for an [out, in] matrix: one dot product per output unit.
void matmul_outin(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  const int64_t n_in = w.n_in;
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t o = 0; o < w.n_out; ++o) {
    for (int64_t i = 0; i < n_in; ++i) row[i] = element(w, i, o);
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* xr = x + r * n_in;
      // 8 independent partial sums: same result on every machine, and the compiler can vectorise it.
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= n_in; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += xr[i + j] * row[i + j];
      float sum = 0.f;
      for (; i < n_in; ++i) sum += xr[i] * row[i];
      for (int j = 0; j < 8; ++j) sum += part[j];
      y[r * w.n_out + o] = sum;
    }
  }
}

void ref_matmul(const Matrix& w, const float* x, float* y, int64_t n_rows) {
  if (w.layout == Layout::InOut)
    matmul_inout(w, x, y, n_rows);
  else
    matmul_outin(w, x, y, n_rows);
}

void ref_get_row(const Matrix& w, int64_t o, float* out) {
  for (int64_t i = 0; i < w.n_in; ++i) out[i] = element(w, i, o);
}

void ref_rms_norm(const float* x, const float* scale, float* y, int64_t n, float eps) {
  float ss = 0.f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = scale[i] * (x[i] * inv);
}

// Rotate-half (NeoX) pairing: dimension i pairs with i + head_dim/2 (spec §2.4).
void ref_rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, float base) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // inv_freq[i] = 1 / base^(2i/head_dim) and θ = pos·inv_freq, both in f32 like the reference.
    const float inv_freq = 1.f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    const float theta = static_cast<float>(pos) * inv_freq;
    const float c = std::cos(theta), s = std::sin(theta);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + h * head_dim;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

void ref_softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void ref_gelu_tanh(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    x[i] = 0.5f * u * (1.f + std::tanh(kSqrt2OverPi * (u + 0.044715f * u * u * u)));
  }
}

}  // namespace

const Kernels& reference_kernels() {
  static const Kernels k = {"reference", ref_matmul, ref_get_row, ref_rms_norm, ref_rope, ref_softmax, ref_gelu_tanh};
  return k;
}

}  // namespace groak
