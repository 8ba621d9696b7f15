// AVX2+FMA elementwise math: the GELU of every expert, 8 lanes at a time instead of a libm tanh per
// element (the reference table's), which ran on one thread per decoded token.
#include "kernels/x86/avx2_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

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

}  // namespace

void gelu_tanh(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = gelu1(x[i]);
}

}  // namespace groak::avx2

#pragma GCC pop_options
#endif
