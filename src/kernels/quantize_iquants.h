// The i-quant quantizers (internal to kernels/): what llama.cpp's quantize_iq* (ggml/src/ggml-quants.c,
// c392e5094) writes, byte for byte, for the same input and importance matrix. Each row quantizer has the
// RowQuant shape of quant_impl.h (x[0, n), n a multiple of the type's block size; imatrix[0, n) or null).
//
// Files: quantize_iq4.cpp (IQ4_NL, IQ4_XS, MXFP4), quantize_iq3.cpp (IQ3_XXS, IQ3_S), quantize_iq2.cpp
// (IQ2_XXS, IQ2_XS, IQ2_S), quantize_iq1.cpp (IQ1_S, IQ1_M), quantize_iquants_lattice.cpp (the search
// tables below). All arithmetic is scalar f32 in ggml's operation order: these files must be compiled
// without FMA contraction (no -march flags, as ggml-base is), or the searches take other branches.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include "kernels/quant_impl.h"

namespace groak::quant {

// ---------------------------------------------------------------------------------------------------------
// Lattice codebooks for the search (ggml's iq2xs_init_impl / iq3xs_init_impl)
//
// A codebook point is dims (8 or 4) levels l < 2^bits, searched as the odd integers q = 2l + 1 (so that a
// scale s maps q to s·q). A key packs any dims levels, bits per level, element 0 lowest. For every key on
// the grid the table gives its index; for every key off the grid, its neighbours: all grid points at the
// nwant smallest squared distances Σ(q_grid − q_key)², by distance then index.
enum class Lattice {
  IQ2_XXS,  // iq2xxs_grid: 256 points of 8 levels < 3, nwant 2
  IQ2_XS,   // iq2xs_grid: 512 points, nwant 2
  IQ2_S,    // iq2s_grid: 1024 points, nwant 1
  IQ1,      // iq1s_grid (IQ1_S and IQ1_M): 2048 points of levels −1, 0, 1 as l = 0, 1, 2; nwant 3
  IQ3_XXS,  // iq3xxs_grid: 256 points of 4 levels < 8, nwant 2
  IQ3_S,    // iq3s_grid: 512 points of 4 levels < 8, nwant 3
};

class LatticeCodebook {
 public:
  int dims() const { return dims_; }
  int size() const { return size_; }
  // q = 2l + 1 of point i's dims elements.
  const int8_t* point(int i) const { return points_ + static_cast<ptrdiff_t>(i) * dims_; }
  // The same as floats (exact), for the distance loops.
  const float* point_f(int i) const { return points_f_ + static_cast<ptrdiff_t>(i) * dims_; }
  // The grid index of key, or −1 when key is off the grid.
  int find(uint32_t key) const { return map_[key]; }
  // The neighbours of an off-grid key (grid indices, nearest first).
  std::span<const uint16_t> neighbours(uint32_t key) const {
    const uint32_t at = offset_[key];
    return {neighbours_ + at + 1, neighbours_[at]};
  }
  // The key of levels l[0, dims).
  uint32_t key_of(const int8_t* l) const {
    uint32_t k = 0;
    for (int i = 0; i < dims_; ++i) k |= static_cast<uint32_t>(l[i]) << (bits_ * i);
    return k;
  }

 private:
  friend const LatticeCodebook& lattice(Lattice which);
  int dims_ = 0, bits_ = 0, size_ = 0;
  const int8_t* points_ = nullptr;        // [size, dims]
  const float* points_f_ = nullptr;       // [size, dims]
  const int32_t* map_ = nullptr;          // [2^(bits·dims)]: grid index or −1
  const uint32_t* offset_ = nullptr;      // [2^(bits·dims)]: where an off-grid key's list starts
  const uint16_t* neighbours_ = nullptr;  // lists: count, then that many grid indices
};

// The codebook, built on first use (once per process, safe to call from many threads at once).
const LatticeCodebook& lattice(Lattice which);

// ggml's iq2/iq3_find_best_neighbour: among the neighbours of an off-grid key, the point with the least
// Σ_i w[i]·(scale·q_i − x[i])² (the first on ties); writes its levels to l[0, dims) and returns its index.
int best_neighbour(const LatticeCodebook& cb, uint32_t key, const float* x, const float* w, float scale, int8_t* l);

// The scale search shared by IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (the loop over `is` in their ggml
// quantize_row_*_impl): for scales max/(2·kMaxQ − 1 + is·step), is in [−steps, steps], round the block's
// magnitudes to levels, move each group that falls off the grid to its best neighbour, and keep the levels
// with the best weighted least-squares fit. Groups left off the grid at the best scale are then re-rounded
// at 1/scale (all groups with refit_all_groups) and the scale refitted to the final levels.
struct LatticeSearch {
  enum class OnGridStart {
    Kept,       // IQ3_XXS: the flags of the previous block stand until a scale improves the fit
    AllOnGrid,  // IQ2_XS, IQ2_S
    NoneOnGrid, // IQ3_S
  };
  const LatticeCodebook* cb;
  int n;          // weights in the block: 16 or 32
  int max_level;  // kMaxQ − 1
  int steps;
  float step;
  OnGridStart start;
  bool refit_all_groups;
};
// xval[0, n): the block's magnitudes (sign-folded); w: weights; waux: sqrt(w); max: the largest xval.
// l[0, n) (levels) and on_grid[0, n/dims) are state carried from block to block, as in ggml, and hold the
// result. Returns the block scale.
float search_lattice_scale(const LatticeSearch& s, const float* xval, const float* w, const float* waux, float max,
                           int8_t* l, bool* on_grid);

// ggml's nearest_int, as fast: round to nearest, ties to even, by adding 1.5·2^23 and reading the low
// mantissa bits (exact for |x| ≤ 2^22 − 1). Outside that range, where ggml's answer is meaningless, the
// saturating nearest_int of quant_impl.h answers (it calls nearbyint, a slow libm call without SSE4.1).
inline int round_nearest(float x) {
  constexpr float kRoundingMagic = 12582912.f;  // 1.5·2^23
  if (!(std::fabs(x) <= 4194303.f)) return nearest_int(x);
  const float v = x + kRoundingMagic;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Σ_i w[i]·xval[i]·q_i and Σ_i w[i]·q_i² for q = 2·l + 1, in ggml's order (the fit of a scale to levels).
struct LevelFit {
  float sumqx = 0, sumq2 = 0;
};
inline LevelFit fit_odd_levels(const float* xval, const float* w, const int8_t* l, int n) {
  LevelFit f;
  for (int i = 0; i < n; ++i) {
    const float q = static_cast<float>(2 * l[i] + 1);
    f.sumqx += w[i] * xval[i] * q;
    f.sumq2 += w[i] * q * q;
  }
  return f;
}

// The level of a magnitude at inverse scale id: nearest_int((id·x − 1)/2), clamped to [0, max_level].
inline int8_t odd_level(float id, float x, int max_level) {
  const int l = round_nearest(0.5f * (id * x - 1));
  return static_cast<int8_t>(l < 0 ? 0 : l > max_level ? max_level : l);
}

// Sign folding of a group of 8: xval = |x| and bit i of the result set where x[i] < 0.
inline uint8_t fold_signs(const float* x, float* xval) {
  uint8_t s = 0;
  for (int i = 0; i < 8; ++i) {
    if (x[i] >= 0) {
      xval[i] = x[i];
    } else {
      xval[i] = -x[i];
      s = static_cast<uint8_t>(s | (1u << i));
    }
  }
  return s;
}

// The same for the formats that store only 7 sign bits (ksigns: an even number of minus signs): with an
// odd count, the element of least w·x² keeps the wrong sign (its xval becomes negative). Returns the 7 bits.
inline uint8_t fold_signs_even(const float* x, const float* w, float* xval) {
  uint8_t s = fold_signs(x, xval);
  if (__builtin_popcount(s) % 2) {
    int imin = 0;
    float min = w[0] * x[0] * x[0];
    for (int i = 1; i < 8; ++i) {
      const float ax = w[i] * x[i] * x[i];
      if (ax < min) {
        min = ax;
        imin = i;
      }
    }
    xval[imin] = -xval[imin];
    s = static_cast<uint8_t>(s ^ (1u << imin));
  }
  return s & 127;
}

// Σ x² over a super-block times factor/256 (ggml's σ², with factor 1 or 2 depending on the type).
inline float super_block_sigma2(const float* x, float factor) {
  float sumx2 = 0;
  for (int i = 0; i < kQK_K; ++i) sumx2 += x[i] * x[i];
  return factor * sumx2 / kQK_K;
}

// The i-quant row quantizers (RowQuant shape).
void quantize_row_iq4_nl(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq4_xs(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_mxfp4(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq3_xxs(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq3_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq2_xxs(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq2_xs(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq2_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq1_s(const float* x, uint8_t* dst, int64_t n, const float* imatrix);
void quantize_row_iq1_m(const float* x, uint8_t* dst, int64_t n, const float* imatrix);

}  // namespace groak::quant
