// AVX-512 table of the quantizers' scale searches: 16 candidates per vector (x86/quant_search_simd.h).
// Built with -ffp-contract=off (CMakeLists.txt): every mul and add must round on its own, as in ggml.
#include "kernels/quant_search.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cmath>
#include <cstdint>

// Before the target pragma: its inline functions (nearest_int …) must stay compiled for the baseline.
#include "kernels/quant_impl.h"

#pragma GCC push_options
#pragma GCC target("avx2,avx512f")
// GCC 12's unmasked _mm512_min/max/roundscale_ps pass _mm512_undefined_ps() as their merge source, which
// -Wmaybe-uninitialized reports once inlined (GCC bug 105593): nothing here reads an undefined lane.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace groak::quant {
namespace {

struct Avx512Lanes {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, V a) { _mm512_store_ps(p, a); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V select_gt(V a, V b, V t, V f) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), f, t); }
};

}  // namespace
}  // namespace groak::quant

#include "kernels/x86/quant_search_simd.h"

namespace groak::quant {

const SearchKernels* avx512_search_kernels() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f");
  if (!ok) return nullptr;
  static const SearchKernels k{"avx512", simd_make_qx_quants<Avx512Lanes>,
                                  // simd_make_qkx_quants is byte-identical but slower than the scalar
                                  // search (its re-sweeps after each win that moves min cost more than
                                  // the lanes save; the scalar one skips repeated levels): not used yet.
                                  scalar_search_kernels().make_qkx_quants,
                                  // one group per lane in 8 lanes: a super-block has 8 (or 16) groups
                                  avx2_qkx_quants8(), simd_iq4_fits<Avx512Lanes>};
  return &k;
}

}  // namespace groak::quant

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else
namespace groak::quant {
const SearchKernels* avx512_search_kernels() { return nullptr; }
}  // namespace groak::quant
#endif
