// AVX2 table of the quantizers' scale searches: 8 candidates per vector (x86/quant_search_simd.h).
// Built with -ffp-contract=off (CMakeLists.txt): every mul and add must round on its own, as in ggml.
#include "kernels/quant_search.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>

// Before the target pragma: its inline functions (nearest_int …) must stay compiled for the baseline.
#include "kernels/quant_impl.h"

#pragma GCC push_options
#pragma GCC target("avx2")

namespace groak::quant {
namespace {

struct Avx2Lanes {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, V a) { _mm256_store_ps(p, a); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V select_gt(V a, V b, V t, V f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
};


// make_qkx_quants with one group per lane: lane j runs, for its group, the scalar function's f32
// operations in the scalar order (quant_search.cpp), every candidate in turn; the scalar one skips a
// candidate whose levels repeat its predecessor's, which cannot change the result (equal levels give an
// equal error, and only a strictly smaller one wins). Falls back to 8 scalar calls when an input is not
// finite or a scaled value leaves the range where the rounding instruction equals nearest_int.
void qkx_quants8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales, float* the_mins,
                 float rmin, float rdelta, int nstep, ErrorNorm norm) {
  alignas(32) float xt[kMaxSearchGroup][8], wt[kMaxSearchGroup][8], lt[kMaxSearchGroup][8];
  bool finite = n >= 1 && n <= kMaxSearchGroup;
  for (int j = 0; j < 8 && finite; ++j)
    for (int i = 0; i < n; ++i) {
      xt[i][j] = x[j * n + i];
      wt[i][j] = weights[j * n + i];
      finite = finite && std::isfinite(xt[i][j]) && std::isfinite(wt[i][j]);
    }
  if (!finite) return scalar_make_qkx_quants8(n, nmax, x, weights, L, scales, the_mins, rmin, rdelta, nstep, norm);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f), fnmax = _mm256_set1_ps(static_cast<float>(nmax));
  const __m256 limit = _mm256_set1_ps(kExactRoundLimit), sign = _mm256_set1_ps(-0.f);
  const bool absolute = norm == ErrorNorm::Absolute;
  const auto X = [&](int i) { return _mm256_load_ps(xt[i]); };
  const auto W = [&](int i) { return _mm256_load_ps(wt[i]); };
  const auto error = [&](__m256 diff) { return absolute ? _mm256_andnot_ps(sign, diff) : _mm256_mul_ps(diff, diff); };
  // clamp(nearest_int(v), 0, nmax) as a float (+0 for −0, as the int 0 converts).
  const auto level = [&](__m256 v) {
    const __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_add_ps(_mm256_min_ps(_mm256_max_ps(r, zero), fnmax), zero);
  };
  // Every v = iscale·(x − m) of a candidate lies between its values at the group's smallest and largest x
  // (a float product and difference are monotonic), so checking those two bounds every |v|.
  __m256 in_range = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  const auto check = [&](__m256 iscale, __m256 lo, __m256 hi, __m256 m) {
    const __m256 a = _mm256_andnot_ps(sign, _mm256_mul_ps(iscale, _mm256_sub_ps(lo, m)));
    const __m256 b = _mm256_andnot_ps(sign, _mm256_mul_ps(iscale, _mm256_sub_ps(hi, m)));
    const __m256 both = _mm256_and_ps(_mm256_cmp_ps(a, limit, _CMP_LE_OQ), _mm256_cmp_ps(b, limit, _CMP_LE_OQ));
    in_range = _mm256_and_ps(in_range, both);
  };
  __m256 mn = X(0), mx = X(0), sum_w = W(0), sum_x = _mm256_mul_ps(W(0), X(0));
  for (int i = 1; i < n; ++i) {
    mn = _mm256_min_ps(X(i), mn);  // x < min ? x : min
    mx = _mm256_max_ps(X(i), mx);  // x > max ? x : max
    sum_w = _mm256_add_ps(sum_w, W(i));
    sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W(i), X(i)));
  }
  const __m256 x_lo = mn;                                                  // the group's smallest x
  mn = _mm256_blendv_ps(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));  // if (min > 0) min = 0 (−0 stays)
  const __m256 constant = _mm256_cmp_ps(mx, mn, _CMP_LE_OQ);            // these lanes: L = 0, scale 0
  const auto range = [&](__m256 m) { return _mm256_blendv_ps(_mm256_sub_ps(mx, m), one, constant); };
  __m256 iscale = _mm256_div_ps(fnmax, range(mn));
  __m256 scale = _mm256_div_ps(one, iscale);
  __m256 best = zero;
  check(iscale, x_lo, mx, mn);
  for (int i = 0; i < n; ++i) {
    const __m256 l = level(_mm256_mul_ps(iscale, _mm256_sub_ps(X(i), mn)));
    _mm256_store_ps(lt[i], l);
    const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, l), mn), X(i));
    best = _mm256_add_ps(best, _mm256_mul_ps(W(i), error(diff)));
  }
  const __m256 min0 = mn;
  for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
    const float num = rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax);  // the scalar order
    iscale = _mm256_div_ps(_mm256_set1_ps(num), range(mn));
    check(iscale, x_lo, mx, mn);
    __m256 aux[kMaxSearchGroup];
    __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      aux[i] = level(_mm256_mul_ps(iscale, _mm256_sub_ps(X(i), mn)));
      const __m256 wl = _mm256_mul_ps(W(i), aux[i]);
      sum_l = _mm256_add_ps(sum_l, wl);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, aux[i]));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X(i)));
    }
    const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    __m256 this_scale =
        _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
    __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
    const __m256 min_pos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
    this_min = _mm256_blendv_ps(this_min, zero, min_pos);
    this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), min_pos);
    __m256 cur = zero;
    for (int i = 0; i < n; ++i) {
      const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, aux[i]), this_min), X(i));
      cur = _mm256_add_ps(cur, _mm256_mul_ps(W(i), error(diff)));
    }
    const __m256 win = _mm256_andnot_ps(
        constant, _mm256_and_ps(_mm256_cmp_ps(D, zero, _CMP_GT_OQ), _mm256_cmp_ps(cur, best, _CMP_LT_OQ)));
    if (_mm256_movemask_ps(win) == 0) continue;
    for (int i = 0; i < n; ++i) _mm256_store_ps(lt[i], _mm256_blendv_ps(_mm256_load_ps(lt[i]), aux[i], win));
    best = _mm256_blendv_ps(best, cur, win);
    scale = _mm256_blendv_ps(scale, this_scale, win);
    mn = _mm256_blendv_ps(mn, this_min, win);
  }
  if (_mm256_movemask_ps(in_range) != 0xff)
    return scalar_make_qkx_quants8(n, nmax, x, weights, L, scales, the_mins, rmin, rdelta, nstep, norm);
  scale = _mm256_blendv_ps(scale, zero, constant);
  mn = _mm256_blendv_ps(mn, min0, constant);
  alignas(32) float sc[8], neg_min[8];
  _mm256_store_ps(sc, scale);
  _mm256_store_ps(neg_min, _mm256_xor_ps(mn, sign));  // *the_min = −min
  const int cmask = _mm256_movemask_ps(constant);
  for (int j = 0; j < 8; ++j) {
    scales[j] = sc[j];
    the_mins[j] = neg_min[j];
    for (int i = 0; i < n; ++i) L[j * n + i] = (cmask >> j & 1) ? 0 : static_cast<uint8_t>(lt[i][j]);
  }
}

}  // namespace
}  // namespace groak::quant

#include "kernels/x86/quant_search_simd.h"

namespace groak::quant {

const SearchKernels* avx2_search_kernels() {
  static const bool ok = __builtin_cpu_supports("avx2");
  if (!ok) return nullptr;
  static const SearchKernels k{"avx2", simd_make_qx_quants<Avx2Lanes>,
                                  // simd_make_qkx_quants is byte-identical but slower than the scalar
                                  // search (its re-sweeps after each win that moves min cost more than
                                  // the lanes save; the scalar one skips repeated levels): not used yet.
                                  scalar_search_kernels().make_qkx_quants, qkx_quants8, simd_iq4_fits<Avx2Lanes>};
  return &k;
}

QkxSearch8 avx2_qkx_quants8() { return __builtin_cpu_supports("avx2") ? qkx_quants8 : nullptr; }

}  // namespace groak::quant

#pragma GCC pop_options

#else
namespace groak::quant {
const SearchKernels* avx2_search_kernels() { return nullptr; }
QkxSearch8 avx2_qkx_quants8() { return nullptr; }
}  // namespace groak::quant
#endif
