// AVX-512F f32 register tiles for the exact paths of the avx512vnni table: the prefill of xAI int8 and
// f32 [in, out] matrices (inout_tiles.h). The order of arithmetic is avx2.cpp's; the tile is wider (this
// core retires two 16-lane FMAs per cycle, twice AVX2's 8-lane rate), and for xAI int8 it reads int8
// panels and widens them itself, so that the repacking writes a quarter of the bytes.
#include "kernels/x86/inout_tiles.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f")

namespace groak::avx512 {
namespace {

// R rows × (panel a, panel b): per input row i one load of each panel row and one broadcast per
// activation row; lane c of acc[r][j] is column c of panel j, its fma chain in increasing i.
template <int R>
__attribute__((noinline)) void pair_tile(const float* pa, const float* pb, const float* x, int64_t n_in, int64_t k,
                                         float* acc_a, float* acc_b) {
  __m512 ca[R], cb[R];
  for (int r = 0; r < R; ++r) {
    ca[r] = _mm512_loadu_ps(acc_a + r * 16);
    cb[r] = _mm512_loadu_ps(acc_b + r * 16);
  }
  for (int64_t i = 0; i < k; ++i) {
    const __m512 wa = _mm512_load_ps(pa + i * 16), wb = _mm512_load_ps(pb + i * 16);
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r * n_in + i]);
      ca[r] = _mm512_fmadd_ps(xb, wa, ca[r]);
      cb[r] = _mm512_fmadd_ps(xb, wb, cb[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(acc_a + r * 16, ca[r]);
    _mm512_storeu_ps(acc_b + r * 16, cb[r]);
  }
}

// 16 int8 → f32, exact. (The masked forms with a full mask are the same instructions; GCC 12 warns that
// the unmasked intrinsics read an uninitialised vector.)
inline __m512 widen16(const int8_t* p) {
  return _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// The same chains over int8 panels: row i of panel a is 16 int8 at p8 + i * stride, of panel b the 16
// after them; each is widened in registers right before its FMAs.
template <int R>
__attribute__((noinline)) void pair_tile_i8(const int8_t* p8, int64_t stride, const float* x, int64_t n_in, int64_t k,
                                            float* acc_a, float* acc_b) {
  __m512 ca[R], cb[R];
  for (int r = 0; r < R; ++r) {
    ca[r] = _mm512_loadu_ps(acc_a + r * 16);
    cb[r] = _mm512_loadu_ps(acc_b + r * 16);
  }
  for (int64_t i = 0; i < k; ++i) {
    const int8_t* w = p8 + i * stride;
    const __m512 wa = widen16(w), wb = widen16(w + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r * n_in + i]);
      ca[r] = _mm512_fmadd_ps(xb, wa, ca[r]);
      cb[r] = _mm512_fmadd_ps(xb, wb, cb[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(acc_a + r * 16, ca[r]);
    _mm512_storeu_ps(acc_b + r * 16, cb[r]);
  }
}

}  // namespace

void panel_pair_tile_i8(int64_t R, const int8_t* p8, int64_t stride, const float* x, int64_t n_in, int64_t k,
                        float* acc_a, float* acc_b) {
  switch (R) {
    case 1: return pair_tile_i8<1>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 2: return pair_tile_i8<2>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 3: return pair_tile_i8<3>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 4: return pair_tile_i8<4>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 5: return pair_tile_i8<5>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 6: return pair_tile_i8<6>(p8, stride, x, n_in, k, acc_a, acc_b);
    case 7: return pair_tile_i8<7>(p8, stride, x, n_in, k, acc_a, acc_b);
    default: return pair_tile_i8<8>(p8, stride, x, n_in, k, acc_a, acc_b);
  }
}

void panel_pair_tile(int64_t R, const float* pa, const float* pb, const float* x, int64_t n_in, int64_t k,
                     float* acc_a, float* acc_b) {
  switch (R) {
    case 1: return pair_tile<1>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 2: return pair_tile<2>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 3: return pair_tile<3>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 4: return pair_tile<4>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 5: return pair_tile<5>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 6: return pair_tile<6>(pa, pb, x, n_in, k, acc_a, acc_b);
    case 7: return pair_tile<7>(pa, pb, x, n_in, k, acc_a, acc_b);
    default: return pair_tile<8>(pa, pb, x, n_in, k, acc_a, acc_b);
  }
}

}  // namespace groak::avx512

#pragma GCC pop_options
#endif
