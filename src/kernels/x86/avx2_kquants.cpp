// AVX2 + FMA + F16C kernels for ggml's k-quant weights ([out, in] rows of Q2_K … Q6_K super-blocks of
// 256) against activations quantised once per product to q8_K (256 int8, an f32 scale, sums of 16), as
// llama.cpp's ggml_vec_dot_q*_K_q8_K do. avx2.cpp's table calls these (avx2_kquants.h); the unpacking of
// each type, the order of arithmetic and the decode path are shared with the AVX-512 table
// (kquant_blocks.h); quant.cpp holds the scalar oracles (dequantize_row, quantize_row_q8_K).
//
// Paths: few rows (decode, < kPanelRows): 8 weight rows read in place (kq::rows8); many rows (prefill):
// panels of 8 rows repacked per call, each group of 4 weights × 8 rows one ymm, multiplied with one
// broadcast group of 4 activations by maddubs (unsigned weight × signed activation, pairs in int16) and
// madd (× the rows' scale, as an int16 pair: exact int32 lanes, one per output).
#include "kernels/x86/avx2_kquants.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "kernels/x86/kquant_blocks.h"
#include "kernels/x86/iquant_blocks.h"

namespace groak::avx2 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

constexpr int64_t kPanelRows = 8;  // rows from which packing panels pays off

// NR activation rows against a panel of 8 weight rows (kq::PanelLayout<T, 8>, pair scales).
struct Tile {
  static constexpr int kRows = 4;  // 4 int sums + 4 f32 sums + operands fit the 16 ymm registers
  template <class T, int NR>  // not inlined: each size gets its own register allocation (inlined, they spilled)
  __attribute__((noinline)) static void run(const uint8_t* panel, int64_t nb, const uint8_t* xq, size_t xrow,
                                            float* y, int64_t y_stride, int64_t n_valid) {
    using L = kq::PanelLayout<T, 8>;
    constexpr int kGroups = T::kFoldScales ? 64 : T::kSub / 4;  // groups of 4 weights per scale
    __m256 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* pb = panel + static_cast<size_t>(b) * L::kBlock;
      const uint8_t* xb = xq + static_cast<size_t>(b) * kQ8_KBlockBytes;
      __m256i isum[NR], msum[NR];
      for (int r = 0; r < NR; ++r) isum[r] = msum[r] = _mm256_setzero_si256();
      for (int s = 0; s < 64 / kGroups; ++s) {
        const __m256i sc = T::kFoldScales ? _mm256_set1_epi16(1) : kq::load32(pb + L::kSc + 32 * s);
        for (int g = s * kGroups; g < (s + 1) * kGroups; ++g) {
          const __m256i wv = kq::load32(pb + 32 * g);
          for (int r = 0; r < NR; ++r) {
            const __m256i xv = _mm256_set1_epi32(load_i32(xb + r * xrow + kq::kXQs + 4 * g));
            isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), sc));
          }
        }
      }
      for (int p = 0; p < 8; ++p) {
        const __m256i ov = kq::load32(pb + L::kOff + 32 * p);
        for (int r = 0; r < NR; ++r)
          msum[r] = _mm256_add_epi32(msum[r], _mm256_madd_epi16(ov, _mm256_set1_epi32(load_i32(xb + r * xrow + kq::kXSums + 4 * p))));
      }
      const __m256 d = _mm256_load_ps(reinterpret_cast<const float*>(pb + L::kD));
      const __m256 m = _mm256_load_ps(reinterpret_cast<const float*>(pb + L::kM));
      for (int r = 0; r < NR; ++r) {
        const __m256 dx = _mm256_set1_ps(kq::load_s(xb + r * xrow));
        if constexpr (T::kOffsetSharesScale) {
          acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(_mm256_add_epi32(isum[r], msum[r])), acc[r]);
        } else {
          acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(isum[r]), acc[r]);
          acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(m, dx), _mm256_cvtepi32_ps(msum[r]), acc[r]);
        }
      }
    }
    for (int r = 0; r < NR; ++r) kq::store_lanes8(y + r * y_stride, acc[r], n_valid);
  }
};

template <class T>
void matmul_t(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  if (a.n_rows >= kPanelRows && kq::panel_matmul<T, 8, true, Tile>(a, o0, o1, scratch)) return;
  kq::rows_in_place<T, kq::DotAvx2>(a, o0, o1);
}

}  // namespace

bool kquant_covers(const Matrix& w) {
  return w.format == WeightFormat::Ggml && w.layout == Layout::OutIn && kq::visit(w.ggml, []<class>() {});
}

void kquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  // Not a covered type (kquant_covers is false): the caller never gets here.
  kq::visit(a.w->ggml, [&]<class T>() { matmul_t<T>(a, o0, o1, scratch); });
}

// quantize_row_q8_K_ref with 8 lanes. Identical bytes: max |x| is exact in any order (and max_ps with the
// running maximum as its second operand skips NaN as the reference's `ax > amax` does); the signed max is
// the first element of that magnitude; q = round-to-nearest-even(iscale·x) is cvtps_epi32 in the default
// rounding mode (NaN → 0 as quant.cpp's nearest_int); the sums are plain integer adds.
void quantize_q8_K(const float* x, uint8_t* out, int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n; i += kQK_K, x += kQK_K, out += kQ8_KBlockBytes) {
    __m256 am = _mm256_setzero_ps();
    for (int j = 0; j < kQK_K; j += 8) am = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), am);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    int16_t bsums[kQK_K / 16] = {};
    float d = 0.f;
    if (amax == 0.f) {
      std::memset(out + kq::kXQs, 0, kQK_K);
    } else {
      float max = 0.f;
      for (int j = 0; j < kQK_K; ++j)
        if (__builtin_fabsf(x[j]) == amax) {
          max = x[j];
          break;
        }
      const float iscale = -127.f / max;
      const __m256 vs = _mm256_set1_ps(iscale);
      const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-128);
      const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (int j = 0; j < kQK_K; j += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; ++k) {
          const __m256 p = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * k));
          const __m256i q = _mm256_and_si256(_mm256_cvtps_epi32(p), _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_ORD_Q)));
          v[k] = _mm256_max_epi32(_mm256_min_epi32(q, hi), lo);
        }
        const __m256i b = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3])), order);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + kq::kXQs + j), b);
      }
      const int8_t* qs = reinterpret_cast<const int8_t*>(out + kq::kXQs);
      for (int g = 0; g < kQK_K / 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += qs[16 * g + l];
        bsums[g] = static_cast<int16_t>(sum);
      }
      d = 1 / iscale;
    }
    std::memcpy(out, &d, 4);
    std::memcpy(out + kq::kXSums, bsums, sizeof bsums);
  }
}

// quantize_row_q8_0_ref with 8 lanes (the activations of every q8_0/q4_0 product). Identical bytes: the max
// |x| is exact in any order; d and its f16 are the reference's scalar steps; q = x·id rounded half away
// from zero as trunc(t) + sign(t)·(|t − trunc(t)| ≥ 0.5), exact in float; the reference's cast keeps the
// low byte of int32(q) and gives 0 for NaN, ±inf and |q| ≥ 2^31 (id = inf when d is subnormal), as the
// masked low bytes here. A block holding a NaN takes the scalar path (the reference's running max
// restarts after a NaN, which no vector max reproduces).
void quantize_q8_0(const float* x, uint8_t* out, int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f), limit = _mm256_set1_ps(2147483648.f);
  const __m256i low = _mm256_set1_epi32(0xff);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < n; i += 32, x += 32, out += 34) {
    __m256 v[4];
    __m256 am = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      am = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), am);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q));
    }
    if (!_mm256_testz_ps(nan, nan)) {
      quantize_row(GgmlType::Q8_0, x, out, 32);
      continue;
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.f;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t h = f32_to_fp16(d);
    std::memcpy(out, &h, 2);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 t = _mm256_mul_ps(v[k], vid);
      const __m256 r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 up = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(t, r), abs_mask), half, _CMP_GE_OQ);
      const __m256 sign_one = _mm256_or_ps(_mm256_andnot_ps(abs_mask, t), one);
      const __m256 rq = _mm256_add_ps(r, _mm256_and_ps(up, sign_one));
      const __m256 in_range = _mm256_cmp_ps(_mm256_and_ps(rq, abs_mask), limit, _CMP_LT_OQ);  // false: NaN, inf
      q[k] = _mm256_and_si256(_mm256_and_si256(_mm256_cvttps_epi32(rq), _mm256_castps_si256(in_range)), low);
    }
    // Low bytes 0…255 pass both unsigned packs unchanged.
    const __m256i b = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3])), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), b);
  }
}

}  // namespace groak::avx2

#pragma GCC pop_options
#endif
