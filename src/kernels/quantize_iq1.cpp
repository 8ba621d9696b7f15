// IQ1_S and IQ1_M quantizers: llama.cpp's quantize_iq1_s / quantize_iq1_m (quantize_row_iq1_*_impl and
// iq1_find_best_neighbour2 of ggml-quants.c, c392e5094), byte for byte.
//
// A weight is d·scale·(t + δ) with t in {−1, 0, 1} and a shift δ = ±1/8 per group; groups of 8 ternary
// values must be a point of the 2048-entry iq1s_grid. Per block (32 weights in IQ1_S, 16 in IQ1_M) the
// split of the sorted weights into the three values is searched exhaustively (every pair of boundaries),
// which gives the best block scale and shift; groups off the grid then move to their best neighbour.
//
// ggml sorts with the C library's qsort on the value alone, so equal values keep whatever order qsort
// leaves them in; std::qsort is called here on the same 8-byte (value, index) records with the same
// comparison, so both get the same order from the same C library.
//
// Where ggml reads state it never wrote, groak cannot follow: a block of max |x| < 1e-12 (IQ1_S) or 1e-7
// (IQ1_M) inside a row that is not all zero takes the shift of the same block in the previously quantized
// super-block (ggml: uninitialised on a thread's first row); groak starts each row with no shift.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/quant_iquants_grids.h"
#include "kernels/quantize_iquants.h"

namespace groak::quant {

namespace {

constexpr float kGroupMaxEpsS = 1e-12f;    // GROUP_MAX_EPS_IQ1_S
constexpr float kGroupMaxEpsM = 1e-7f;     // GROUP_MAX_EPS_IQ1_M
constexpr float kSScaleFudge = 1.125f;     // ggml's fudge factors on d
constexpr float kMScaleFudge = 1.1125f;
// The three values t + δ for a positive and a negative shift.
constexpr float kPlus[3] = {-1 + kIq1Delta, kIq1Delta, 1 + kIq1Delta};
constexpr float kMinus[3] = {-1 - kIq1Delta, -kIq1Delta, 1 - kIq1Delta};

// A value and its position, sorted by value (ggml's pairs[] of float and int, 8 bytes each).
struct ValueIndex {
  float x;
  int32_t i;
};
static_assert(sizeof(ValueIndex) == 8);

int compare_values(const void* left, const void* right) {
  const float l = static_cast<const ValueIndex*>(left)->x, r = static_cast<const ValueIndex*>(right)->x;
  return l < r ? -1 : l > r ? 1 : 0;
}

// sorted[0, n) = xb's values with their positions, in qsort's order.
void sort_values(const float* xb, int n, ValueIndex* sorted) {
  for (int j = 0; j < n; ++j) sorted[j] = {xb[j], j};
  std::qsort(sorted, static_cast<size_t>(n), sizeof(ValueIndex), compare_values);
}

float largest_magnitude(const float* xb, int n) {
  float max = std::fabs(xb[0]);
  for (int i = 1; i < n; ++i) max = max > std::fabs(xb[i]) ? max : std::fabs(xb[i]);
  return max;
}

// Weights: imatrix·sqrt(σ² + x²), or x² without an imatrix (IQ1_S cannot run without one in ggml, which
// asserts; groak's callers refuse earlier).
void block_weights(const float* xb, const float* qw, float sigma2, int n, float* w) {
  for (int i = 0; i < n; ++i) w[i] = qw ? qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
}

// Levels (0, 1, 2 for t = −1, 0, 1) of the split: the i1 smallest values −1, the next i2 − i1 zero, the rest +1.
void split_levels(const ValueIndex* sorted, int n, int i1, int i2, int8_t* l) {
  for (int j = 0; j < n; ++j) l[sorted[j].i] = static_cast<int8_t>(j < i1 ? 0 : j < i2 ? 1 : 2);
}

// ggml's iq1_find_best_neighbour2: the neighbour of an off-grid key with the least Σ w·(scale·xx[l] − x)²
// (the first on ties). Writes its levels to l[0, 8) and returns its index.
int best_neighbour_iq1(const LatticeCodebook& cb, uint32_t key, const float* x, const float* w, float scale,
                       const float* xx, int8_t* l) {
  const std::span<const uint16_t> nb = cb.neighbours(key);
  float best_d2 = FLT_MAX;
  int best = nb[0];  // ggml asserts some distance is below FLT_MAX; only non-finite input gets here
  for (uint16_t g : nb) {
    const int8_t* p = cb.point(g);
    float d2 = 0;
    for (int i = 0; i < 8; ++i) {
      const float diff = scale * xx[(p[i] - 1) / 2] - x[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      best = g;
    }
  }
  const int8_t* p = cb.point(best);
  for (int i = 0; i < 8; ++i) l[i] = static_cast<int8_t>((p[i] - 1) / 2);
  return best;
}

// Each group of 8 levels → its grid index, moving off-grid groups to their best neighbour; xx_of(k) gives
// group k's values. Returns whether every group was on the grid.
template <typename ValuesOf>
bool grid_indices(const LatticeCodebook& cb, const float* xb, const float* w, float scale, int groups, ValuesOf xx_of,
                  int8_t* l, uint16_t* index) {
  bool all_on_grid = true;
  for (int k = 0; k < groups; ++k) {
    const uint32_t key = cb.key_of(l + 8 * k);
    int g = cb.find(key);
    if (g < 0) {
      all_on_grid = false;
      g = best_neighbour_iq1(cb, key, xb + 8 * k, w + 8 * k, scale, xx_of(k), l + 8 * k);
    }
    index[k] = static_cast<uint16_t>(g);
  }
  return all_on_grid;
}

// The least-squares scale of x against the values of grid points index[0, groups); unchanged unless both
// sums are positive.
template <typename ValuesOf>
float refit_scale(const LatticeCodebook& cb, const float* xb, const float* w, int groups, ValuesOf xx_of,
                  const uint16_t* index, float scale) {
  float sumqx = 0, sumq2 = 0;
  for (int k = 0; k < groups; ++k) {
    const float* xx = xx_of(k);
    const int8_t* p = cb.point(index[k]);
    for (int j = 0; j < 8; ++j) {
      const float q = xx[(p[j] - 1) / 2];
      sumqx += w[8 * k + j] * q * xb[8 * k + j];
      sumq2 += w[8 * k + j] * q * q;
    }
  }
  return sumqx > 0 && sumq2 > 0 ? sumqx / sumq2 : scale;
}

int block_scale_code(float id, float scale) { return std::clamp(round_nearest(0.5f * (id * scale - 1)), 0, 7); }

}  // namespace

// IQ1_S (50 bytes: f16 d, qs[32] index low bytes, uint16 qh[8]: bits 3k…3k+2 index bits 8…10 of group k,
// bits 12…14 the block's 3-bit scale, bit 15 set for δ = −1/8).
void quantize_row_iq1_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kBlock = 32, kBlocks = kQK_K / kBlock;
  const LatticeCodebook& cb = lattice(Lattice::IQ1);
  float w[kBlock], scales[kBlocks], sumx[kBlock + 1], sumw[kBlock + 1];
  ValueIndex sorted[kBlock];
  int8_t l[kBlock];
  uint16_t index[kBlock / 8];
  int8_t shifts[kBlocks] = {};  // carried from super-block to super-block as in ggml
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 50) {
    std::memset(dst, 0, 50);
    uint16_t qh[kBlocks] = {};
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, 2.f);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, kBlock, w);
      const float max = largest_magnitude(xb, kBlock);
      if (max < kGroupMaxEpsS) {
        scales[ib] = 0;
        continue;
      }
      // Prefix sums of w·x and w over the sorted values: the fit of any split is then O(1).
      sort_values(xb, kBlock, sorted);
      sumx[0] = sumw[0] = 0;
      for (int j = 0; j < kBlock; ++j) {
        const int i = sorted[j].i;
        sumx[j + 1] = sumx[j] + w[i] * xb[i];
        sumw[j + 1] = sumw[j] + w[i];
      }
      float best_score = -FLT_MIN, scale = max;
      int besti1 = 0, besti2 = 0, best_shift = 1;
      for (int i1 = 0; i1 <= kBlock; ++i1) {
        for (int i2 = i1; i2 <= kBlock; ++i2) {
          for (int shift : {1, -1}) {
            const float* v = shift == 1 ? kPlus : kMinus;
            const float sumqx = (sumx[i1] - sumx[0]) * v[0] + (sumx[i2] - sumx[i1]) * v[1] + (sumx[kBlock] - sumx[i2]) * v[2];
            const float sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] + (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                                (sumw[kBlock] - sumw[i2]) * v[2] * v[2];
            if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
              scale = sumqx / sumq2;
              best_score = scale * sumqx;
              besti1 = i1;
              besti2 = i2;
              best_shift = shift;
            }
          }
        }
      }
      split_levels(sorted, kBlock, besti1, besti2, l);
      if (scale < 0) {
        for (int8_t& v : l) v = static_cast<int8_t>(2 - v);
        scale = -scale;
        best_shift = -best_shift;
      }
      const float* xx = best_shift == 1 ? kPlus : kMinus;
      auto values = [xx](int) { return xx; };
      if (!grid_indices(cb, xb, w, scale, kBlock / 8, values, l, index))
        scale = refit_scale(cb, xb, w, kBlock / 8, values, index, scale);
      for (int k = 0; k < kBlock / 8; ++k) {
        dst[2 + 4 * ib + k] = static_cast<uint8_t>(index[k] & 255);
        qh[ib] = static_cast<uint16_t>(qh[ib] | ((index[k] >> 8) << (3 * k)));
      }
      scales[ib] = scale;
      shifts[ib] = static_cast<int8_t>(best_shift);
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale != 0) {
      const float d = max_scale / 15;
      store_half(dst, d * kSScaleFudge);
      const float id = 1 / d;
      for (int ib = 0; ib < kBlocks; ++ib) {
        int code = block_scale_code(id, scales[ib]);
        if (shifts[ib] == -1) code |= 8;
        qh[ib] = static_cast<uint16_t>(qh[ib] | (code << 12));
      }
    }
    std::memcpy(dst + 34, qh, sizeof qh);
  }
}

// IQ1_M (56 bytes: qs[32] index low bytes, qh[16] (per block of 16: index bits 8…10 of group 0 in bits
// 0…2 and of group 1 in bits 4…6; bits 3 and 7 set for δ = −1/8 in group 0 / 1), 4 uint16 of 3-bit block
// scales with the f16 d spread over their top nibbles). Each group has its own shift, so the split search
// tries the four shift pairs; d is refitted at the end to the chosen scales and values.
void quantize_row_iq1_m(const float* x, uint8_t* dst, int64_t n, const float* imatrix) {
  constexpr int kBlock = 16, kBlocks = kQK_K / kBlock;
  // Shift pair k: group 0 negative for k ≥ 2, group 1 negative for odd k; the qh bits of each pair.
  constexpr uint8_t kShiftMasks[4] = {0x00, 0x80, 0x08, 0x88};
  auto values_of = [](int pair, int group) { return (group == 0 ? pair < 2 : pair % 2 == 0) ? kPlus : kMinus; };
  const LatticeCodebook& cb = lattice(Lattice::IQ1);
  float w[kBlock], scales[kBlocks];
  ValueIndex sorted[kBlock];
  int8_t l[kBlock];
  uint16_t index[2];
  int shifts[kBlocks] = {};  // carried from super-block to super-block as in ggml
  for (int64_t ibl = 0; ibl < n; ibl += kQK_K, dst += 56) {
    std::memset(dst, 0, 56);
    uint8_t* qs = dst;
    uint8_t* qh = dst + 32;
    const float* xbl = x + ibl;
    const float sigma2 = super_block_sigma2(xbl, 2.f);
    float max_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, kBlock, w);
      const float max = largest_magnitude(xb, kBlock);
      if (max < kGroupMaxEpsM) {
        scales[ib] = 0;
        continue;
      }
      sort_values(xb, kBlock, sorted);
      float best_score = -FLT_MIN, scale = max;
      int besti1 = 0, besti2 = 0, best_k = 0;
      for (int i1 = 0; i1 <= kBlock; ++i1) {
        for (int i2 = i1; i2 <= kBlock; ++i2) {
          // Σ w·v·x and Σ w·v² for the four shift pairs, summed in sorted order as ggml does.
          float sumqx[4] = {}, sumq2[4] = {};
          for (int j = 0; j < kBlock; ++j) {
            const int i = sorted[j].i, level = j < i1 ? 0 : j < i2 ? 1 : 2;
            for (int k = 0; k < 4; ++k) {
              const float v = values_of(k, i < kBlock / 2 ? 0 : 1)[level];
              sumqx[k] += w[i] * v * xb[i];
              sumq2[k] += w[i] * v * v;
            }
          }
          for (int k = 0; k < 4; ++k) {
            if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
              scale = sumqx[k] / sumq2[k];
              best_score = scale * sumqx[k];
              besti1 = i1;
              besti2 = i2;
              best_k = k;
            }
          }
        }
      }
      split_levels(sorted, kBlock, besti1, besti2, l);
      if (scale < 0) {
        for (int8_t& v : l) v = static_cast<int8_t>(2 - v);
        scale = -scale;
        best_k = 3 - best_k;  // both shifts flip
      }
      auto values = [&](int group) { return values_of(best_k, group); };
      if (!grid_indices(cb, xb, w, scale, 2, values, l, index)) scale = refit_scale(cb, xb, w, 2, values, index, scale);
      qs[2 * ib] = static_cast<uint8_t>(index[0] & 255);
      qs[2 * ib + 1] = static_cast<uint8_t>(index[1] & 255);
      qh[ib] = static_cast<uint8_t>((index[0] >> 8) | ((index[1] >> 8) << 4));
      scales[ib] = scale;
      shifts[ib] = best_k;
      max_scale = std::max(max_scale, scale);
    }
    if (max_scale == 0) continue;
    // 3-bit block scales, then d refitted: Σ w·q·x / Σ w·q² with q = value·(2l + 1) over the whole super-block.
    uint16_t sc[4] = {};
    float d = max_scale / 15;
    const float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const int code = block_scale_code(id, scales[ib]);
      sc[ib / 4] = static_cast<uint16_t>(sc[ib / 4] | (code << (3 * (ib % 4))));
      qh[ib] = static_cast<uint8_t>(qh[ib] | kShiftMasks[shifts[ib]]);
      const float* xb = xbl + kBlock * ib;
      block_weights(xb, imatrix ? imatrix + ibl + kBlock * ib : nullptr, sigma2, kBlock, w);
      for (int k = 0; k < 2; ++k) {
        const float* xx = values_of(shifts[ib], k);
        const int8_t* p = cb.point(qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700));
        for (int j = 0; j < 8; ++j) {
          const float q = xx[(p[j] - 1) / 2] * static_cast<float>(2 * code + 1);
          sumqx += w[8 * k + j] * q * xb[8 * k + j];
          sumq2 += w[8 * k + j] * q * q;
        }
      }
    }
    if (sumq2 > 0) d = sumqx / sumq2;
    const uint16_t dbits = f32_to_fp16(d * kMScaleFudge);
    sc[0] = static_cast<uint16_t>(sc[0] | ((dbits & 0x000f) << 12));
    sc[1] = static_cast<uint16_t>(sc[1] | ((dbits & 0x00f0) << 8));
    sc[2] = static_cast<uint16_t>(sc[2] | ((dbits & 0x0f00) << 4));
    sc[3] = static_cast<uint16_t>(sc[3] | (dbits & 0xf000));
    std::memcpy(dst + 48, sc, sizeof sc);
  }
}

}  // namespace groak::quant
