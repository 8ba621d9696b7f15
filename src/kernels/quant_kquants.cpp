// ggml's k-quants (256-element super-blocks, block_q2_K … block_q6_K in ggml-common.h, QK_K = 256,
// K_SCALE_SIZE = 12): exact dequantisation as dequantize_row_*, the reference quantizers
// quantize_row_{q4_K,q6_K}_ref with their helpers make_qx_quants / make_qkx2_quants, and q8_K, the form
// k-quant products read their activations in (ggml-quants.c).
#include <algorithm>
#include <cassert>
#include <cmath>

#include "kernels/quant_impl.h"
#include "kernels/tensor.h"
#include "util/error.h"

namespace groak {
namespace quant {

namespace {

// Q2_K: 16 sub-blocks of 16. Element e = 128·h + 32·s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1 of
// qs[32·h + l]; its sub-block is 8·h + 2·s + l/16, whose byte in scales[] holds the 4-bit scale (low) and
// 4-bit min (high): y = (d·scale)·q − (dmin·min).
void dq_q2_K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = load_half(b + 80), dmin = load_half(b + 82);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[8 * h + 2 * s + half];
        const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int q = (qs[32 * h + l] >> (2 * s)) & 3;
          y[128 * h + 32 * s + l] = dl * static_cast<float>(q) - ml;
        }
      }
    }
  }
}

// Q3_K: like Q2_K's order for the low 2 bits; the third bit of element 128·h + 32·s + l is bit 4·h + s of
// hmask[l] (set = +0, clear = −4). The 16 scales are 6-bit, biased by 32, packed in 12 bytes: low nibble
// from scales[j] (j < 8) or the high nibble of scales[j − 8]; top 2 bits from scales[8 + j%4] >> 2·(j/4).
void dq_q3_K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* packed = b + 96;
  const float d = load_half(b + 108);
  int scale[16];
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (packed[j] & 0x0f) : (packed[j - 8] >> 4);
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    scale[j] = (lo | (hi << 4)) - 32;
  }
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      const int hbit = 4 * h + s;
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(scale[8 * h + 2 * s + half]);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int q = ((qs[32 * h + l] >> (2 * s)) & 3) - (((hmask[l] >> hbit) & 1) ? 0 : 4);
          y[128 * h + 32 * s + l] = dl * static_cast<float>(q);
        }
      }
    }
  }
}

// The 6-bit scale and min of sub-block j (< 8) of a Q4_K/Q5_K block (ggml's get_scale_min_k4): j < 4 in
// the low 6 bits of bytes j and j+4; j ≥ 4 as nibbles of byte j+4 with the top 2 bits in the spare high
// bits of bytes j−4 (scale) and j (min).
void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K: 8 sub-blocks of 32. Chunk c < 4 covers elements 64c … 64c+63: the low nibbles of qs[32c + l] are
// sub-block 2c, the high nibbles sub-block 2c+1; y = (d·scale)·q − (dmin·min).
void dq_q4_K(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * static_cast<float>(qs[32 * c + l] & 0x0f) - m1;
    for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * static_cast<float>(qs[32 * c + l] >> 4) - m2;
  }
}

// Q5_K: Q4_K plus a fifth bit: qh[l] bit 2c for element 64c + l, bit 2c+1 for element 64c + 32 + l.
void dq_q5_K(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[32 * c + l] & 0x0f) + (((qh[l] >> (2 * c)) & 1) ? 16 : 0);
      y[64 * c + l] = d1 * static_cast<float>(q) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[32 * c + l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) ? 16 : 0);
      y[64 * c + 32 + l] = d2 * static_cast<float>(q) - m2;
    }
  }
}

// Q6_K: 16 sub-blocks of 16, int8 scales. Half h < 2 covers elements 128h …: for l < 32 and r < 4,
// element 128h + 32r + l takes its low 4 bits from ql[64h + l + 32·(r&1)] (low nibble for r < 2, high
// for r ≥ 2) and its top 2 bits from bits 2r..2r+1 of qh[32h + l]; its scale is scales[8h + 2r + l/16];
// y = (d·scale)·(q − 32).
void dq_q6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const uint8_t* scales = b + 192;
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int r = 0; r < 4; ++r) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lowbyte = ql[64 * h + l + 32 * (r & 1)];
        const int lo = r < 2 ? (lowbyte & 0x0f) : (lowbyte >> 4);
        const int hi = (qh[32 * h + l] >> (2 * r)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        const int8_t sc = static_cast<int8_t>(scales[8 * h + 2 * r + l / 16]);
        y[128 * h + 32 * r + l] = d * static_cast<float>(sc) * static_cast<float>(q);
      }
    }
  }
}

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a group below this is all zeros

// make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL): symmetric scale search for a group of n values,
// weights x²; L[i] = q + nmax with q in [−nmax, nmax). Returns the scale.
float make_qx_quants_rmse1(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_qkx2_quants(n, nmax, x, weights, L, &the_min, Laux, rmin, rdelta, nstep, use_mad = false):
// asymmetric x ≈ scale·L − the_min with L in [0, nmax], searching nstep+1 candidate scales and refitting
// scale and min by weighted least squares. Returns the scale; *the_min ≥ 0.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// quantize_row_q4_K_ref: per sub-block of 32 an asymmetric (scale, min) fit weighted by rms + |x|, then
// scales and mins quantised to 6 bits against the block maxima (d = max_scale/63, dmin = max_min/63), then
// every value re-quantised with the rounded scales.
void q_q4_K(const float* x, uint8_t* b) {
  uint8_t L[kQK_K];
  uint8_t Laux[32];
  float weights[32];
  float mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* packed = b + 4;
  std::memset(packed, 0, 12);
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    // uint8_t wrap-around as in the reference, then capped at 63.
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0x0f) | ((lm & 0x0f) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  store_half(b, max_scale / 63.f);
  store_half(b + 2, max_min / 63.f);
  const float d_all = load_half(b), dmin_all = load_half(b + 2);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, packed, &sc, &m);
    const float d = d_all * static_cast<float>(sc);
    if (!d) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(15, l)));
    }
  }
  uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

// quantize_row_q6_K_ref: per sub-block of 16 a symmetric scale (make_qx_quants, nmax 32, weights x²); the
// 16 scales quantised to int8 against the one of largest magnitude (d = −max_scale/128); values
// re-quantised to [−32, 31] with the rounded scales.
void q_q6_K(const float* x, uint8_t* b) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(b, 0, 210);
    return;
  }
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  int8_t sc8[16];
  const float iscale = -128.f / max_scale;
  store_half(b + 208, 1 / iscale);
  for (int ib = 0; ib < 16; ++ib) sc8[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  std::memcpy(b + 192, sc8, 16);
  const float d_all = load_half(b + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc8[j]);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = nearest_int(x[16 * j + ii] / d);
      L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* Lh = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
      ql[64 * h + l] = static_cast<uint8_t>((q1 & 0x0f) | ((q3 & 0x0f) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((q2 & 0x0f) | ((q4 & 0x0f) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

}  // namespace

BlockDequant kquant_dequant(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: return dq_q2_K;
    case GgmlType::Q3_K: return dq_q3_K;
    case GgmlType::Q4_K: return dq_q4_K;
    case GgmlType::Q5_K: return dq_q5_K;
    case GgmlType::Q6_K: return dq_q6_K;
    default: return nullptr;
  }
}

BlockQuant kquant_quant(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K: return q_q4_K;
    case GgmlType::Q6_K: return q_q6_K;
    default: return nullptr;
  }
}

RowQuant kquant_row_quant(GgmlType) { return nullptr; }

}  // namespace quant

using quant::load_half;
using quant::nearest_int;

size_t q8_K_row_bytes(int64_t n) {
  if (n < 0 || n % kQK_K != 0) {
    throw Error("row of " + std::to_string(n) + " activations cannot be quantised to q8_K: the length must be a " +
                "non-negative multiple of " + std::to_string(kQK_K));
  }
  return static_cast<size_t>(n / kQK_K) * kQ8_KBlockBytes;
}

// quantize_row_q8_K_ref, block by block. Layout of a block: d at byte 0, qs at 4, bsums at 260.
void quantize_row_q8_K(const float* x, uint8_t* dst, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t i = 0; i < n; i += kQK_K, x += kQK_K, dst += kQ8_KBlockBytes) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];
    float d = 0.f;
    if (!amax) {
      std::memset(qs, 0, sizeof qs);
      std::memset(bsums, 0, sizeof bsums);  // ggml leaves them unwritten: every sum of zeros is 0
    } else {
      const float iscale = -127.f / max;
      // |iscale·x| ≤ 127 for finite x (plus a rounding step), so the int8 cast below is exact.
      for (int j = 0; j < kQK_K; ++j) qs[j] = static_cast<int8_t>(std::max(-128, std::min(127, nearest_int(iscale * x[j]))));
      for (int j = 0; j < kQK_K / 16; ++j) {
        int sum = 0;
        for (int ii = 0; ii < 16; ++ii) sum += qs[16 * j + ii];
        bsums[j] = static_cast<int16_t>(sum);
      }
      d = 1 / iscale;
    }
    std::memcpy(dst, &d, 4);
    std::memcpy(dst + 4, qs, kQK_K);
    std::memcpy(dst + 4 + kQK_K, bsums, sizeof bsums);
  }
}

void dequantize_row_q8_K(const uint8_t* src, float* dst, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t i = 0; i < n; i += kQK_K, src += kQ8_KBlockBytes) {
    const float d = load_f32(src);
    for (int j = 0; j < kQK_K; ++j) dst[i + j] = d * static_cast<float>(static_cast<int8_t>(src[4 + j]));
  }
}

}  // namespace groak
