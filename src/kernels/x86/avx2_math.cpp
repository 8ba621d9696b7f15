// AVX2+FMA elementwise math: the GELU of every expert, 8 lanes at a time instead of a libm tanh per
// element (the reference table's), which ran on one thread per decoded token.
#include "kernels/x86/avx2_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace groak::avx2 {
namespace {

// e^x for x in [−87, 88] (callers clamp): x = n·ln2 + r, |r| ≤ ln2/2, e^r by Cephes' expf polynomial
// (≈ 1 ulp), times 2^n built in the exponent bits.
inline __m256 exp8(__m256 x) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts: hi exact in float
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 er = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.f));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(er, _mm256_castsi256_ps(two_n));
}

inline __m256 gelu8(__m256 u) {
  const __m256 u3 = _mm256_mul_ps(_mm256_mul_ps(u, u), u);
  const __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), u3, u));
  // −2z clamped where e^(−2z) stays finite; past it the quotient is 0 (−2z ≥ 88) or u (≤ −87) to float
  // precision either way. A NaN u stays NaN through the division.
  const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_set1_ps(-2.f), z), _mm256_set1_ps(-87.f)),
                                 _mm256_set1_ps(88.f));
  return _mm256_div_ps(u, _mm256_add_ps(_mm256_set1_ps(1.f), exp8(t)));
}

inline float gelu1(float u) {
  const float z = 0.7978845608028654f * (u + 0.044715f * u * u * u);
  return u / (1.f + std::exp(std::fmin(std::fmax(-2.f * z, -87.f), 88.f)));
}

// tanh(y): Cephes' tanhf, 8 lanes. |y| < 0.625: y + y·z·P(z), z = y²; else sign(y)·(1 − 2/(e^(2|y|) + 1)),
// with 2|y| clamped at 88 (tanh is 1 to float precision long before). NaN stays NaN.
inline __m256 tanh8(__m256 y) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 a = _mm256_andnot_ps(sign, y);
  const __m256 z = _mm256_mul_ps(y, y);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), y, y);
  const __m256 e = exp8(_mm256_min_ps(_mm256_add_ps(a, a), _mm256_set1_ps(88.f)));
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, one)));
  const __m256 signed_big = _mm256_or_ps(big, _mm256_and_ps(sign, y));
  return _mm256_blendv_ps(signed_big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

}  // namespace

void soft_cap(float* x, int64_t n, float cap, float mult) {
  int64_t i = 0;
  const __m256 c = _mm256_set1_ps(cap), m = _mm256_set1_ps(mult);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(c, tanh8(_mm256_div_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), m), c))));
  for (; i < n; ++i) {  // the tail through the same lanes
    alignas(32) float t[8] = {};
    t[0] = x[i];
    _mm256_store_ps(t, _mm256_mul_ps(c, tanh8(_mm256_div_ps(_mm256_mul_ps(_mm256_load_ps(t), m), c))));
    x[i] = t[0];
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  // Max: 8 lanes, then the lanes; the tail scalar (max is exact whatever the order).
  int64_t i = 0;
  __m256 mv = _mm256_set1_ps(x[0]);
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float mx = lanes[0];
  for (int l = 1; l < 8; ++l) mx = std::max(mx, lanes[l]);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // e^(x − max), 0 where expf underflows; sums in 4 double lanes, then (l0 + l2) + (l1 + l3).
  const __m256 vmx = _mm256_set1_ps(mx), lo = _mm256_set1_ps(-87.f), under = _mm256_set1_ps(-87.33654f);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  const auto exp_at = [&](__m256 d) {
    return _mm256_andnot_ps(_mm256_cmp_ps(d, under, _CMP_LT_OQ), exp8(_mm256_max_ps(d, lo)));
  };
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_at(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
    _mm256_storeu_ps(x + i, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double sl[4];
  _mm256_store_pd(sl, _mm256_add_pd(s0, s1));
  double sum = (sl[0] + sl[2]) + (sl[1] + sl[3]);
  for (; i < n; ++i) {
    alignas(32) float t[8] = {};
    t[0] = x[i] - mx;
    _mm256_store_ps(t, exp_at(_mm256_load_ps(t)));
    x[i] = t[0];
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv)));
  for (; i < n; ++i) x[i] *= inv;
}

void gelu_tanh(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = gelu1(x[i]);
}

}  // namespace groak::avx2

#pragma GCC pop_options
#endif
