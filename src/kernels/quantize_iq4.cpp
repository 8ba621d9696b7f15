// IQ4_NL and IQ4_XS quantizers: llama.cpp's quantize_iq4_nl / quantize_iq4_xs (quantize_row_iq4_nl_impl of
// ggml-quants.c, c392e5094), byte for byte. Both pick, per block of 32, the scale whose nearest non-linear
// levels (kvalues_iq4nl) fit the block best in a weighted least-squares sense; IQ4_XS then stores the 8
// block scales of a super-block as 6-bit multiples of one f16 scale. And MXFP4 (not in c392e5094): see below.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "kernels/quant_iquants_grids.h"
#include "kernels/quant_search.h"
#include "kernels/quantize_iquants.h"

namespace groak::quant {

namespace {

constexpr int kBlock = 32;             // weights per IQ4 block (QK4_NL; IQ4_XS's sub-block)
constexpr int kLevels = 16;            // kvalues_iq4nl
constexpr int kScaleTries = 7;         // ggml's ntry: scales (itry + values[0])/max for itry in [−7, 7]
constexpr float kGroupMaxEps = 1e-15f; // GROUP_MAX_EPS: a block below this is all zero

// kvalues_iq4nl as floats (exact): the search compares and subtracts in f32 either way, and a float table
// saves an int → float conversion at every step of the bisection.
constexpr std::array<float, kLevels> kLevelValues = [] {
  std::array<float, kLevels> v{};
  for (int i = 0; i < kLevels; ++i) v[i] = kvalues_iq4nl[i];
  return v;
}();

// ggml's best_index_int8: the index of the level nearest to x (the lower one on a tie), by bisection.
int nearest_level(float x) {
  const float* values = kLevelValues.data();
  if (x <= values[0]) return 0;
  if (x >= values[kLevels - 1]) return kLevels - 1;
  int lo = 0, hi = kLevels - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < values[mid]) hi = mid; else lo = mid;
  }
  return x - values[hi - 1] < values[hi] - x ? hi - 1 : hi;
}

// Σ w·q·x and Σ w·q² of block x[0, 32) at levels nearest to id·x: the weighted least-squares fit of scale
// d = Σwqx / Σwq² has error −(Σwqx)²/Σwq², so a larger Σwqx²/Σwq² is a better scale.
struct Fit {
  float sumqx = 0, sumq2 = 0;
};
Fit fit_levels(const float* xb, const float* w, float id, uint8_t* l_out) {
  Fit f;
  for (int j = 0; j < kBlock; ++j) {
    const int l = nearest_level(id * xb[j]);
    if (l_out) l_out[j] = static_cast<uint8_t>(l);
    const float q = kLevelValues[l];
    f.sumqx += w[j] * q * xb[j];
    f.sumq2 += w[j] * q * q;
  }
  return f;
}

// The best scale of one block of 32 (ggml's first loop of quantize_row_iq4_nl_impl with ntry = 7). w are
// its weights; l gets the levels of the first guess (d = −max/values[0]), which IQ4_NL keeps only when the
// block is all zero. Returns 0 for an all-zero block, and NaN (as ggml) when every weight is zero (an
// imatrix that is zero over the whole block); first_guess then gets −max/values[0].
float block_scale(const float* xb, const float* w, uint8_t* l, float* first_guess) {
  float amax = 0, max = 0;  // the first element of largest magnitude, with its sign
  for (int j = 0; j < kBlock; ++j) {
    const float ax = std::fabs(xb[j]);
    if (ax > amax) {
      amax = ax;
      max = xb[j];
    }
  }
  if (amax < kGroupMaxEps) return 0.f;
  const float v0 = kvalues_iq4nl[0];  // −127
  float d = -max / v0;
  *first_guess = d;
  Fit f = fit_levels(xb, w, 1 / d, l);
  d = f.sumqx / f.sumq2;
  float best = d * f.sumqx;
  // The 15 candidates' fits at once (a SIMD table puts one per lane), then ggml's comparisons in order.
  constexpr int kTries = 2 * kScaleTries + 1;
  static_assert(kTries <= kMaxIq4Candidates);
  float ids[kTries], sumqx[kTries], sumq2[kTries];
  for (int t = 0; t < kTries; ++t) ids[t] = static_cast<float>(t - kScaleTries + kvalues_iq4nl[0]) / max;
  chosen_search_kernels().iq4_fits(xb, w, ids, kTries, sumqx, sumq2);
  for (int t = 0; t < kTries; ++t) {
    if (sumq2[t] > 0 && sumqx[t] * sumqx[t] > best * sumq2[t]) {
      d = sumqx[t] / sumq2[t];
      best = d * sumqx[t];
    }
  }
  return d;
}

// The weights of a block: imatrix·sqrt(σ² + x²) with σ² = 2·mean(x²) of the (super-)block, or x² without
// an imatrix.
void block_weights(const float* xb, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < kBlock; ++j) w[j] = qw ? qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
}

float mean_square_times_2(const float* x, int n) {
  float sigma2 = 0;
  for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
  return sigma2 * (2.f / static_cast<float>(n));
}

// Levels l[0, 32·k) → qs: byte j of block i holds element 32i + j (low nibble) and 32i + 16 + j (high).
void pack_nibbles(const uint8_t* l, uint8_t* qs, int n) {
  for (int i = 0; i < n / kBlock; ++i)
    for (int j = 0; j < 16; ++j) qs[16 * i + j] = static_cast<uint8_t>(l[32 * i + j] | (l[32 * i + 16 + j] << 4));
}

// 2^(e − 128): the E8M0 scale halved, as kvalues_mxfp4 are the E2M1 values doubled (ggml's
// ggml_e8m0_to_fp32_half; e < 2 gives the subnormals 2^-128, 2^-127).
float e8m0_half_scale(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The index of the MXFP4 value nearest to x at scale d: argmin |kvalues_mxfp4[i]·d − x| (the first on a tie).
int nearest_mxfp4(float x, float d) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kvalues_mxfp4[0]) * d - x);
  for (int i = 1; i < kLevels; ++i) {
    const float err = std::fabs(static_cast<float>(kvalues_mxfp4[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

}  // namespace

void scalar_iq4_fits(const float* x, const float* w, const float* ids, int m, float* sumqx, float* sumq2) {
  for (int t = 0; t < m; ++t) {
    const Fit f = fit_levels(x, w, ids[t], nullptr);
    sumqx[t] = f.sumqx;
    sumq2[t] = f.sumq2;
  }
}

// IQ4_NL (18 bytes per 32: f16 d, qs[16]). d is the block's best scale; the levels are re-chosen at 1/d.
void quantize_row_iq4_nl(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  uint8_t l[kBlock] = {};  // levels; ggml keeps them across blocks (an all-zero block re-chooses them below)
  float w[kBlock];
  for (int64_t i = 0; i < n; i += kBlock, dst += 18) {
    const float* xb = x + i;
    block_weights(xb, imatrix ? imatrix + i : nullptr, mean_square_times_2(xb, kBlock), w);
    float first_guess = 0;
    float d = block_scale(xb, w, l, &first_guess);
    // The one place groak parts from ggml on purpose: a block whose imatrix weights are all zero has no
    // weighted fit (0/0), and ggml stores d = NaN, which poisons every product with the row. groak stores
    // the unweighted first guess max/127 instead. (IQ4_XS drops such a NaN scale itself, so it matches.)
    if (std::isnan(d) && !std::isnan(first_guess)) d = first_guess;
    store_half(dst, d);
    const float id = d != 0 ? 1 / d : 0;
    for (int j = 0; j < kBlock; ++j) l[j] = static_cast<uint8_t>(nearest_level(id * xb[j]));
    pack_nibbles(l, dst + 2, kBlock);
  }
}

// IQ4_XS (136 bytes per 256: f16 d, uint16 scales_h, scales_l[4], qs[128]). Each block's best scale is
// rounded to l·d with l in [−32, 31] and d = −(the block scale of largest magnitude)/32; the levels are
// re-chosen at 1/(l·d). l + 32 is stored as 6 bits: the low nibble in scales_l, the top 2 in scales_h.
void quantize_row_iq4_xs(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kSub = kQK_K / kBlock;  // 8 blocks per super-block
  uint8_t l[kQK_K];
  float w[kBlock];
  float scales[kSub];
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 136) {
    const float* xbl = x + ibl;
    const float sigma2 = mean_square_times_2(xbl, kQK_K);
    float max_scale = 0, amax_scale = 0;  // the block scale of largest magnitude, with its sign
    for (int ib = 0; ib < kSub; ++ib) {
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, w);
      float first_guess = 0;
      scales[ib] = block_scale(xb, w, l + kBlock * ib, &first_guess);
      if (std::fabs(scales[ib]) > amax_scale) {
        amax_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    const float d = -max_scale / 32;
    store_half(dst, d);
    const float id = d != 0 ? 1 / d : 0.f;
    uint16_t scales_h = 0;
    uint8_t* scales_l = dst + 4;
    std::memset(scales_l, 0, kSub / 2);
    for (int ib = 0; ib < kSub; ++ib) {
      int ls = round_nearest(id * scales[ib]);
      ls = ls < -32 ? -32 : ls > 31 ? 31 : ls;
      const float dl = d * static_cast<float>(ls);
      const float idl = dl != 0 ? 1 / dl : 0.f;
      const float* xb = xbl + kBlock * ib;
      for (int j = 0; j < kBlock; ++j) l[kBlock * ib + j] = static_cast<uint8_t>(nearest_level(idl * xb[j]));
      const int biased = ls + 32;  // 0 … 63
      scales_l[ib / 2] = static_cast<uint8_t>(scales_l[ib / 2] | ((biased & 0xf) << (4 * (ib % 2))));
      scales_h = static_cast<uint16_t>(scales_h | ((biased >> 4) << (2 * ib)));
    }
    std::memcpy(dst + 2, &scales_h, 2);
    pack_nibbles(l, dst + 8, kQK_K);
  }
}

// MXFP4 (17 bytes per 32: E8M0 exponent e, qs[16] as IQ4_NL's nibble order). Not in llama.cpp c392e5094,
// so written from the OCP Microscaling definition as later ggml does it: the shared scale is the power of
// two 2^(⌊log2 max|x|⌋ − 2), which puts max|x| in [4, 8)·scale, the top of the FP4 E2M1 range (±6 ·
// scale; larger values clip to ±6); each weight takes the nearest of the 16 E2M1 values (the first on a
// tie). groak's kvalues_mxfp4 are the E2M1 values doubled and the stored scale is halved to match, so
// e = ⌊log2 max|x|⌋ − 2 + 127 and a weight is kvalues_mxfp4[nibble]·2^(e − 128).
void quantize_row_mxfp4(const float* x, uint8_t* dst, int64_t n, const float*) {
  constexpr int kE8M0Bias = 127;
  constexpr int kTopExponent = 2;  // 2^2 = 4 ≤ the largest E2M1 magnitude 6 < 2^3
  for (int64_t i = 0; i < n; i += kBlock, dst += 17) {
    const float* xb = x + i;
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    // e in [0, 254] (255 is E8M0's NaN); an all-zero (or NaN) block gets e = 0.
    int e = 0;
    if (amax > 0) {
      const int exp2 = std::isfinite(amax) ? std::ilogb(amax) : 127;  // ⌊log2 amax⌋, exact for subnormals too
      e = std::clamp(exp2 - kTopExponent + kE8M0Bias, 0, 254);
    }
    dst[0] = static_cast<uint8_t>(e);
    const float d = e8m0_half_scale(static_cast<uint8_t>(e));
    for (int j = 0; j < 16; ++j)
      dst[1 + j] = static_cast<uint8_t>(nearest_mxfp4(xb[j], d) | (nearest_mxfp4(xb[j + 16], d) << 4));
  }
}

}  // namespace groak::quant
