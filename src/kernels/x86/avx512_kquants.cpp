// AVX-512 VNNI kernels for ggml's k-quant weights (Q2_K … Q6_K) against q8_K activations, for the
// avx512vnni table. The unpacking of each type, the order of arithmetic (so results equal the AVX2
// table's bit for bit) and the decode path are shared with avx2_kquants.cpp (kquant_blocks.h); here:
// - decode (< kPanelRows rows): 8 weight rows in place, each super-block's codes unpacked as 4 zmm of 64
//   weights in order, one maddubs and one vpdpwssd (× the groups' scales, accumulated) per zmm, instead
//   of AVX2's maddubs, madd and add per 32 weights;
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
#include "kernels/x86/iquant_blocks.h"

namespace groak::avx512 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
// acc += vpdpbusd(u, s) with the accumulator tied to the destination: GCC 12 copies the accumulator in and
// out of the intrinsic's destination register (two vmovdqa per vpdpbusd in the prefill tile).
inline void dpbusd(__m512i& acc, __m512i u, __m512i s) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s)); }
inline void dpwssd(__m512i& acc, __m512i a, __m512i b) { asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); }
// int32 -> f32 (the zero-masked form: GCC 12 warns about _mm512_cvtepi32_ps's undefined pass-through).
inline __m512 to_f32(__m512i v) { return _mm512_maskz_cvtepi32_ps(0xffff, v); }

// ---------------------------------------------------------------------------------------------------
// Decode: each super-block's codes as 4 zmm of 64 weights in their natural order (weights 64c … 64c+63),
// so the q8_K activations are read as they lie; per zmm one maddubs (pairs in int16) and one vpdpwssd
// with the 4 groups' scales spread over the int16 lanes (vpermw).

// (The zero-masked forms throughout: GCC 12 warns about the plain forms' undefined pass-through.)
inline __m512i halves(__m256i lo, __m256i hi) { return _mm512_maskz_inserti64x4(0xff, _mm512_castsi256_si512(lo), hi, 1); }
inline __m512i both(__m256i v) { return _mm512_maskz_broadcast_i64x4(0xff, v); }
inline __m512i bytes2(int lo, int hi) { return halves(_mm256_set1_epi8(static_cast<char>(lo)), _mm256_set1_epi8(static_cast<char>(hi))); }
inline __m512i words2(int lo, int hi) { return halves(_mm256_set1_epi16(static_cast<short>(lo)), _mm256_set1_epi16(static_cast<short>(hi))); }

// Codes64<T>::get(block, u): u[c] = the unsigned codes of weights 64c … 64c+63 (kquant_blocks.h's u).
template <class T>
struct Codes64;

template <>
struct Codes64<kq::Q2K> {  // weight 128h + 32s + l: bits 2s, 2s+1 of qs[32h + l]
  static inline void get(const uint8_t* b, __m512i* u) {
    const __m512i three = _mm512_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m512i q = both(kq::load32(b + 16 + 32 * h));
      u[2 * h] = _mm512_and_si512(_mm512_srlv_epi16(q, words2(0, 2)), three);
      u[2 * h + 1] = _mm512_and_si512(_mm512_srlv_epi16(q, words2(4, 6)), three);
    }
  }
};

template <>
struct Codes64<kq::Q3K> {  // Q2_K's layout at byte 32, + 4 where bit 4h + s of hmask[l] is set
  static inline void get(const uint8_t* b, __m512i* u) {
    const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4), hm = both(kq::load32(b));
    for (int h = 0; h < 2; ++h) {
      const __m512i q = both(kq::load32(b + 32 + 32 * h));
      for (int t = 0; t < 2; ++t) {
        const __m512i low = _mm512_and_si512(_mm512_srlv_epi16(q, words2(4 * t, 4 * t + 2)), three);
        const __mmask64 bit = _mm512_test_epi8_mask(hm, bytes2(1 << (4 * h + 2 * t), 1 << (4 * h + 2 * t + 1)));
        u[2 * h + t] = _mm512_mask_add_epi8(low, bit, low, four);
      }
    }
  }
};

template <>
struct Codes64<kq::Q4K> {  // weights 64c … 64c+31: low nibbles of qs[32c …], 64c+32 …: high nibbles
  static inline void get(const uint8_t* b, __m512i* u) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = kq::load32(b + 16 + 32 * c);
      u[c] = _mm512_and_si512(halves(q, _mm256_srli_epi16(q, 4)), low4);
    }
  }
};

template <>
struct Codes64<kq::Q5K> {  // Q4_K's layout at byte 48, + 16 where bit 2c (2c + 1) of qh[l] is set
  static inline void get(const uint8_t* b, __m512i* u) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16), qh = both(kq::load32(b + 16));
    for (int c = 0; c < 4; ++c) {
      const __m256i q = kq::load32(b + 48 + 32 * c);
      const __m512i low = _mm512_and_si512(halves(q, _mm256_srli_epi16(q, 4)), low4);
      u[c] = _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(qh, bytes2(1 << (2 * c), 1 << (2 * c + 1))), low, sixteen);
    }
  }
};

template <>
struct Codes64<kq::Q6K> {  // half h: low 4 bits from ql[64h …] (r < 2) or their high nibbles, top 2 from qh[32h + l]
  static inline void get(const uint8_t* b, __m512i* u) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b + 64 * h), qh = both(kq::load32(b + 128 + 32 * h));
      u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, words2(4, 2)), bits45));
      u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                     _mm512_and_si512(_mm512_srlv_epi16(qh, words2(0, 2)), bits45));
    }
  }
};

// int16 lane i of zmm c (the pair of weights 64c + 2i, 64c + 2i + 1) takes the scale of group 4c + i/8.
struct GroupIndex {
  alignas(64) int16_t v[4][32];
  constexpr GroupIndex() : v{} {
    for (int c = 0; c < 4; ++c)
      for (int i = 0; i < 32; ++i) v[c][i] = static_cast<int16_t>(4 * c + i / 8);
  }
};
constexpr GroupIndex kGroupIndex;

struct Dot {
  template <class T, int NR>
  static inline void block(const uint8_t* blk, const uint8_t* x, size_t xrow, __m256i* isum, __m256i* msum, float& d,
                           float& m) {
    kq::KBlock k;
    T::scales(blk, k);
    d = k.d;
    m = k.m;
    __m512i u[4];
    if constexpr (T::kWhole) {  // an i-quant: scales() decoded the codes as 8 ymm of 32 weights
      for (int c = 0; c < 4; ++c) u[c] = halves(k.u[2 * c], k.u[2 * c + 1]);
    } else {
      Codes64<T>::get(blk, u);
    }
    const __m512i sc = both(k.sc);  // lanes 16 … 31 unused (indices < 16)
    __m512i s[NR], s2[NR];  // two chains: vpdpwssd has a latency of several cycles
    for (int r = 0; r < NR; ++r) s[r] = s2[r] = _mm512_setzero_si512();
    for (int c = 0; c < 4; c += 2) {
      const __m512i mul = _mm512_permutexvar_epi16(_mm512_load_si512(kGroupIndex.v[c]), sc);
      const __m512i mul2 = _mm512_permutexvar_epi16(_mm512_load_si512(kGroupIndex.v[c + 1]), sc);
      for (int r = 0; r < NR; ++r) {
        const uint8_t* xv = x + r * xrow + kq::kXQs + 64 * c;
        dpwssd(s[r], _mm512_maddubs_epi16(u[c], load64(xv)), mul);
        dpwssd(s2[r], _mm512_maddubs_epi16(u[c + 1], load64(xv + 64)), mul2);
      }
    }
    for (int r = 0; r < NR; ++r) {
      const __m512i z = _mm512_add_epi32(s[r], s2[r]);
      const __m256i ir = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xf, z, 0), _mm512_maskz_extracti64x4_epi64(0xf, z, 1));
      const __m256i mr = _mm256_madd_epi16(k.off, kq::load32(x + r * xrow + kq::kXSums));
      if constexpr (T::kOffsetSharesScale) {
        isum[r] = _mm256_add_epi32(ir, mr);
      } else {
        isum[r] = ir;
        msum[r] = mr;
      }
    }
  }
};

constexpr int64_t kPanelRows = 8;  // rows from which packing panels pays off

// NR activation rows against a panel of 16 weight rows (kq::PanelLayout<T, 16>, int32 scales).
struct Tile {
  static constexpr int kRows = 8;  // 8 × (scale-group sums, block sums, f32 sums) + operands < 32 zmm
  template <class T, int NR>  // not inlined: each size gets its own register allocation (inlined, they spilled)
  __attribute__((noinline)) static void run(const uint8_t* panel, int64_t nb, const uint8_t* xq, size_t xrow,
                                            float* y, int64_t y_stride, int64_t n_valid) {
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
            dpbusd(t[r], wv, _mm512_set1_epi32(load_i32(xb + r * xrow + kq::kXQs + 4 * g)));
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
          dpwssd(msum[r], ov, _mm512_set1_epi32(load_i32(xb + r * xrow + kq::kXSums + 4 * p)));
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
  // Not a covered type: avx512_vnni.cpp never sends one.
  kq::visit(a.w->ggml, [&]<class T>() { matmul_t<T>(a, o0, o1, scratch); });
}

}  // namespace groak::avx512

#pragma GCC pop_options
#endif
