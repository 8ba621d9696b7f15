// Quantizers for ggml's k-quants (Q2_K … Q6_K, 256-element super-blocks; layouts in quant_kquants.cpp)
// that write exactly the bytes of llama.cpp's ggml_quantize_chunk: quantize_row_*_ref without an
// importance matrix, quantize_row_*_impl with one (ggml-quants.c). Every k-quant uses the imatrix.
//
// Each type runs in three steps, as in ggml: (1) per sub-block, a scale (and min) search on the values;
// (2) the sub-block scales themselves quantised to 4, 6 or 8 bits against one f16 super-scale; (3) every
// value re-quantised with the rounded scales, then bit-packed. Steps 2 and 3 are shared by the reference
// and the weighted path of a type; only the searches and their weights differ.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/quant_impl.h"
#include "kernels/quant_search.h"

namespace groak::quant {

namespace {

// One weighted super-block: x[256] values, qw[256] their importances, b the block's bytes.
using WeightedBlockQuant = void (*)(const float* x, const float* qw, uint8_t* b);

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The weighted searches (make_qkx3_quants) of every _impl path try the same grid of inverse scales.
constexpr float kWeightedRmin = -0.9f, kWeightedRdelta = 0.05f;
constexpr int kWeightedSteps = 36;

// σ² of the weighted paths: factor·(Σ x²)/256 over the super-block (factor 1 for Q2_K, 2 for the others).
float superblock_sigma2(const float* x, float factor) {
  float sum_x2 = 0;
  for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
  return factor * sum_x2 / static_cast<float>(kQK_K);
}

// weight[l] = qw[l]·sqrt(σ² + x[l]²), l < n; returns Σ weight (in index order).
float importance_weights(const float* x, const float* qw, float sigma2, int n, float* weight) {
  float sum = 0;
  for (int l = 0; l < n; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
  for (int l = 0; l < n; ++l) sum += weight[l];
  return sum;
}

// 2-bit levels L[256] (values 0..3) → qs[64]: element 128h + 32s + l at bits 2s of qs[32h + l] (Q2_K, and
// the low bits of Q3_K).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* Lh = L + 128 * h;
      qs[32 * h + l] = static_cast<uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. y = d·sc·q − dmin·m, q in 0..3.

constexpr int kQ2Nmax = 3;

// Step 3: requantise with the stored 4-bit scales and mins (sub-blocks whose scale rounded to 0 keep the
// search's levels), then pack.
void q2_K_finish(const float* x, uint8_t* L, uint8_t* b) {
  const uint8_t* scales = b;
  const float d_all = load_half(b + 80), dmin_all = load_half(b + 82);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scales[j] & 0x0f);
    if (!d) continue;
    const float m = dmin_all * static_cast<float>(scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + m) / d), 0, kQ2Nmax));
  }
  pack_2bit(L, b + 16);
}

// quantize_row_q2_K_ref: per sub-block of 16 an asymmetric fit weighted by |x| minimising the absolute
// error; scales and mins to 4 bits against their maxima (d = max_scale/15, dmin = max_min/15).
void q_q2_K(const float* x, uint8_t* b) {
  constexpr float kQ4Scale = 15.f;
  uint8_t L[kQK_K];
  float weights[kQK_K], mins[16], scales[16];
  for (int l = 0; l < kQK_K; ++l) weights[l] = std::fabs(x[l]);
  for (int h = 0; h < 2; ++h)  // sub-blocks 8h … 8h + 7
    make_qkx_quants8(16, kQ2Nmax, x + 128 * h, weights + 128 * h, L + 128 * h, scales + 8 * h, mins + 8 * h, -0.5f,
                     0.1f, 15, ErrorNorm::Absolute);
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* packed = b;
  if (max_scale > 0) {
    const float iscale = kQ4Scale / max_scale;
    for (int j = 0; j < 16; ++j) packed[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    store_half(b + 80, max_scale / kQ4Scale);
  } else {
    std::memset(packed, 0, 16);
    store_half(b + 80, 0.f);
  }
  if (max_min > 0) {
    const float iscale = kQ4Scale / max_min;
    for (int j = 0; j < 16; ++j)
      packed[j] = static_cast<uint8_t>(packed[j] | (static_cast<unsigned>(nearest_int(iscale * mins[j])) << 4));
    store_half(b + 82, max_min / kQ4Scale);
  } else {
    store_half(b + 82, 0.f);
  }
  q2_K_finish(x, L, b);
}

// quantize_row_q2_K_impl: weights qw·sqrt(σ² + x²) (σ² = mean x² of the super-block), squared error, and
// the 4-bit scales and mins chosen by make_qp_quants weighted by each sub-block's total weight.
void q_q2_K_weighted(const float* x, const float* qw, uint8_t* b) {
  uint8_t L[kQK_K], Ls[16], Lm[16];
  float weight[kQK_K], mins[16], scales[16], sw[16];
  const float sigma2 = superblock_sigma2(x, 1.f);
  for (int j = 0; j < 16; ++j) sw[j] = importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight + 16 * j);
  for (int h = 0; h < 2; ++h)  // sub-blocks 8h … 8h + 7
    make_qkx_quants8(16, kQ2Nmax, x + 128 * h, weight + 128 * h, L + 128 * h, scales + 8 * h, mins + 8 * h,
                     kWeightedRmin, kWeightedRdelta, kWeightedSteps, ErrorNorm::Squared);
  store_half(b + 80, make_qp_quants(16, 15, scales, Ls, sw));
  store_half(b + 82, make_qp_quants(16, 15, mins, Lm, sw));
  for (int j = 0; j < 16; ++j) b[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
  q2_K_finish(x, L, b);
}

// ---------------------------------------------------------------------------------------------------------
// Q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales, biased by 32), d. y = d·(sc − 32)·(q − 4).

// The 16 biased scales l[j] in [0, 63] → 12 bytes: low nibbles in bytes 0–7 (j ≥ 8 in the high half of
// byte j − 8), the top 2 bits in bytes 8–11 (byte 8 + j%4, bits 2·(j/4)).
void pack_q3_K_scales(const int* l, uint8_t* packed) {
  std::memset(packed, 0, 12);
  for (int j = 0; j < 16; ++j) {
    if (j < 8) {
      packed[j] = static_cast<uint8_t>(l[j] & 0x0f);
    } else {
      packed[j - 8] = static_cast<uint8_t>(packed[j - 8] | ((l[j] & 0x0f) << 4));
    }
    packed[j % 4 + 8] = static_cast<uint8_t>(packed[j % 4 + 8] | ((l[j] >> 4) << (2 * (j / 4))));
  }
}

// Step 3: requantise to [−4, 3] with the stored scales, split off the high bit into hmask (bit k of
// hmask[m] for element 32k + m), pack the low 2 bits. L holds levels + 4.
void q3_K_finish(const float* x, int8_t* L, uint8_t* b) {
  const uint8_t* packed = b + 96;
  const float d_all = load_half(b + 108);
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (packed[j] & 0x0f) : (packed[j - 8] >> 4);
    const int sc = (lo | (((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    const float d = d_all * static_cast<float>(sc);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
  }
  uint8_t* hmask = b;
  std::memset(hmask, 0, 32);
  uint8_t low[kQK_K];
  for (int j = 0; j < kQK_K; ++j) {
    int l = L[j];
    if (l > 3) {
      hmask[j % 32] = static_cast<uint8_t>(hmask[j % 32] | (1u << (j / 32)));
      l -= 4;
    }
    low[j] = static_cast<uint8_t>(l);
  }
  pack_2bit(low, b + 32);
}

// quantize_row_q3_K_ref: per sub-block of 16 a symmetric fit (make_q3_quants, weights x²); scales to 6
// bits against the one of largest magnitude (d = −max_scale/32).
void q_q3_K(const float* x, uint8_t* b) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  int l6[16] = {};
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));  // ggml's int8_t, then clamp
      l6[j] = clamp_int(l, -32, 31) + 32;
    }
    pack_q3_K_scales(l6, b + 96);
    store_half(b + 108, 1 / iscale);
  } else {
    std::memset(b + 96, 0, 12);
    store_half(b + 108, 0.f);
  }
  q3_K_finish(x, L, b);
}

// quantize_row_q3_K_impl: weights qw·sqrt(σ² + x²) (σ² = 2·mean x²) in make_qx_quants, and the 16 scales
// quantised by make_qx_quants (nmax 32) weighted by each sub-block's total weight.
void q_q3_K_weighted(const float* x, const float* qw, uint8_t* b) {
  int8_t L[kQK_K], Ls[16];
  float scales[16], weight[16], sw[16];
  const float sigma2 = superblock_sigma2(x, 2.f);
  for (int j = 0; j < 16; ++j) {
    sw[j] = importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight);
    scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  const float d_block = make_qx_quants(16, 32, scales, Ls, sw);
  int l6[16];
  for (int j = 0; j < 16; ++j) l6[j] = Ls[j];
  pack_q3_K_scales(l6, b + 96);
  store_half(b + 108, d_block);
  q3_K_finish(x, L, b);
}

// ---------------------------------------------------------------------------------------------------------
// Q4_K and Q5_K: d, dmin, scales[12] (8 6-bit scales and mins, see scale_min_k4), [Q5_K: qh[32]], qs[128].

// Packs the 8 scale levels ls and min levels lm as get_scale_min_k4 reads them. Bytes are written in
// ggml's order with its uint8 truncation, so out-of-range levels (which ggml can produce from a degenerate
// search) pack to the same bytes.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* packed) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      packed[j] = ls[j];
      packed[j + 4] = lm[j];
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
      packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((ls[j] >> 4) << 6));
      packed[j] = static_cast<uint8_t>(packed[j] | ((lm[j] >> 4) << 6));
    }
  }
}

// Step 3 of both: levels in [0, nmax] from the stored 6-bit scales and mins of b (d at 0, dmin at 2,
// scales at 4); sub-blocks whose scale is 0 keep the search's levels.
void requantize_k4(const float* x, const uint8_t* b, int nmax, uint8_t* L) {
  const float d_all = load_half(b), dmin_all = load_half(b + 2);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, b + 4, &sc, &m);
    const float d = d_all * static_cast<float>(sc);
    if (!d) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
  }
}

// Q4_K packing: chunk c < 4 holds sub-block 2c in the low nibbles of qs[32c …], 2c+1 in the high ones.
void pack_q4_K(const uint8_t* L, uint8_t* b) {
  uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

// Q5_K packing: low 4 bits as Q4_K; the fifth bit of element 64c + l at bit 2c of qh[l], of element
// 64c + 32 + l at bit 2c + 1.
void pack_q5_K(const uint8_t* L, uint8_t* b) {
  uint8_t* qh = b + 16;
  uint8_t* qs = b + 48;
  std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
      qh[l] = static_cast<uint8_t>(qh[l] | ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
      qs[32 * c + l] = static_cast<uint8_t>((l1 & 0x0f) | ((l2 & 0x0f) << 4));
    }
  }
}

// quantize_row_q4_K_ref / q5_K_ref: per sub-block of 32 an asymmetric fit weighted by rms + |x|; scales
// and mins to 6 bits against their maxima (d = max_scale/63, dmin = max_min/63).
template <int kNmax>
void q_k4_reference(const float* x, uint8_t* b) {
  // The search grids differ: Q4_K tries 21 inverse scales from nmax − 1, Q5_K 16 from nmax − 0.5.
  constexpr float kRmin = kNmax == 15 ? -1.f : -0.5f;
  constexpr int kSteps = kNmax == 15 ? 20 : 15;
  uint8_t L[kQK_K];
  float weights[kQK_K], mins[8], scales[8];
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
  }
  make_qkx_quants8(32, kNmax, x, weights, L, scales, mins, kRmin, 0.1f, kSteps, ErrorNorm::Squared);
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // uint8_t wrap-around as in the reference, then capped at 63.
    ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
  }
  pack_scale_min_k4(ls, lm, b + 4);
  store_half(b, max_scale / 63.f);
  store_half(b + 2, max_min / 63.f);
  requantize_k4(x, b, kNmax, L);
  if constexpr (kNmax == 15) {
    pack_q4_K(L, b);
  } else {
    pack_q5_K(L, b);
  }
}

// quantize_row_q4_K_impl / q5_K_impl: weights qw·sqrt(σ² + x²) (σ² = 2·mean x²), squared error, and the
// 6-bit scales and mins chosen by make_qp_quants weighted by each sub-block's total weight (Q5_K caps the
// levels at 63, Q4_K does not).
template <int kNmax>
void q_k4_weighted(const float* x, const float* qw, uint8_t* b) {
  uint8_t L[kQK_K], ls[8], lm[8];
  float weights[kQK_K], sw[8], mins[8], scales[8];
  const float sigma2 = superblock_sigma2(x, 2.f);
  for (int j = 0; j < 8; ++j) sw[j] = importance_weights(x + 32 * j, qw + 32 * j, sigma2, 32, weights + 32 * j);
  make_qkx_quants8(32, kNmax, x, weights, L, scales, mins, kWeightedRmin, kWeightedRdelta, kWeightedSteps,
                   ErrorNorm::Squared);
  const float d_block = make_qp_quants(8, 63, scales, ls, sw);
  const float m_block = make_qp_quants(8, 63, mins, lm, sw);
  if constexpr (kNmax == 31) {
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, ls[j]);
      lm[j] = std::min<uint8_t>(63, lm[j]);
    }
  }
  pack_scale_min_k4(ls, lm, b + 4);
  store_half(b, d_block);
  store_half(b + 2, m_block);
  requantize_k4(x, b, kNmax, L);
  if constexpr (kNmax == 15) {
    pack_q4_K(L, b);
  } else {
    pack_q5_K(L, b);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Q6_K: ql[128], qh[64], scales[16] (int8), d. y = d·sc·(q − 32), q in 0..63.

// quantize_row_q6_K_ref (qw null: weights x²) and quantize_row_q6_K_impl (qw = the imatrix itself, no σ²
// term): per sub-block of 16 a symmetric fit (make_qx_quants, nmax 32); the 16 scales to int8 against the
// one of largest magnitude (d = −max_scale/128); values re-quantised to [−32, 31].
void q_q6_K_search(const float* x, const float* qw, uint8_t* b) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(b, 0, 210);
    return;
  }
  const float iscale = -128.f / max_scale;
  store_half(b + 208, 1 / iscale);
  int8_t sc8[16];
  for (int ib = 0; ib < 16; ++ib) sc8[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  std::memcpy(b + 192, sc8, 16);
  const float d_all = load_half(b + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc8[j]);
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
  }
  // Element 128h + 32r + l: low nibble in ql[64h + l + 32·(r&1)] (high half for r ≥ 2), top 2 bits at
  // bits 2r of qh[32h + l].
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
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

void q_q6_K(const float* x, uint8_t* b) { q_q6_K_search(x, nullptr, b); }

// ---------------------------------------------------------------------------------------------------------
// ggml_quantize_chunk's choice per super-block: the reference quantizer without an imatrix, the weighted
// one with (k-quant imatrices are per column, so block i reads imatrix[256·i …]).
template <BlockQuant kRef, WeightedBlockQuant kWeighted, size_t kBytes>
void ref_or_weighted(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  for (int64_t i = 0; i < n; i += kQK_K, dst += kBytes) {
    if (imatrix) {
      kWeighted(x + i, imatrix + i, dst);
    } else {
      kRef(x + i, dst);
    }
  }
}

}  // namespace

RowQuant kquant_row_quant(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: return ref_or_weighted<q_q2_K, q_q2_K_weighted, 84>;
    case GgmlType::Q3_K: return ref_or_weighted<q_q3_K, q_q3_K_weighted, 110>;
    case GgmlType::Q4_K: return ref_or_weighted<q_k4_reference<15>, q_k4_weighted<15>, 144>;
    case GgmlType::Q5_K: return ref_or_weighted<q_k4_reference<31>, q_k4_weighted<31>, 176>;
    case GgmlType::Q6_K: return ref_or_weighted<q_q6_K, q_q6_K_search, 210>;
    default: return ternary_row_quant(t);  // TQ1_0, TQ2_0 share the 256-element blocks
  }
}

}  // namespace groak::quant
