// IQ2_XXS, IQ2_XS and IQ2_S quantizers: llama.cpp's quantize_iq2_xxs / quantize_iq2_xs / quantize_iq2_s
// (quantize_row_iq2_*_impl and make_qp_quants of ggml-quants.c, c392e5094), byte for byte.
//
// All three store groups of 8 magnitudes as a point of a 2-bit lattice codebook (levels 0, 1, 2 searched as
// q = 1, 3, 5) plus signs, with a 4-bit scale per block (32 weights in IQ2_XXS, 16 in IQ2_XS and IQ2_S) as
// a multiple of the super-block's f16 d = max block scale/31.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/quant_search.h"
#include "kernels/quantize_iquants.h"

namespace groak::quant {

namespace {

constexpr int kMaxLevel = 2;             // kMaxQ − 1 = 2: levels 0, 1, 2
constexpr float kGroupMaxEpsS = 1e-8f;   // GROUP_MAX_EPS_IQ2_S
constexpr float kSScaleFudge = 0.9875f;  // ggml's IQ2_S fudge factor on d

// Weights of n values: imatrix·sqrt(σ² + x²); IQ2_XXS and IQ2_XS cannot run without an imatrix in ggml (it
// asserts), so a null one reads as all ones here. waux = sqrt(weight).
void imatrix_weights(const float* xb, const float* qw, float sigma2, int n, float* w, float* waux) {
  for (int i = 0; i < n; ++i) w[i] = (qw ? qw[i] : 1.f) * std::sqrt(sigma2 + xb[i] * xb[i]);
  for (int i = 0; i < n; ++i) waux[i] = std::sqrt(w[i]);
}

float largest(const float* v, int n) {
  float max = v[0];
  for (int i = 1; i < n; ++i) max = max > v[i] ? max : v[i];
  return max;
}

int block_scale_code(float id, float scale) { return std::clamp(round_nearest(0.5f * (id * scale - 1)), 0, 15); }


// The grid index of levels l[0, 8) (on the grid after the search; 0 if not, where ggml aborts).
int index_of(const LatticeCodebook& cb, const int8_t* l) {
  bool in_range = true;
  for (int i = 0; i < 8; ++i) in_range = in_range && l[i] >= 0 && l[i] <= kMaxLevel;
  return in_range ? std::max(0, cb.find(cb.key_of(l))) : 0;
}

}  // namespace

// IQ2_XXS (66 bytes: f16 d; per block of 32 two uint32: 4 grid indices (bytes), then 4 × 7 sign bits and the
// 4-bit scale in bits 28…31). The search starts from make_qp_quants' scale and tries 13 scales around it.
void quantize_row_iq2_xxs(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kBlock = 32, kBlocks = kQK_K / kBlock;
  const LatticeCodebook& cb = lattice(Lattice::IQ2_XXS);
  float w[kBlock], waux[kBlock], xval[kBlock], scales[kBlocks];
  int8_t l[kBlock], laux[kBlock];
  uint8_t signs[4];
  uint32_t q2[2 * kBlocks];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 66) {
    std::memset(q2, 0, sizeof q2);
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, 1.f);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      imatrix_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, kBlock, w, waux);
      for (int k = 0; k < 4; ++k) signs[k] = fold_signs_even(xb + 8 * k, w + 8 * k, xval + 8 * k);
      const float max = largest(xval, kBlock);
      if (max < kGroupMaxEps) {
        scales[ib] = 0;
        continue;
      }
      float scale = make_qp_quants(kBlock, kMaxLevel + 2, xval, reinterpret_cast<uint8_t*>(l), w);
      const float eff_max = scale * static_cast<float>(kMaxLevel + 1);
      float best = 0;
      for (int is = -6; is <= 6; ++is) {
        const float id = (5.f + static_cast<float>(is) * 0.1f) / eff_max;
        const float this_scale = 1 / id;
        for (int k = 0; k < 4; ++k) {
          int8_t* lk = laux + 8 * k;
          for (int i = 0; i < 8; ++i) lk[i] = odd_level(id, xval[8 * k + i], kMaxLevel);
          const uint32_t key = cb.key_of(lk);
          if (cb.find(key) < 0) best_neighbour(cb, key, xval + 8 * k, waux + 8 * k, this_scale, lk);
        }
        const LevelFit f = fit_odd_levels(xval, w, laux, kBlock);
        if (f.sumq2 > 0 && f.sumqx * f.sumqx > best * f.sumq2) {
          scale = f.sumqx / f.sumq2;
          best = scale * f.sumqx;
          std::copy(laux, laux + kBlock, l);
        }
      }
      if (scale > 0) {  // re-round every group at the best scale
        const float id = 1 / scale;
        for (int k = 0; k < 4; ++k) {
          int8_t* lk = l + 8 * k;
          for (int i = 0; i < 8; ++i) lk[i] = odd_level(id, xval[8 * k + i], kMaxLevel);
          const uint32_t key = cb.key_of(lk);
          if (cb.find(key) < 0) best_neighbour(cb, key, xval + 8 * k, waux + 8 * k, scale, lk);
        }
        const LevelFit f = fit_odd_levels(xval, w, l, kBlock);
        if (f.sumq2 > 0) scale = f.sumqx / f.sumq2;
      }
      if (scale < 0) {  // cannot happen for sign-folded data; ggml flips the signs then
        scale = -scale;
        for (uint8_t& s : signs) s = static_cast<uint8_t>(~s & 127);
      }
      for (int k = 0; k < 4; ++k) {
        q2[2 * ib] |= static_cast<uint32_t>(index_of(cb, l + 8 * k)) << (8 * k);
        q2[2 * ib + 1] |= static_cast<uint32_t>(signs[k]) << (7 * k);
      }
      scales[ib] = scale;
      max_scale = std::max(max_scale, scale);
    }
    std::memset(dst, 0, 66);
    if (max_scale == 0) continue;
    const float d = max_scale / 31;
    store_half(dst, d);
    const float id = 1 / d;
    for (int ib = 0; ib < kBlocks; ++ib) q2[2 * ib + 1] |= static_cast<uint32_t>(block_scale_code(id, scales[ib])) << 28;
    std::memcpy(dst + 2, q2, sizeof q2);
  }
}

// IQ2_XS (74 bytes: f16 d, uint16 qs[32] = 9-bit grid index | 7 sign bits << 9, scales[8] two 4-bit codes).
void quantize_row_iq2_xs(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kBlock = 16, kBlocks = kQK_K / kBlock;
  const LatticeCodebook& cb = lattice(Lattice::IQ2_XS);
  const LatticeSearch search{&cb, kBlock, kMaxLevel, 9, 0.1f, LatticeSearch::OnGridStart::AllOnGrid, false};
  float w[kBlock], waux[kBlock], xval[kBlock], scales[kBlocks];
  int8_t l[kBlock] = {};  // carried from block to block as in ggml
  bool on_grid[2];
  uint8_t signs[2];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 74) {
    std::memset(dst, 0, 74);
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, 1.f);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      imatrix_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, kBlock, w, waux);
      for (int k = 0; k < 2; ++k) signs[k] = fold_signs_even(xb + 8 * k, w + 8 * k, xval + 8 * k);
      const float max = largest(xval, kBlock);
      if (max < kGroupMaxEps) {
        scales[ib] = 0;
        std::memset(l, 0, sizeof l);
        continue;
      }
      float scale = search_lattice_scale(search, xval, w, waux, max, l, on_grid);
      if (scale < 0) {
        scale = -scale;
        for (uint8_t& s : signs) s = static_cast<uint8_t>(~s & 127);
      }
      for (int k = 0; k < 2; ++k) {
        const uint16_t q = static_cast<uint16_t>(index_of(cb, l + 8 * k) | (signs[k] << 9));
        std::memcpy(dst + 2 + 2 * (2 * ib + k), &q, 2);
      }
      scales[ib] = scale;
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale == 0) {
      std::memset(dst, 0, 74);
      continue;
    }
    const float d = max_scale / 31;
    store_half(dst, d);
    const float id = 1 / d;
    for (int ib = 0; ib < kBlocks; ++ib)
      dst[66 + ib / 2] = static_cast<uint8_t>(dst[66 + ib / 2] | (block_scale_code(id, scales[ib]) << (4 * (ib % 2))));
  }
}

// IQ2_S (82 bytes: f16 d, qs[32] index low bytes, signs[32] (8 explicit bits per group), qh[8] index bits
// 8…9 (2 per group), scales[8] two 4-bit codes). Without an imatrix the weights are σ²/4 + x².
void quantize_row_iq2_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kBlock = 16, kBlocks = kQK_K / kBlock;
  const LatticeCodebook& cb = lattice(Lattice::IQ2_S);
  const LatticeSearch search{&cb, kBlock, kMaxLevel, 9, 0.1f, LatticeSearch::OnGridStart::AllOnGrid, false};
  float w[kBlock], waux[kBlock], xval[kBlock], scales[kBlocks];
  int8_t l[kBlock] = {};  // carried from block to block as in ggml
  bool on_grid[2];
  uint8_t signs[2];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 82) {
    std::memset(dst, 0, 82);
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, 2.f);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      if (imatrix) {
        imatrix_weights(xb, imatrix + ibl + kBlock * ib, sigma2, kBlock, w, waux);
      } else {
        for (int i = 0; i < kBlock; ++i) w[i] = 0.25f * sigma2 + xb[i] * xb[i];
        for (int i = 0; i < kBlock; ++i) waux[i] = std::sqrt(w[i]);
      }
      for (int k = 0; k < 2; ++k) signs[k] = fold_signs(xb + 8 * k, xval + 8 * k);
      const float max = largest(xval, kBlock);
      if (max < kGroupMaxEpsS) {
        scales[ib] = 0;
        continue;
      }
      float scale = search_lattice_scale(search, xval, w, waux, max, l, on_grid);
      if (scale < 0) {
        scale = -scale;
        for (uint8_t& s : signs) s = static_cast<uint8_t>(~s);
      }
      for (int k = 0; k < 2; ++k) {
        const int i8 = 2 * ib + k;
        const int g = index_of(cb, l + 8 * k);
        dst[2 + i8] = static_cast<uint8_t>(g & 255);
        dst[66 + i8 / 4] = static_cast<uint8_t>(dst[66 + i8 / 4] | ((g >> 8) << (2 * (i8 % 4))));
        dst[34 + i8] = signs[k];
      }
      scales[ib] = scale;
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale == 0) continue;
    const float d = max_scale / 31;
    store_half(dst, d * kSScaleFudge);
    const float id = 1 / d;
    for (int ib = 0; ib < kBlocks; ++ib)
      dst[74 + ib / 2] = static_cast<uint8_t>(dst[74 + ib / 2] | (block_scale_code(id, scales[ib]) << (4 * (ib % 2))));
  }
}

}  // namespace groak::quant
