// IQ3_XXS and IQ3_S quantizers: llama.cpp's quantize_iq3_xxs / quantize_iq3_s (quantize_row_iq3_xxs_impl
// with grid size 256, quantize_row_iq3_s_impl with block size 32; ggml-quants.c, c392e5094), byte for byte.
//
// Both split a 256-element super-block into 8 blocks of 32 and a block into 8 groups of 4 magnitudes that
// must be a point of a 3-bit lattice codebook (iq3xxs_grid: 256 points, iq3s_grid: 512); signs are stored
// apart. Each block gets a scale from the lattice search (search_lattice_scale); the super-block stores
// d = max scale/31 (times a fudge factor ggml applies) and each block a 4-bit multiple of it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/quantize_iquants.h"

namespace groak::quant {

namespace {

constexpr int kBlock = 32;                   // weights per block
constexpr int kBlocks = kQK_K / kBlock;      // 8 per super-block
constexpr int kMaxLevel = 7;                 // kMaxQ − 1: levels 0 … 7 (odd values 1 … 15)
constexpr float kSigmaFactor = 2.f;          // σ² = 2·mean(x²) in the imatrix weights
constexpr float kGroupMaxEpsXxs = 1e-8f;     // GROUP_MAX_EPS_IQ3_XXS: a block below this is all zero
constexpr float kXxsScaleFudge = 1.0125f;    // ggml: "small improvement via this fudge factor"
constexpr float kSScaleFudge = 1.033f;       // the same for IQ3_S

// The weights of block xb[0, 32): imatrix·sqrt(σ² + x²), or x² without an imatrix; waux = sqrt(weight).
void block_weights(const float* xb, const float* qw, float sigma2, float* w, float* waux) {
  for (int i = 0; i < kBlock; ++i) w[i] = qw ? qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
  for (int i = 0; i < kBlock; ++i) waux[i] = std::sqrt(w[i]);
}

// The 4-bit scale of a block: round_nearest((scale/d − 1)/2) clamped to [0, 15], so scale ≈ d·(2l + 1).
int block_scale_code(float id, float scale) {
  const int l = round_nearest(0.5f * (id * scale - 1));
  return std::clamp(l, 0, 15);
}

float largest(const float* v, int n) {
  float max = v[0];
  for (int i = 1; i < n; ++i) max = max > v[i] ? max : v[i];
  return max;
}

}  // namespace

// IQ3_XXS (98 bytes: f16 d, qs[64] grid indices, then per block a uint32 of 4 × 7 sign bits and the 4-bit
// scale in bits 28…31).
void quantize_row_iq3_xxs(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  const LatticeCodebook& cb = lattice(Lattice::IQ3_XXS);
  const LatticeSearch search{&cb, kBlock, kMaxLevel, 15, 0.2f, LatticeSearch::OnGridStart::Kept, false};
  float w[kBlock], waux[kBlock], xval[kBlock], scales[kBlocks];
  int8_t l[kBlock] = {};          // levels: carried from block to block as in ggml
  bool on_grid[kBlock / 4] = {};  // likewise
  uint8_t signs[4];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 98) {
    std::memset(dst, 0, 98);
    uint8_t* qs = dst + 2;
    uint8_t* scales_and_signs = dst + 66;  // [8] uint32
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, kSigmaFactor);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, w, waux);
      for (int k = 0; k < 4; ++k) signs[k] = fold_signs_even(xb + 8 * k, w + 8 * k, xval + 8 * k);
      const float max = largest(xval, kBlock);
      if (max < kGroupMaxEpsXxs) {
        scales[ib] = 0;
        std::memset(l, 0, sizeof l);
        continue;
      }
      float scale = search_lattice_scale(search, xval, w, waux, max, l, on_grid);
      if (scale < 0) {  // cannot happen for sign-folded data; ggml flips the first 4 sign bytes then
        scale = -scale;
        for (uint8_t& s : signs) s = static_cast<uint8_t>(~s & 127);
      }
      for (int k = 0; k < kBlock / 4; ++k) qs[8 * ib + k] = static_cast<uint8_t>(std::max(0, cb.find(cb.key_of(l + 4 * k))));
      const uint32_t packed = signs[0] | (signs[1] << 7) | (signs[2] << 14) | (static_cast<uint32_t>(signs[3]) << 21);
      std::memcpy(scales_and_signs + 4 * ib, &packed, 4);
      scales[ib] = scale;
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale == 0) {
      std::memset(dst, 0, 98);
      continue;
    }
    const float d = max_scale / 31;
    store_half(dst, d * kXxsScaleFudge);
    const float id = 1 / d;
    for (int ib = 0; ib < kBlocks; ++ib) {
      uint32_t packed;
      std::memcpy(&packed, scales_and_signs + 4 * ib, 4);
      packed |= static_cast<uint32_t>(block_scale_code(id, scales[ib])) << 28;
      std::memcpy(scales_and_signs + 4 * ib, &packed, 4);
    }
  }
}

// IQ3_S (110 bytes: f16 d, qs[64] index low bytes, qh[8] index bit 8 (bit k of qh[ib] for group k of block
// ib), signs[32] (8 explicit sign bits per 8 weights), scales[4] two 4-bit codes each; y = d·(1 + 2l)).
//
// As in ggml, a block that is exactly zero is skipped without advancing the qs and signs write positions:
// the next block's indices and signs land in its place (and its qh bits stay at the block's own position).
void quantize_row_iq3_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  const LatticeCodebook& cb = lattice(Lattice::IQ3_S);
  const LatticeSearch search{&cb, kBlock, kMaxLevel, 9, 0.2f, LatticeSearch::OnGridStart::NoneOnGrid, true};
  float w[kBlock], waux[kBlock], xval[kBlock], scales[kBlocks];
  int8_t l[kBlock] = {};
  bool on_grid[kBlock / 4] = {};
  uint8_t signs[4];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 110) {
    std::memset(dst, 0, 110);
    uint8_t* qs = dst + 2;       // write cursor
    uint8_t* qh = dst + 66;
    uint8_t* sign_out = dst + 74;  // write cursor
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, kSigmaFactor);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, w, waux);
      for (int k = 0; k < 4; ++k) signs[k] = fold_signs(xb + 8 * k, xval + 8 * k);
      const float max = largest(xval, kBlock);
      if (max == 0) {
        scales[ib] = 0;
        continue;
      }
      float scale = search_lattice_scale(search, xval, w, waux, max, l, on_grid);
      if (scale < 0) {
        scale = -scale;
        for (uint8_t& s : signs) s = static_cast<uint8_t>(~s);
      }
      for (int k = 0; k < kBlock / 4; ++k) {
        const int g = std::max(0, cb.find(cb.key_of(l + 4 * k)));
        qs[k] = static_cast<uint8_t>(g & 255);
        qh[ib] = static_cast<uint8_t>(qh[ib] | ((g >> 8) << k));
      }
      qs += kBlock / 4;
      std::memcpy(sign_out, signs, 4);
      sign_out += 4;
      scales[ib] = scale;
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale == 0) continue;
    const float d = max_scale / 31;
    store_half(dst, d * kSScaleFudge);
    const float id = 1 / d;
    for (int ib = 0; ib < kBlocks; ib += 2)
      dst[106 + ib / 2] = static_cast<uint8_t>(block_scale_code(id, scales[ib]) | (block_scale_code(id, scales[ib + 1]) << 4));
  }
}

}  // namespace groak::quant
