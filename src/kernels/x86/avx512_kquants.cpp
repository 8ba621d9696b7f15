// AVX-512 VNNI kernels for ggml's k-quant weights (Q2_K … Q6_K) against q8_K activations, for the
// avx512vnni table. The unpacking of each type, the order of arithmetic (so results equal the AVX2
// table's bit for bit) and the decode path are shared with avx2_kquants.cpp (kquant_blocks.h); here:
// - decode (< kPanelRows rows): 8 weight rows in place, each group of 32 weights one maddubs and one
//   vpdpwssd (× the pair scales, accumulated), instead of AVX2's maddubs, madd and add;
// - prefill: panels of 16 rows, each group of 4 weights × 16 rows one zmm, so one vpdpbusd (unsigned
//   weight × signed activation, 4 products summed per int32 lane) advances 16 outputs by 4 inputs; per
//   scale group (16 or 32 weights) the exact int32 sums are multiplied by the rows' scales (vpmulld),
//   Q2_K's panels hold the products scale·q so it needs none; the bsums term is 8 vpdpwssd per block.
#include "kernels/x86/avx512_kquants.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")

#include "kernels/x86/kquant_blocks.h"

namespace groak::avx512 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
// int32 -> f32 (the zero-masked form: GCC 12 warns about _mm512_cvtepi32_ps's undefined pass-through).
inline __m512 to_f32(__m512i v) { return _mm512_maskz_cvtepi32_ps(0xffff, v); }

struct Dot {
  static inline __m256i step(__m256i s, __m256i u, __m256i x, __m256i scales) {
    return _mm256_dpwssd_epi32(s, _mm256_maddubs_epi16(u, x), scales);
  }
};

constexpr int64_t kPanelRows = 8;  // rows from which packing panels pays off

// NR activation rows against a panel of 16 weight rows (kq::PanelLayout<T, 16>, int32 scales).
struct Tile {
  static constexpr int kRows = 8;  // 8 × (scale-group sums, block sums, f32 sums) + operands < 32 zmm
  template <class T, int NR>
  static void run(const uint8_t* panel, int64_t nb, const uint8_t* xq, size_t xrow, float* y, int64_t y_stride,
                  int64_t n_valid) {
    using L = kq::PanelLayout<T, 16>;
    constexpr int kGroups = T::kFoldScales ? 64 : T::kSub / 4;  // groups of 4 weights per scale
    __m512 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* pb = panel + static_cast<size_t>(b) * L::kBlock;
      const uint8_t* xb = xq + static_cast<size_t>(b) * kQ8_KBlockBytes;
      __m512i isum[NR], msum[NR];
      for (int r = 0; r < NR; ++r) isum[r] = msum[r] = _mm512_setzero_si512();
      for (int s = 0; s < 64 / kGroups; ++s) {
        __m512i t[NR];
        for (int r = 0; r < NR; ++r) t[r] = _mm512_setzero_si512();
        for (int g = s * kGroups; g < (s + 1) * kGroups; ++g) {
          const __m512i wv = load64(pb + 64 * g);
          for (int r = 0; r < NR; ++r)
            t[r] = _mm512_dpbusd_epi32(t[r], wv, _mm512_set1_epi32(load_i32(xb + r * xrow + kq::kXQs + 4 * g)));
        }
        if constexpr (T::kFoldScales) {
          for (int r = 0; r < NR; ++r) isum[r] = t[r];
        } else {
          const __m512i sc = load64(pb + L::kSc + 64 * s);
          for (int r = 0; r < NR; ++r) isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(t[r], sc));
        }
      }
      for (int p = 0; p < 8; ++p) {
        const __m512i ov = load64(pb + L::kOff + 64 * p);
        for (int r = 0; r < NR; ++r)
          msum[r] = _mm512_dpwssd_epi32(msum[r], ov, _mm512_set1_epi32(load_i32(xb + r * xrow + kq::kXSums + 4 * p)));
      }
      const __m512 d = _mm512_load_ps(pb + L::kD);
      const __m512 m = _mm512_load_ps(pb + L::kM);
      for (int r = 0; r < NR; ++r) {
        const __m512 dx = _mm512_set1_ps(kq::load_s(xb + r * xrow));
        if constexpr (T::kOffsetSharesScale) {
          acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(d, dx), to_f32(_mm512_add_epi32(isum[r], msum[r])), acc[r]);
        } else {
          acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(d, dx), to_f32(isum[r]), acc[r]);
          acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(m, dx), to_f32(msum[r]), acc[r]);
        }
      }
    }
    const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1);
    for (int r = 0; r < NR; ++r) _mm512_mask_storeu_ps(y + r * y_stride, valid, acc[r]);
  }
};

template <class T>
void matmul_t(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  if (a.n_rows >= kPanelRows && kq::panel_matmul<T, 16, false, Tile>(a, o0, o1, scratch)) return;
  kq::rows_in_place<T, Dot>(a, o0, o1);
}

}  // namespace

void kquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  switch (a.w->ggml) {
    case GgmlType::Q2_K: return matmul_t<kq::Q2K>(a, o0, o1, scratch);
    case GgmlType::Q3_K: return matmul_t<kq::Q3K>(a, o0, o1, scratch);
    case GgmlType::Q4_K: return matmul_t<kq::Q4K>(a, o0, o1, scratch);
    case GgmlType::Q5_K: return matmul_t<kq::Q5K>(a, o0, o1, scratch);
    case GgmlType::Q6_K: return matmul_t<kq::Q6K>(a, o0, o1, scratch);
    default: return;  // not a k-quant: avx512_vnni.cpp never sends one
  }
}

}  // namespace groak::avx512

#pragma GCC pop_options
#endif
