// The scale searches of ggml-quants.c (see quant_search.h). Every sum is f32 accumulated in index order,
// and every product is written in ggml's association ((w·x)·l, not w·(x·l)), with ints converted to float
// where C converts them: a different association changes a last bit, which can flip a level and a byte.
#include "kernels/quant_search.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/quant_impl.h"

namespace groak::quant {

namespace {

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

}  // namespace

namespace {

float scalar_make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  float max = 0, amax = 0;  // the signed value of largest magnitude, and that magnitude
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
  const float fnmax = static_cast<float>(nmax);
  auto weight = [&](int i) { return qw ? qw[i] : x[i] * x[i]; };
  // First guess: the largest value maps to level −nmax exactly.
  float iscale = -fnmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = weight(i), fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;  // the error reduction of the least-squares scale: larger is better
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fnmax + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float fl = static_cast<float>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      const float w = weight(i);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

}  // namespace

float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
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
  const float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);  // signed level for now; offset by nmax at the end
    const float w = x[i] * x[i], fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  // Coordinate descent: move one level at a time to the value the others' fit asks for, keeping the move
  // when it raises sumlx²/suml2 (the error reduction of the refitted scale).
  constexpr int kPasses = 5;
  for (int pass = 0; pass < kPasses; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0) {
        float sl2 = suml2 - w * li * li;
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sumlx / suml2;
}

namespace {

float scalar_make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                             float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep, ErrorNorm norm) {
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
  assert(n <= kMaxSearchGroup);
  if (min > 0) min = 0;
  if (max <= min) {  // a constant group (ggml's qkx2 tests ==, qkx3 <=: the same once min ≤ max)
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  const float fnmax = static_cast<float>(nmax);
  auto error = [norm](float diff) { return norm == ErrorNorm::Absolute ? std::fabs(diff) : diff * diff; };
  float iscale = fnmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(clamp_int(l, 0, nmax));
    const float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_error += weights[i] * error(diff);
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  uint8_t previous[kMaxSearchGroup];  // the levels of the candidate before this one
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + fnmax) / (max - min);
    for (int i = 0; i < n; ++i) Laux[i] = static_cast<uint8_t>(clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax));
    // The fit and its error depend on the levels only. A candidate with its predecessor's levels (common:
    // the steps are small) gets the same error, which either lost to best_error or became it, so it cannot
    // win: skipping it changes nothing and saves the serial sums below.
    if (is > 0 && std::memcmp(Laux, previous, static_cast<size_t>(n)) == 0) continue;
    std::memcpy(previous, Laux, static_cast<size_t>(n));
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const float w = weights[i], fl = static_cast<float>(Laux[i]);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    // Weighted least squares for x ≈ scale·l + min over these levels (Cramer's rule).
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
        const float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        cur_error += weights[i] * error(diff);
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

}  // namespace

void scalar_make_qkx_quants8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                             float* the_mins, float rmin, float rdelta, int nstep, ErrorNorm norm) {
  uint8_t Laux[kMaxSearchGroup];
  for (int j = 0; j < 8; ++j)
    scales[j] = scalar_make_qkx_quants(n, nmax, x + j * n, weights + j * n, L + j * n, &the_mins[j], Laux, rmin, rdelta,
                                       nstep, norm);
}

const SearchKernels& scalar_search_kernels() {
  static const SearchKernels k{"scalar", scalar_make_qx_quants, scalar_make_qkx_quants, scalar_make_qkx_quants8,
                               scalar_iq4_fits};
  return k;
}

const SearchKernels& chosen_search_kernels() {
  static const SearchKernels* chosen = [] {
    const char* env = std::getenv("GROAK_KERNELS");
    const bool scalar_only = env && (!std::strcmp(env, "reference") || !std::strcmp(env, "portable"));
    const bool avx2_only = env && !std::strcmp(env, "avx2");
    if (scalar_only) return &scalar_search_kernels();
    if (!avx2_only)
      if (const SearchKernels* k = avx512_search_kernels()) return k;
    if (const SearchKernels* k = avx2_search_kernels()) return k;
    return &scalar_search_kernels();
  }();
  return *chosen;
}

float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  return chosen_search_kernels().make_qx_quants(n, nmax, x, L, qw);
}

float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, ErrorNorm norm) {
  return chosen_search_kernels().make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, norm);
}

void make_qkx_quants8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                      float* the_mins, float rmin, float rdelta, int nstep, ErrorNorm norm) {
  chosen_search_kernels().make_qkx_quants8(n, nmax, x, weights, L, scales, the_mins, rmin, rdelta, nstep, norm);
}

float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];  // ggml's MAX(max, x[i]), NaN order included
  if (!max) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best_mse += quant_weights[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + fnmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));  // no lower clamp, as ggml
      const float diff = x[i] - scale_is * static_cast<float>(l);
      mse += quant_weights[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<uint8_t>(l);
    const float w = quant_weights[i], fl = static_cast<float>(l);  // the sums use l, not the stored byte
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  constexpr int kPasses = 5;
  for (int pass = 0; pass < kPasses; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = quant_weights[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      float sl2 = suml2 - w * li * li;
      if (slx > 0 && sl2 > 0) {
        const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return sumlx / suml2;
}

}  // namespace groak::quant
