// Scalar reference kernels: the oracle every faster kernel is tested against. Plain loops, written
// for clarity; dot products accumulate in double, so the result does not depend on the summation
// order: the same weights stored [in, out] or [out, in] give the same logits. No -ffast-math.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"

namespace groak {

const char* format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::XaiInt8: return "int8+bf16";
    case WeightFormat::Ggml: return "ggml";
  }
  return "?";
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::BF16: return "bf16";
  }
  return "?";
}

void store_kv_row(const float* src, void* dst, KvType t, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    switch (t) {
      case KvType::F32: std::memcpy(d + 4 * i, src + i, 4); break;
      case KvType::F16: {
        const uint16_t h = f32_to_fp16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
        break;
      }
      case KvType::BF16: {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
        break;
      }
    }
  }
}

namespace {

// Element i of a KV cache row block of type t.
inline float kv_element(const void* base, KvType t, int64_t i) {
  const uint8_t* p = static_cast<const uint8_t*>(base);
  switch (t) {
    case KvType::F32: return load_f32(p + 4 * i);
    case KvType::F16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return fp16_to_f32(h);
    }
    case KvType::BF16: return load_bf16(p + 2 * i);
  }
  return 0.f;
}

// Dequantised element (i, o) of w, for the row-access path (get_row) and OutIn matrices.
inline float element(const Matrix& w, int64_t i, int64_t o) {
  const int64_t row = w.layout == Layout::InOut ? i : o, col = w.layout == Layout::InOut ? o : i;
  const uint8_t* p = w.data + static_cast<size_t>(row) * w.stride();
  switch (w.format) {
    case WeightFormat::F32: return load_f32(p + 4 * static_cast<size_t>(col));
    case WeightFormat::XaiInt8: {
      const int64_t block = i / (w.n_in / w.scale_blocks);
      const float s = load_bf16(w.scales + 2 * static_cast<size_t>(block * w.scale_row() + o));
      return static_cast<float>(static_cast<int8_t>(p[col])) * s;  // exact in f32
    }
    case WeightFormat::Ggml: break;  // block formats are read a row at a time (read_row)
  }
  return 0.f;
}

// Output unit o's weights over all inputs, dequantised: [n_in].
void read_row(const Matrix& w, int64_t o, float* out) {
  if (w.format == WeightFormat::Ggml) {
    dequantize_row(w.ggml, w.data + static_cast<size_t>(o) * w.stride(), out, w.n_in);
    return;
  }
  for (int64_t i = 0; i < w.n_in; ++i) out[i] = element(w, i, o);
}

// y = x·W for an [in, out] matrix over outputs [o0, o1), accumulating in double.
// For int8 the scale is factored out of each input block (spec §7.1):
//   y[o] = Σ_b s[b][o] · Σ_{i in block b} x[i]·q[i][o]
void matmul_inout(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const Matrix& w = *a.w;
  const int64_t n_in = w.n_in, n = o1 - o0, R = a.n_rows;
  std::vector<double> blk(static_cast<size_t>(R * n));       // [R, n] one scale block
  std::vector<double> sum(static_cast<size_t>(R * n), 0.0);  // [R, n]
  const int64_t blocks = w.format == WeightFormat::XaiInt8 ? w.scale_blocks : 1;
  const int64_t block_len = n_in / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    std::fill(blk.begin(), blk.end(), 0.0);
    for (int64_t i = b * block_len; i < (b + 1) * block_len; ++i) {
      const uint8_t* row = w.data + static_cast<size_t>(i) * w.stride();
      for (int64_t o = o0; o < o1; ++o) {
        const double wio = w.format == WeightFormat::F32 ? load_f32(row + 4 * static_cast<size_t>(o))
                                                         : static_cast<int8_t>(row[o]);
        for (int64_t r = 0; r < R; ++r) blk[r * n + o - o0] += a.x[r * n_in + i] * wio;
      }
    }
    for (int64_t r = 0; r < R; ++r)
      for (int64_t o = o0; o < o1; ++o) {
        const double s = w.format == WeightFormat::F32
                             ? 1.0
                             : load_bf16(w.scales + 2 * static_cast<size_t>(b * w.scale_row() + o));
        sum[r * n + o - o0] += s * blk[r * n + o - o0];
      }
  }
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = o0; o < o1; ++o) a.y[r * a.y_stride + o] = static_cast<float>(sum[r * n + o - o0]);
}

// y = x·W for an [out, in] matrix: one dot product (double) per output unit.
void matmul_outin(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const Matrix& w = *a.w;
  std::vector<float> row(static_cast<size_t>(w.n_in));
  for (int64_t o = o0; o < o1; ++o) {
    read_row(w, o, row.data());
    for (int64_t r = 0; r < a.n_rows; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < w.n_in; ++i) sum += static_cast<double>(a.x[r * w.n_in + i]) * row[i];
      a.y[r * a.y_stride + o] = static_cast<float>(sum);
    }
  }
}

ActFormat ref_act_format(const Matrix&) { return ActFormat::F32; }

void ref_quantize_q8_0(const float* x, uint8_t* out, int64_t n) { quantize_row(GgmlType::Q8_0, x, out, n); }
void ref_quantize_q8_K(const float* x, uint8_t* out, int64_t n) { quantize_row_q8_K(x, out, n); }

void ref_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float*) {
  if (a.w->layout == Layout::InOut)
    matmul_inout(a, o0, o1);
  else
    matmul_outin(a, o0, o1);
}

void ref_get_row(const Matrix& w, int64_t o, float* out) { read_row(w, o, out); }

void ref_rms_norm(const float* x, const float* scale, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
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
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void ref_gelu_tanh(float* x, int64_t n) {
  // 0.5·u·(1 + tanh z) written as u / (1 + e^(−2z)): the same function without the cancellation of
  // 1 + tanh z for negative u; in double, so the oracle is exact to float precision.
  for (int64_t i = 0; i < n; ++i) {
    const double u = x[i];
    const double z = 0.7978845608028654 * (u + 0.044715 * u * u * u);
    x[i] = static_cast<float>(u / (1 + std::exp(-2 * z)));
  }
}

void ref_dots(const float* q, const void* K, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    double dot = 0;
    for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(q[i]) * kv_element(K, t, j * stride + i);
    out[j] = static_cast<float>(dot);
  }
}

void ref_weighted_sum(const float* p, const void* V, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  for (int64_t i = 0; i < hd; ++i) {
    double acc = 0;
    for (int64_t j = 0; j < n; ++j) acc += static_cast<double>(p[j]) * kv_element(V, t, j * stride + i);
    out[i] = static_cast<float>(acc);
  }
}

void ref_soft_cap(float* x, int64_t n, float cap, float mult) {
  for (int64_t j = 0; j < n; ++j) x[j] = cap * std::tanh(x[j] * mult / cap);
}

}  // namespace

const Kernels& reference_kernels() {
  static const Kernels k = {"reference",   ref_act_format, ref_quantize_q8_0, ref_quantize_q8_K,
                            ref_matmul,    ref_get_row,    ref_rms_norm,      ref_rope,
                            ref_softmax,   ref_gelu_tanh,  ref_soft_cap,      ref_dots,
                            ref_weighted_sum};
  return k;
}

}  // namespace groak
