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

// The two panels' row i as f32: two aligned loads.
struct F32Rows {
  const float *pa, *pb;
  void operator()(int64_t i, __m512& wa, __m512& wb) const {
    wa = _mm512_load_ps(pa + i * 16);
    wb = _mm512_load_ps(pb + i * 16);
  }
};

// The same rows kept int8: panel a's row i is 16 int8 at p8 + i * stride, panel b's the 16 after them,
// widened in registers (exact). The masked forms with a full mask are the same instructions; GCC 12
// warns that the unmasked intrinsics read an uninitialised vector.
struct I8Rows {
  const int8_t* p8;
  int64_t stride;
  static __m512 widen16(const int8_t* p) {
    return _mm512_maskz_cvtepi32_ps(0xffff,
                                    _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  void operator()(int64_t i, __m512& wa, __m512& wb) const {
    wa = widen16(p8 + i * stride);
    wb = widen16(p8 + i * stride + 16);
  }
};

// R rows × (panel a, panel b): per input row i the two panels' rows and one broadcast per activation
// row; lane c of acc[r][j] is column c of panel j, its fma chain in increasing i.
template <int R, class Rows>
__attribute__((noinline)) void pair_tile(Rows rows, const float* x, int64_t n_in, int64_t k, float* acc_a,
                                         float* acc_b) {
  __m512 ca[R], cb[R];
  for (int r = 0; r < R; ++r) {
    ca[r] = _mm512_loadu_ps(acc_a + r * 16);
    cb[r] = _mm512_loadu_ps(acc_b + r * 16);
  }
  for (int64_t i = 0; i < k; ++i) {
    __m512 wa, wb;
    rows(i, wa, wb);
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

template <class Rows>
void pair_tile_rows(int64_t R, Rows rows, const float* x, int64_t n_in, int64_t k, float* acc_a, float* acc_b) {
  switch (R) {
    case 1: return pair_tile<1>(rows, x, n_in, k, acc_a, acc_b);
    case 2: return pair_tile<2>(rows, x, n_in, k, acc_a, acc_b);
    case 3: return pair_tile<3>(rows, x, n_in, k, acc_a, acc_b);
    case 4: return pair_tile<4>(rows, x, n_in, k, acc_a, acc_b);
    case 5: return pair_tile<5>(rows, x, n_in, k, acc_a, acc_b);
    case 6: return pair_tile<6>(rows, x, n_in, k, acc_a, acc_b);
    case 7: return pair_tile<7>(rows, x, n_in, k, acc_a, acc_b);
    default: return pair_tile<8>(rows, x, n_in, k, acc_a, acc_b);
  }
}

}  // namespace

void panel_pair_tile(int64_t R, const float* pa, const float* pb, const float* x, int64_t n_in, int64_t k,
                     float* acc_a, float* acc_b) {
  pair_tile_rows(R, F32Rows{pa, pb}, x, n_in, k, acc_a, acc_b);
}

void panel_pair_tile_i8(int64_t R, const int8_t* p8, int64_t stride, const float* x, int64_t n_in, int64_t k,
                        float* acc_a, float* acc_b) {
  pair_tile_rows(R, I8Rows{p8, stride}, x, n_in, k, acc_a, acc_b);
}

}  // namespace groak::avx512

#pragma GCC pop_options
#endif
