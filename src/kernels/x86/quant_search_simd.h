// The candidate sweeps of make_qx_quants and make_qkx_quants (quant_search.cpp, the oracle) with one
// candidate scale per SIMD lane. Included only by x86/avx2_quant_search.cpp and x86/avx512_quant_search.cpp,
// after their target pragma, each with its own lane type S:
//   S::V, S::kLanes, set1, load, store, add, sub, mul, div, min, max, abs, round (to nearest, ties to
//   even), select_gt (a > b ? t : f).
// Everything is in an unnamed namespace, so each file keeps its own copy compiled for its own target (a
// shared inline function could be linked as the AVX-512 copy into the AVX2 path).
//
// Why the bytes equal the scalar ones: lane c runs, for i = 0 … n−1 in order, exactly the f32 operations
// the scalar loop runs for candidate c (separate mul and add: these files are built with
// -ffp-contract=off), and the best candidate is then picked in candidate order with the scalar
// comparisons. Rounding instructions equal ggml's nearest_int (the 1.5·2^23 trick) for |v| ≤ 2^22 − 1;
// each entry checks that bound for every candidate (and for NaN / ±inf input) first and hands the
// block to the scalar code otherwise. A level is kept as a float: clamp(round(v)) in float equals
// float(clamp(nearest_int(v))) in range, and adding +0 turns round's −0 into the +0 that int 0 gives.
#pragma once

#include "kernels/quant_impl.h"
#include "kernels/quant_iquants_grids.h"
#include "kernels/quant_search.h"

namespace groak::quant {
namespace {

// The most candidates a sweep covers: make_qkx_quants' 37 (nstep 36, the imatrix searches) in lanes.
constexpr int kMaxCandidates = 48;
// The lanes of the widest sweep instantiated (6 vectors, sized for AVX-512 so no case reads past the end).
constexpr int kSweepLanes = 6 * 16;

template <class S>
inline typename S::V level(typename S::V v, typename S::V lo, typename S::V hi) {
  return S::add(S::min(S::max(S::round(v), lo), hi), S::set1(0.f));
}

inline int simd_clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// make_qx_quants' 18 candidates (is = −9 … 9 without 0), NV vectors of lanes.
template <class S, int NV>
float qx_search(int n, int nmax, const float* x, int8_t* L, const float* qw, float max, float amax) {
  using V = typename S::V;
  constexpr int kL = S::kLanes;
  const float fnmax = static_cast<float>(nmax);
  alignas(64) float iscales[NV * kL] = {};
  int n_cand = 0;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscales[n_cand++] = -(fnmax + 0.1f * static_cast<float>(is)) / max;
  }
  for (int c = 0; c < n_cand; ++c) {
    if (!(std::fabs(iscales[c]) * amax <= kExactRoundLimit))
      return scalar_search_kernels().make_qx_quants(n, nmax, x, L, qw);
  }
  // First guess (scalar, as quant_search.cpp): the largest value maps to level −nmax exactly.
  const float iscale = -fnmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = simd_clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i], fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;

  V isc[NV], slx[NV], sl2[NV];
  for (int g = 0; g < NV; ++g) {
    isc[g] = S::load(iscales + g * kL);
    slx[g] = S::set1(0.f);
    sl2[g] = S::set1(0.f);
  }
  const V lo = S::set1(-fnmax), hi = S::set1(fnmax - 1);
  for (int i = 0; i < n; ++i) {
    const float w = qw ? qw[i] : x[i] * x[i];
    const V xi = S::set1(x[i]), wv = S::set1(w), wx = S::set1(w * x[i]);
    for (int g = 0; g < NV; ++g) {
      const V fl = level<S>(S::mul(isc[g], xi), lo, hi);
      slx[g] = S::add(slx[g], S::mul(wx, fl));
      sl2[g] = S::add(sl2[g], S::mul(S::mul(wv, fl), fl));
    }
  }
  alignas(64) float all_lx[NV * kL], all_l2[NV * kL];
  for (int g = 0; g < NV; ++g) {
    S::store(all_lx + g * kL, slx[g]);
    S::store(all_l2 + g * kL, sl2[g]);
  }
  int chosen = -1;
  for (int c = 0; c < n_cand; ++c) {
    const float lx = all_lx[c], l2 = all_l2[c];
    if (l2 > 0 && lx * lx > best * l2) {
      chosen = c;
      scale = lx / l2;
      best = scale * lx;
    }
  }
  if (chosen >= 0) {
    for (int i = 0; i < n; ++i)
      L[i] = static_cast<int8_t>(nmax + simd_clamp_int(nearest_int(iscales[chosen] * x[i]), -nmax, nmax - 1));
  }
  return scale;
}

template <class S>
float simd_make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  float max = 0, amax = 0;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    finite = finite && ax <= 3.4e38f;  // false for NaN and ±inf
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (!finite || amax < kGroupMaxEps) return scalar_search_kernels().make_qx_quants(n, nmax, x, L, qw);
  constexpr int kNV = (18 + S::kLanes - 1) / S::kLanes;
  return qx_search<S, kNV>(n, nmax, x, L, qw, max, amax);
}

// make_qkx_quants' sweep over candidates is = 0 … nstep (n_cand = nstep + 1 ≤ NV·lanes); writes each
// candidate's D, refitted scale and min, and error.
template <class S, int NV>
void qkx_sweep(int n, const float* x, const float* xm, const float* weights, const float* iscales, float nmax,
               float sum_w, float sum_x, ErrorNorm norm, float* out_D, float* out_scale, float* out_min,
               float* out_err) {
  using V = typename S::V;
  constexpr int kL = S::kLanes;
  V isc[NV], sl[NV], sl2[NV], sxl[NV];
  for (int g = 0; g < NV; ++g) {
    isc[g] = S::load(iscales + g * kL);
    sl[g] = sl2[g] = sxl[g] = S::set1(0.f);
  }
  const V zero = S::set1(0.f), hi = S::set1(nmax);
  for (int i = 0; i < n; ++i) {
    const V xmi = S::set1(xm[i]), wv = S::set1(weights[i]), xi = S::set1(x[i]);
    for (int g = 0; g < NV; ++g) {
      const V fl = level<S>(S::mul(isc[g], xmi), zero, hi);
      const V wl = S::mul(wv, fl);
      sl[g] = S::add(sl[g], wl);
      sl2[g] = S::add(sl2[g], S::mul(wl, fl));
      sxl[g] = S::add(sxl[g], S::mul(wl, xi));
    }
  }
  const V vsum_w = S::set1(sum_w), vsum_x = S::set1(sum_x);
  V ts[NV], tm[NV], err[NV];
  for (int g = 0; g < NV; ++g) {
    const V D = S::sub(S::mul(vsum_w, sl2[g]), S::mul(sl[g], sl[g]));
    S::store(out_D + g * kL, D);
    const V scale = S::div(S::sub(S::mul(vsum_w, sxl[g]), S::mul(vsum_x, sl[g])), D);
    const V min = S::div(S::sub(S::mul(sl2[g], vsum_x), S::mul(sl[g], sxl[g])), D);
    // this_min > 0: min = 0 and the scale refitted alone.
    ts[g] = S::select_gt(min, zero, S::div(sxl[g], sl2[g]), scale);
    tm[g] = S::select_gt(min, zero, zero, min);
    err[g] = zero;
  }
  const bool absolute = norm == ErrorNorm::Absolute;
  for (int i = 0; i < n; ++i) {
    const V xmi = S::set1(xm[i]), wv = S::set1(weights[i]), xi = S::set1(x[i]);
    for (int g = 0; g < NV; ++g) {
      const V fl = level<S>(S::mul(isc[g], xmi), zero, hi);
      const V diff = S::sub(S::add(S::mul(ts[g], fl), tm[g]), xi);
      err[g] = S::add(err[g], S::mul(wv, absolute ? S::abs(diff) : S::mul(diff, diff)));
    }
  }
  for (int g = 0; g < NV; ++g) {
    S::store(out_scale + g * kL, ts[g]);
    S::store(out_min + g * kL, tm[g]);
    S::store(out_err + g * kL, err[g]);
  }
}

template <class S>
float simd_make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                           uint8_t* Laux, float rmin, float rdelta, int nstep, ErrorNorm norm) {
  constexpr int kL = S::kLanes;
  const int n_cand = nstep + 1;
  if (nstep < 1 || n_cand > kMaxCandidates || n > kMaxSearchGroup)
    return scalar_search_kernels().make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, norm);
  // Prologue as the scalar code.
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
  if (max <= min) {
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
    L[i] = static_cast<uint8_t>(simd_clamp_int(l, 0, nmax));
    const float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_error += weights[i] * error(diff);
  }
  // ggml's sweep is sequential in one way: a winning candidate replaces min, and the later candidates
  // shift x and the range by the new min. So the lanes run speculatively from `start` with the current
  // min; at a win that moves min, the candidates after it are swept again with the new one.
  alignas(64) float xm[kMaxSearchGroup];
  alignas(64) float iscales[kSweepLanes];
  alignas(64) float D[kSweepLanes], scales[kSweepLanes], mins[kSweepLanes], errs[kSweepLanes];
  int start = 0;
  while (start <= nstep) {
    const float range = max - min;
    bool in_range = true;
    for (int i = 0; i < n; ++i) {
      xm[i] = x[i] - min;
      in_range = in_range && xm[i] >= 0;  // false for NaN (x NaN, or −inf − −inf)
    }
    const int n_cand = nstep + 1 - start;
    for (int c = 0; c < kSweepLanes; ++c) {
      iscales[c] = c < n_cand ? (rmin + rdelta * static_cast<float>(start + c) + fnmax) / range : 0.f;
      // xm[i] ≤ range, and a product rounds monotonically: iscale·range bounds every lane's value.
      in_range = in_range && iscales[c] >= 0 && iscales[c] * range <= kExactRoundLimit;
    }
    if (!in_range)  // the search is a pure function of its inputs: redo all of it in scalar
      return scalar_search_kernels().make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep,
                                                     norm);
    const int n_vec = (n_cand + kL - 1) / kL;
    switch (n_vec) {
#define GROAK_QKX_CASE(k)                                                                                      \
  case k:                                                                                                      \
    qkx_sweep<S, k>(n, x, xm, weights, iscales, fnmax, sum_w, sum_x, norm, D, scales, mins, errs);             \
    break;
      GROAK_QKX_CASE(1)
      GROAK_QKX_CASE(2)
      GROAK_QKX_CASE(3)
      GROAK_QKX_CASE(4)
      GROAK_QKX_CASE(5)
      GROAK_QKX_CASE(6)
#undef GROAK_QKX_CASE
      default:
        return scalar_search_kernels().make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep,
                                                       norm);
    }
    int next = nstep + 1;
    for (int c = 0; c < n_cand; ++c) {
      if (D[c] > 0 && errs[c] < best_error) {
        for (int i = 0; i < n; ++i)
          L[i] = static_cast<uint8_t>(simd_clamp_int(nearest_int(iscales[c] * xm[i]), 0, nmax));
        best_error = errs[c];
        scale = scales[c];
        const bool moved = !(mins[c] == min);
        min = mins[c];
        if (moved) {
          next = start + c + 1;
          break;
        }
      }
    }
    start = next;
  }
  *the_min = -min;
  return scale;
}

// IQ4's sweep (scalar_iq4_fits in quantize_iq4.cpp) with one candidate inverse scale per lane. The level
// nearest to v = id·x as ggml's best_index_int8 picks it: v ≤ values[0] gives 0, v ≥ values[15] gives 15,
// otherwise lo = the last k ≤ 14 with values[k] ≤ v and the lower of lo, lo + 1 when v − values[lo] <
// values[lo + 1] − v. Compares and blends only, so no rounding instruction is involved. A NaN product
// (the one value whose compares would differ from the bisection's) needs a NaN or infinite x or id, so
// such a block goes to the scalar loop.
template <class S>
void simd_iq4_fits(const float* x, const float* w, const float* ids, int m, float* sumqx, float* sumq2) {
  using V = typename S::V;
  constexpr int kL = S::kLanes;
  for (int j = 0; j < 32; ++j)
    if (!std::isfinite(x[j])) return scalar_iq4_fits(x, w, ids, m, sumqx, sumq2);
  for (int t = 0; t < m; ++t)
    if (!std::isfinite(ids[t])) return scalar_iq4_fits(x, w, ids, m, sumqx, sumq2);
  V lv[16];
  for (int k = 0; k < 16; ++k) lv[k] = S::set1(static_cast<float>(kvalues_iq4nl[k]));
  alignas(64) float id[kL], qx[kL], q2[kL];
  for (int t0 = 0; t0 < m; t0 += kL) {
    for (int c = 0; c < kL; ++c) id[c] = t0 + c < m ? ids[t0 + c] : 0.f;
    const V vid = S::load(id);
    V sqx = S::set1(0.f), sq2 = S::set1(0.f);
    for (int j = 0; j < 32; ++j) {
      const V xj = S::set1(x[j]);
      const V v = S::mul(vid, xj);
      V lo = lv[0], hi = lv[1];
      for (int k = 1; k < 15; ++k) {  // values[k] > v keeps the lane's pair
        lo = S::select_gt(lv[k], v, lo, lv[k]);
        hi = S::select_gt(lv[k], v, hi, lv[k + 1]);
      }
      V q = S::select_gt(S::sub(hi, v), S::sub(v, lo), lo, hi);
      q = S::select_gt(lv[15], v, q, lv[15]);  // v ≥ values[15]
      q = S::select_gt(v, lv[0], q, lv[0]);    // v ≤ values[0]
      const V wq = S::mul(S::set1(w[j]), q);
      sqx = S::add(sqx, S::mul(wq, xj));
      sq2 = S::add(sq2, S::mul(wq, q));
    }
    S::store(qx, sqx);
    S::store(q2, sq2);
    for (int c = 0; c < kL && t0 + c < m; ++c) {
      sumqx[t0 + c] = qx[c];
      sumq2[t0 + c] = q2[c];
    }
  }
}

}  // namespace
}  // namespace groak::quant
