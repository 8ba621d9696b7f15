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
                                  scalar_search_kernels().make_qkx_quants};
  return &k;
}

}  // namespace groak::quant

#pragma GCC pop_options

#else
namespace groak::quant {
const SearchKernels* avx2_search_kernels() { return nullptr; }
}  // namespace groak::quant
#endif
