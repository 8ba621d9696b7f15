// ggml's legacy 32-element blocks (block_q4_0 … block_q8_0 in ggml-common.h): exact dequantisation in
// the element order and float expressions of dequantize_row_* (ggml-quants.c), and quantizers that write
// exactly the bytes of ggml_quantize_chunk: quantize_row_*_ref without an importance matrix,
// quantize_row_*_impl with one (Q8_0 ignores it, as ggml does).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/quant_impl.h"
#include "kernels/quant_search.h"

namespace groak::quant {

namespace {

// Dequantisation of one block: b = the block's bytes, y = its block_size() outputs. The float expressions
// keep ggml's order of operations so the results are bit-identical to dequantize_row_*.

// Q4_0: y[j] = d·(lo nibble of qs[j] − 8), y[j+16] = d·(hi nibble − 8).
void dq_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1: y = d·nibble + m.
void dq_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0: 5-bit q = nibble | (bit j of the little-endian u32 qh) << 4 (element j+16 uses bit j+16); y = d·(q − 16).
void dq_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(q0 - 16) * d;
    y[j + 16] = static_cast<float>(q1 - 16) * d;
  }
}

// Q5_1: same 5-bit q, y = d·q + m.
void dq_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(q0) * d + m;
    y[j + 16] = static_cast<float>(q1) * d + m;
  }
}

// Q8_0: y = d·q, q int8.
void dq_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// ---------------------------------------------------------------------------------------------------------
// Quantizers: ggml's quantize_row_*_ref (no importance matrix) per block, and quantize_row_*_impl (with
// one) per row. The reference ones cast floats to bytes with C's (int8_t)/(uint8_t) casts, reproduced
// by truncated_low_byte; their MIN(15, ·) compares the *signed* byte, as ggml does.

constexpr int kBlock = 32;  // QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0

// ggml's MIN(cap, (int8_t)v), stored into a uint8_t.
inline uint8_t min_int8_cast(float v, int cap) {
  const int s = static_cast<int8_t>(truncated_low_byte(v));
  return static_cast<uint8_t>(std::min(cap, s));
}

// 4-bit levels q[32] → qs[16]: element j in the low nibble of byte j, element j+16 in the high nibble.
void pack_q4(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(q[j] | (static_cast<unsigned>(q[j + 16]) << 4));
}

// 5-bit levels q[32] → qh (u32, little-endian: bit j = fifth bit of element j) and qs[16] (low nibbles as
// pack_q4).
void pack_q5(const uint8_t* q, uint8_t* qh_bytes, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
    qh |= ((q[j] & 0x10u) >> 4) << j;
    qh |= ((q[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

// quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (half away from zero).
void q_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < kBlock; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);  // ggml's MAX
  const float d = amax / 127.f;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  for (int j = 0; j < kBlock; ++j) b[2 + j] = truncated_low_byte(std::round(x[j] * id));  // |·| ≤ 127
}

// The signed value of largest magnitude (the first one on ties): ggml's `max` of the symmetric types.
float signed_absmax(const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < kBlock; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// quantize_row_q4_0_ref: d = max/−8, so the value of largest magnitude maps to level 0 exactly;
// q = min(15, trunc(x/d + 8.5)).
void q_q4_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x) / -8;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  uint8_t q[kBlock];
  for (int j = 0; j < kBlock; ++j) q[j] = min_int8_cast(x[j] * id + 8.5f, 15);
  pack_q4(q, b + 2);
}

// quantize_row_q5_0_ref: as Q4_0 with 32 levels: d = max/−16, q = min(31, trunc(x/d + 16.5)).
void q_q5_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x) / -16;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  uint8_t q[kBlock];
  for (int j = 0; j < kBlock; ++j) q[j] = min_int8_cast(x[j] * id + 16.5f, 31);
  pack_q5(q, b + 2, b + 6);
}

// min and max of a block, starting from ±FLT_MAX as quantize_row_q4_1_ref does.
void block_min_max(const float* x, float* min, float* max) {
  *min = std::numeric_limits<float>::max();
  *max = -std::numeric_limits<float>::max();
  for (int j = 0; j < kBlock; ++j) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

// quantize_row_q4_1_ref: m = min, d = (max − min)/15, q = min(15, trunc((x − m)/d + 0.5)).
void q_q4_1(const float* x, uint8_t* b) {
  float min, max;
  block_min_max(x, &min, &max);
  const float d = (max - min) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  store_half(b + 2, min);
  uint8_t q[kBlock];
  for (int j = 0; j < kBlock; ++j) q[j] = min_int8_cast((x[j] - min) * id + 0.5f, 15);
  pack_q4(q, b + 4);
}

// quantize_row_q5_1_ref: m = min, d = (max − min)/31, q = (uint8_t)((x − m)/d + 0.5) (no cap in ggml).
void q_q5_1(const float* x, uint8_t* b) {
  float min, max;
  block_min_max(x, &min, &max);
  const float d = (max - min) / 31;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  store_half(b + 2, min);
  uint8_t q[kBlock];
  for (int j = 0; j < kBlock; ++j) q[j] = truncated_low_byte((x[j] - min) * id + 0.5f);
  pack_q5(q, b + 4, b + 8);
}

// With an importance matrix (quantize_row_q*_impl): each element's weight is imatrix[j]·sqrt(σ² + x²),
// σ² = mean x² over the whole row, so the scale search favours the columns that matter to the model.
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / static_cast<float>(n);
}

void importance_weights(const float* xb, const float* qw, float sigma2, float* weight) {
  for (int j = 0; j < kBlock; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// Symmetric types (Q4_0: nmax 8, Q5_0: nmax 16): make_qx_quants with the weights; d = its scale.
template <int kNmax>
void row_symmetric(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr bool kFiveBit = kNmax == 16;
  constexpr size_t kBytes = kFiveBit ? 22 : 18;
  const float sigma2 = row_sigma2(x, n);
  float weight[kBlock];
  int8_t L[kBlock];
  uint8_t q[kBlock];
  for (int64_t ib = 0; ib < n / kBlock; ++ib, dst += kBytes) {
    const float* xb = x + kBlock * ib;
    importance_weights(xb, imatrix + kBlock * ib, sigma2, weight);
    store_half(dst, make_qx_quants(kBlock, kNmax, xb, L, weight));
    for (int j = 0; j < kBlock; ++j) q[j] = static_cast<uint8_t>(L[j]);  // in [0, 2·kNmax)
    if constexpr (kFiveBit) {
      pack_q5(q, dst + 2, dst + 6);
    } else {
      pack_q4(q, dst + 2);
    }
  }
}

// Asymmetric types (Q4_1: nmax 15, Q5_1: nmax 31): make_qkx3_quants with the weights; m = −its min.
template <int kNmax>
void row_asymmetric(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr bool kFiveBit = kNmax == 31;
  constexpr size_t kBytes = kFiveBit ? 24 : 20;
  // ggml's search grid for every weighted asymmetric search (make_qkx3_quants' callers).
  constexpr float kRmin = -0.9f, kRdelta = 0.05f;
  constexpr int kSteps = 36;
  const float sigma2 = row_sigma2(x, n);
  float weight[8 * kBlock], d[8], min[8];
  uint8_t L[8 * kBlock], Laux[kBlock];
  const int64_t nb = n / kBlock;
  for (int64_t ib = 0; ib < nb; ib += 8) {  // 8 blocks per search call (one per SIMD lane) while they last
    const int64_t m = std::min<int64_t>(8, nb - ib);
    const float* xb = x + kBlock * ib;
    for (int64_t j = 0; j < m; ++j)
      importance_weights(xb + kBlock * j, imatrix + kBlock * (ib + j), sigma2, weight + kBlock * j);
    if (m == 8) {
      make_qkx_quants8(kBlock, kNmax, xb, weight, L, d, min, kRmin, kRdelta, kSteps, ErrorNorm::Squared);
    } else {
      for (int64_t j = 0; j < m; ++j)
        d[j] = make_qkx_quants(kBlock, kNmax, xb + kBlock * j, weight + kBlock * j, L + kBlock * j, &min[j], Laux,
                               kRmin, kRdelta, kSteps, ErrorNorm::Squared);
    }
    for (int64_t j = 0; j < m; ++j, dst += kBytes) {
      store_half(dst, d[j]);
      store_half(dst + 2, -min[j]);
      if constexpr (kFiveBit) {
        pack_q5(L + kBlock * j, dst + 4, dst + 8);
      } else {
        pack_q4(L + kBlock * j, dst + 4);
      }
    }
  }
}

// ggml_quantize_chunk's choice: the reference block quantizer without an imatrix, the weighted one with.
template <BlockQuant kRef, RowQuant kWeighted, size_t kBytes>
void ref_or_weighted(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  if (imatrix) return kWeighted(x, dst, n, imatrix);
  for (int64_t i = 0; i < n; i += kBlock, dst += kBytes) kRef(x + i, dst);
}

}  // namespace

BlockDequant legacy_dequant(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return dq_q4_0;
    case GgmlType::Q4_1: return dq_q4_1;
    case GgmlType::Q5_0: return dq_q5_0;
    case GgmlType::Q5_1: return dq_q5_1;
    case GgmlType::Q8_0: return dq_q8_0;
    default: return nullptr;
  }
}

BlockQuant legacy_quant(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return q_q4_0;
    case GgmlType::Q4_1: return q_q4_1;
    case GgmlType::Q5_0: return q_q5_0;
    case GgmlType::Q5_1: return q_q5_1;
    case GgmlType::Q8_0: return q_q8_0;
    default: return nullptr;
  }
}

// Q8_0 has no weighted search (ggml's quantize_q8_0 ignores the imatrix): its BlockQuant serves.
RowQuant legacy_row_quant(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return ref_or_weighted<q_q4_0, row_symmetric<8>, 18>;
    case GgmlType::Q4_1: return ref_or_weighted<q_q4_1, row_asymmetric<15>, 20>;
    case GgmlType::Q5_0: return ref_or_weighted<q_q5_0, row_symmetric<16>, 22>;
    case GgmlType::Q5_1: return ref_or_weighted<q_q5_1, row_asymmetric<31>, 24>;
    default: return nullptr;
  }
}

}  // namespace groak::quant
