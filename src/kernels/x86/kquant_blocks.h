// ggml's k-quant super-blocks (Q2_K … Q6_K, 256 weights) unpacked for integer dot products with q8_K
// activations, and the two ways the x86 tables multiply them: rows read in place (decode) and panels of
// P rows repacked per call (prefill). Shared by avx2_kquants.cpp and avx512_kquants.cpp: each includes
// this file after its own `#pragma GCC target`, and everything here has internal linkage, so each table
// gets its own copy compiled for its instruction set (no AVX-512 code can leak into the AVX2 table).
//
// Every type becomes the same form (quant_kquants.cpp has the scalar dequantisers these follow):
//   w_i = d·sc[g]·u_i + m·off[g]/… in integers:  Σ_i w_i·x_i = d_w·d_x·I + m_w·d_x·M  with
//   I = Σ_g sc[g]·Σ_{i in g} u_i·q_i   (g: the 16 groups of 16 weights; u unsigned, ≤ 63 here, ≤ 126
//                                       for the grid i-quants of iquant_blocks.h, which share this form)
//   M = Σ_g off[g]·bsums[g]            (bsums: the q8_K block's sums of 16 activations)
//   Q2_K  u = q (0…3),  sc = 4-bit scale,  off = 4-bit min,   m_w = −dmin
//   Q3_K  u = q + 4 (0…7), sc = 6-bit scale − 32, off = −4·sc, M shares d (added to I)
//   Q4_K  u = q (0…15), sc, off = 6-bit scale, min of the group's 32, m_w = −dmin
//   Q5_K  u = q (0…31), as Q4_K
//   Q6_K  u = q (0…63), sc = int8 scale, off = −32·sc, M shares d
// I and M are exact int32 (|I| < 2^30), so how they are summed is free. The order of arithmetic,
// the same on every path, table (AVX2 or AVX-512) and batch size, is then, per output and row:
//   y = 0; for each super-block b in order:
//     y = fma(d_w·d_x, float(I_b [+ M_b when M shares d]), y); [y = fma(m_w·d_x, float(M_b), y)]
// with d_w·d_x one f32 product. A row's result is therefore bit-identical alone or in a batch, for
// any split of the outputs over threads, and between the AVX2 and AVX-512 tables (tests/simd_test.cpp).
#pragma once
#include <utility>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace groak {
namespace {  // internal linkage on purpose (see the top of the file)
namespace kq {

// A q8_K block (quant.h): f32 d at byte 0, int8 qs[256] at 4, int16 bsums[16] at 260.
constexpr size_t kXQs = 4;
constexpr size_t kXSums = 4 + kQK_K;

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline float load_h(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
inline float load_s(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  return u;
}
inline uint64_t load_u64(const uint8_t* p) {
  uint64_t u;
  std::memcpy(&u, p, 8);
  return u;
}

// Byte lanes: bit `from` of each byte moved to bit `to` (everything else cleared).
inline __m256i move_bit(__m256i v, int from, int to) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << to));
  if (from >= to) return _mm256_and_si256(_mm256_srli_epi16(v, from - to), mask);
  return _mm256_and_si256(_mm256_slli_epi16(v, to - from), mask);
}

// One super-block unpacked: the common form of the header.
struct KBlock {
  __m256i u[8];  // weights 32v … 32v+31 as unsigned codes
  __m256i sc;    // 16 int16: the scale of weights 16g … 16g+15
  __m256i off;   // 16 int16: the multiplier of bsums[g]
  float d, m;    // f32 factors of I and (when not shared) of M
};

// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min of each 16), qs[64], f16 d, f16 dmin.
// Weight 128h + 32s + l is bits 2s, 2s+1 of qs[32h + l].
struct Q2K {
  static constexpr size_t kBytes = 84;
  static constexpr int kSub = 16;                  // weights per scale
  static constexpr bool kOffsetSharesScale = false;
  static constexpr bool kFoldScales = true;        // sc·u ≤ 15·3 fits a byte: panels store the products
  static constexpr bool kWhole = false;
  static inline void scales(const uint8_t* b, KBlock& k) {
    k.d = load_h(b + 80);
    k.m = -load_h(b + 82);
    const __m128i s = load16(b), low4 = _mm_set1_epi8(0x0f);
    k.sc = _mm256_cvtepu8_epi16(_mm_and_si128(s, low4));
    k.off = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), low4));
  }
  static inline void codes(const uint8_t* b, KBlock& k) {
    const __m256i three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load32(b + 16 + 32 * h);
      k.u[4 * h + 0] = _mm256_and_si256(q, three);
      k.u[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 2), three);
      k.u[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(q, 4), three);
      k.u[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(q, 6), three);
    }
  }
};

// Q3_K (110 bytes): hmask[32], qs[64], scales[12] (16 6-bit scales biased by 32), f16 d. Weight
// 128h + 32s + l: low 2 bits as Q2_K, third bit = bit 4h + s of hmask[l] (set: q = low, clear: low − 4),
// so u = low + 4·bit = q + 4 and w = d·sc·(u − 4).
struct Q3K {
  static constexpr size_t kBytes = 110;
  static constexpr int kSub = 16;
  static constexpr bool kOffsetSharesScale = true;
  static constexpr bool kFoldScales = false;
  static constexpr bool kWhole = false;
  static inline void scales(const uint8_t* b, KBlock& k) {
    k.d = k.m = load_h(b + 108);
    // Scale j: low nibble of byte j (j < 8) or high nibble of byte j − 8; top 2 bits at bit 2·(j/4) of
    // byte 8 + j%4.
    const uint64_t a = load_u64(b + 96);
    const uint64_t c = load_u32(b + 104);
    constexpr uint64_t kLow4 = 0x0f0f0f0f0f0f0f0full, kLow2 = 0x03030303u;
    const uint64_t lo = (a & kLow4) | (((c & kLow2) | (((c >> 2) & kLow2) << 32)) << 4);
    const uint64_t hi = ((a >> 4) & kLow4) | ((((c >> 4) & kLow2) | (((c >> 6) & kLow2) << 32)) << 4);
    k.sc = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo))),
                            _mm256_set1_epi16(32));
    k.off = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(k.sc, 2));
  }
  static inline void codes(const uint8_t* b, KBlock& k) {
    const __m256i hmask = load32(b), three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load32(b + 32 + 32 * h);
      for (int s = 0; s < 4; ++s)
        k.u[4 * h + s] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), three), move_bit(hmask, 4 * h + s, 2));
    }
  }
};

// Q4_K/Q5_K scales (12 bytes): 8 6-bit scales and 8 6-bit mins (quant_kquants.cpp's scale_min_k4) as
// int16 per group of 16: sc = scale[g/2], off = min[g/2].
inline void scales_k4(const uint8_t* p, KBlock& k) {
  // Dwords s0, s1, s2 of the 12 bytes -> sm = [scales 0-3, scales 4-7, mins 0-3, mins 4-7], one byte each:
  // j < 4 in the low 6 bits of s0 (scale) and s1 (min); j ≥ 4 in the nibbles of s2 with the top 2 bits
  // in the spare high bits of s0 (scale) and s1 (min). p + 12 … p + 15 are read and unused (the block's
  // codes follow its scales).
  const __m128i v = load16(p);
  const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                    _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  const __m128i sm = _mm_or_si128(low, top);
  k.sc = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
  k.off = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
}

// Q4_K (144 bytes): f16 d, f16 dmin, scales[12], qs[128]. Weights 64c … 64c+31 are the low nibbles of
// qs[32c …], 64c+32 … 64c+63 their high nibbles.
struct Q4K {
  static constexpr size_t kBytes = 144;
  static constexpr int kSub = 32;
  static constexpr bool kOffsetSharesScale = false;
  static constexpr bool kFoldScales = false;
  static constexpr bool kWhole = false;
  static inline void scales(const uint8_t* b, KBlock& k) {
    k.d = load_h(b);
    k.m = -load_h(b + 2);
    scales_k4(b + 4, k);
  }
  static inline void codes(const uint8_t* b, KBlock& k) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(b + 16 + 32 * c);
      k.u[2 * c] = _mm256_and_si256(q, low4);
      k.u[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    }
  }
};

// Q5_K (176 bytes): Q4_K's d, dmin, scales, then qh[32], qs[128]: the fifth bit (+16) of weight 64c + l
// is bit 2c of qh[l], of weight 64c + 32 + l bit 2c + 1.
struct Q5K {
  static constexpr size_t kBytes = 176;
  static constexpr int kSub = 32;
  static constexpr bool kOffsetSharesScale = false;
  static constexpr bool kFoldScales = false;
  static constexpr bool kWhole = false;
  static inline void scales(const uint8_t* b, KBlock& k) {
    k.d = load_h(b);
    k.m = -load_h(b + 2);
    scales_k4(b + 4, k);
  }
  static inline void codes(const uint8_t* b, KBlock& k) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), qh = load32(b + 16);
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(b + 48 + 32 * c);
      k.u[2 * c] = _mm256_or_si256(_mm256_and_si256(q, low4), move_bit(qh, 2 * c, 4));
      k.u[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), move_bit(qh, 2 * c + 1, 4));
    }
  }
};

// Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], f16 d. In half h, weight 128h + 32r + l takes its
// low 4 bits from ql[64h + 32(r&1) + l] (low nibble for r < 2, high for r ≥ 2) and its top 2 bits from
// bits 2r, 2r+1 of qh[32h + l]; w = d·sc·(q − 32).
struct Q6K {
  static constexpr size_t kBytes = 210;
  static constexpr int kSub = 16;
  static constexpr bool kOffsetSharesScale = true;
  static constexpr bool kFoldScales = false;
  static constexpr bool kWhole = false;
  static inline void scales(const uint8_t* b, KBlock& k) {
    k.d = k.m = load_h(b + 208);
    k.sc = _mm256_cvtepi8_epi16(load16(b + 192));
    k.off = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(k.sc, 5));  // |32·sc| ≤ 4096
  }
  static inline void codes(const uint8_t* b, KBlock& k) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(b + 64 * h), ql1 = load32(b + 64 * h + 32), qh = load32(b + 128 + 32 * h);
      // Shifts are per 16-bit lane; the masks keep only bits that came from the same byte.
      const __m256i bits45 = _mm256_set1_epi8(0x30);
      k.u[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
      k.u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
      k.u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
      k.u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
    }
  }
};

// The whole super-block: factors, scales and codes. (kWhole: scales() already decoded the codes, as the
// grid i-quants of iquant_blocks.h do in one pass; the k-quants unpack them in codes().)
template <class T>
inline void unpack(const uint8_t* b, KBlock& k) {
  T::scales(b, k);
  T::codes(b, k);
}

// Scales of maddubs's 16 pair sums for weights 32v … 32v+31: lanes 0-7 take sc[2v], lanes 8-15 sc[2v+1].
// lo/hi: sc[0…7] / sc[8…15] in both 128-bit halves.
inline __m256i pair_scales(__m256i lo, __m256i hi, int v) {
  const char k = static_cast<char>(4 * (v % 4));
  const __m256i pick = _mm256_setr_epi8(k, k + 1, k, k + 1, k, k + 1, k, k + 1, k, k + 1, k, k + 1, k, k + 1, k, k + 1,
                                        k + 2, k + 3, k + 2, k + 3, k + 2, k + 3, k + 2, k + 3, k + 2, k + 3, k + 2, k + 3,
                                        k + 2, k + 3, k + 2, k + 3);
  return _mm256_shuffle_epi8(v < 4 ? lo : hi, pick);
}

// Lane j of the result = the sum of v[j]'s 8 lanes (exact integers).
inline __m256i reduce8(const __m256i* v) {
  const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

// Writes the n ≤ 8 valid lanes of v to y.
inline void store_lanes8(float* y, __m256 v, int64_t n) {
  if (n == 8) return _mm256_storeu_ps(y, v);
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  std::copy(t, t + n, y);
}

// ---------------------------------------------------------------------------------------------------
// Decode: 8 weight rows read in place against NR ≤ 4 activation rows. Each row's super-block is unpacked
// once and multiplied with every activation row by Dot::block<T, NR>(block, x, xrow, isum, msum, d, m),
// which leaves per activation row r the exact integers I (plus M when M shares d) in isum[r] and M in
// msum[r], each as 8 int32 lanes to be summed, and the block's f32 factors in d and m. The 8 rows' lanes
// are then folded into one vector of 8 outputs (reduce8) for the float steps of the header.

// The AVX2 block step: per 32 weights one maddubs, then × the pair scales and added into 8 int32 lanes.
struct DotAvx2 {
  template <class T, int NR>
  static inline void block(const uint8_t* blk, const uint8_t* x, size_t xrow, __m256i* isum, __m256i* msum, float& d,
                           float& m) {
    KBlock k;
    unpack<T>(blk, k);
    d = k.d;
    m = k.m;
    const __m256i lo = _mm256_permute4x64_epi64(k.sc, 0x44), hi = _mm256_permute4x64_epi64(k.sc, 0xee);
    __m256i s[NR], s2[NR];  // two chains: the multiply-adds have a latency of several cycles
    for (int r = 0; r < NR; ++r) s[r] = s2[r] = _mm256_setzero_si256();
    for (int v = 0; v < 8; v += 2) {
      const __m256i mul = pair_scales(lo, hi, v), mul2 = pair_scales(lo, hi, v + 1);
      for (int r = 0; r < NR; ++r) {
        const uint8_t* xv = x + r * xrow + kXQs + 32 * v;
        s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(_mm256_maddubs_epi16(k.u[v], load32(xv)), mul));
        s2[r] = _mm256_add_epi32(s2[r], _mm256_madd_epi16(_mm256_maddubs_epi16(k.u[v + 1], load32(xv + 32)), mul2));
      }
    }
    for (int r = 0; r < NR; ++r) {
      const __m256i mr = _mm256_madd_epi16(k.off, load32(x + r * xrow + kXSums));
      const __m256i ir = _mm256_add_epi32(s[r], s2[r]);
      if constexpr (T::kOffsetSharesScale) {
        isum[r] = _mm256_add_epi32(ir, mr);
      } else {
        isum[r] = ir;
        msum[r] = mr;
      }
    }
  }
};

// Decode's software prefetch: whole super-blocks, at least 1 KiB ahead of the one being read (256 bytes
// left Q6_K waiting: decode/q6_k/1 on 2 threads 4.2 → 3.3 ms at 1 KiB, Q2_K/Q4_K 0-10 % less; 2 KiB no better).
template <class T>
inline constexpr int64_t kPrefetchBlocks = (1024 + T::kBytes - 1) / T::kBytes;
template <class T>
inline void prefetch_block(const uint8_t* p) {
  for (size_t l = 0; l < T::kBytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + l, _MM_HINT_T0);
}

template <class T, class Dot, int NR>
void rows8(const MatmulArgs& a, int64_t o, int64_t n_valid) {
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / kQK_K;
  const size_t xrow = static_cast<size_t>(nb) * kQ8_KBlockBytes;
  const size_t stride = w.stride();
  const uint8_t* row[8];
  for (int j = 0; j < 8; ++j) row[j] = w.data + static_cast<size_t>(o + std::min<int64_t>(j, n_valid - 1)) * stride;
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* xb = a.xq + static_cast<size_t>(b) * kQ8_KBlockBytes;
    // 8 rows are 8 streams a few KB apart: the hardware prefetchers alone left a core waiting on memory
    // (2–2.5x the CPU time per super-block, build/groak_kernel_bench decode/q*_k), so ask for each row's
    // block ~1 KiB ahead; near a row's end, the start of the row 8 further (the next call's; a
    // prefetch never faults, so past the matrix's end it is only wasted).
    const int64_t ahead = b + kPrefetchBlocks<T>;
    const size_t pf = ahead < nb ? static_cast<size_t>(ahead) * T::kBytes : 8 * stride + static_cast<size_t>(ahead - nb) * T::kBytes;
    for (int j = 0; j < 8; ++j) prefetch_block<T>(row[j] + pf);
    __m256i isum[NR][8], msum[NR][8];  // [activation row][weight row]: 8 int32 lanes
    alignas(32) float dw[8], mw[8];
    for (int j = 0; j < 8; ++j) {
      __m256i is[NR], ms[NR];
      Dot::template block<T, NR>(row[j] + static_cast<size_t>(b) * T::kBytes, xb, xrow, is, ms, dw[j], mw[j]);
      for (int r = 0; r < NR; ++r) {
        isum[r][j] = is[r];
        if constexpr (!T::kOffsetSharesScale) msum[r][j] = ms[r];
      }
    }
    const __m256 d = _mm256_load_ps(dw), m = _mm256_load_ps(mw);
    for (int r = 0; r < NR; ++r) {
      const __m256 dx = _mm256_set1_ps(load_s(xb + r * xrow));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(reduce8(isum[r])), acc[r]);
      if constexpr (!T::kOffsetSharesScale)
        acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(m, dx), _mm256_cvtepi32_ps(reduce8(msum[r])), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) store_lanes8(a.y + r * a.y_stride + o, acc[r], n_valid);
}

// Rows [0, a.n_rows) in passes of at most 4, outputs 8 at a time.
template <class T, class Dot>
void rows_in_place(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const size_t xrow = static_cast<size_t>(a.w->n_in / kQK_K) * kQ8_KBlockBytes;
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += 4) {
    MatmulArgs p = a;
    p.xq = a.xq + static_cast<size_t>(r0) * xrow;
    p.y = a.y + r0 * a.y_stride;
    p.n_rows = std::min<int64_t>(4, a.n_rows - r0);
    for (int64_t o = o0; o < o1; o += 8) {
      const int64_t n = std::min<int64_t>(8, o1 - o);
      switch (p.n_rows) {
        case 1: rows8<T, Dot, 1>(p, o, n); break;
        case 2: rows8<T, Dot, 2>(p, o, n); break;
        case 3: rows8<T, Dot, 3>(p, o, n); break;
        default: rows8<T, Dot, 4>(p, o, n); break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Prefill: panels of P weight rows (P = 8: ymm, 16: zmm), unpacked once per call and used by every
// activation row. Per super-block (PanelLayout gives the offsets):
//   q    [64 groups of 4 weights][P rows][4 bytes]: one vpdpbusd / maddubs advances P outputs by 4 inputs
//   sc   [256 / kSub][P] int32: the rows' scale of each kSub weights (none when kFoldScales: q holds sc·u);
//        PairScales: as two equal int16 (a madd multiplier), else an int32 (a vpmulld multiplier)
//   off  [8 pairs of groups][P] × 2 int16: the bsums multipliers, one madd / vpdpwssd per pair
//   d, m [P] f32

template <class T, int P>
struct PanelLayout {
  static constexpr int kScales = T::kFoldScales ? 0 : kQK_K / T::kSub;
  static constexpr size_t kQ = 64 * P * 4;
  static constexpr size_t kSc = kQ;
  static constexpr size_t kOff = kSc + static_cast<size_t>(kScales) * P * 4;
  static constexpr size_t kD = kOff + 8 * P * 4;
  static constexpr size_t kM = kD + P * 4;
  static constexpr size_t kBlock = kM + P * 4;  // bytes per super-block (a multiple of 32)
};

// 8 rows' vectors r[0…7] (8 dwords each) -> g[i] = dword i of every row, in row order.
inline void transpose8(const __m256i* r, __m256i* g) {
  const __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
  const __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
  const __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
  const __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
  const __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
  const __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
  const __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
  const __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
  g[0] = _mm256_permute2x128_si256(b0, b4, 0x20);
  g[1] = _mm256_permute2x128_si256(b1, b5, 0x20);
  g[2] = _mm256_permute2x128_si256(b2, b6, 0x20);
  g[3] = _mm256_permute2x128_si256(b3, b7, 0x20);
  g[4] = _mm256_permute2x128_si256(b0, b4, 0x31);
  g[5] = _mm256_permute2x128_si256(b1, b5, 0x31);
  g[6] = _mm256_permute2x128_si256(b2, b6, 0x31);
  g[7] = _mm256_permute2x128_si256(b3, b7, 0x31);
}

// Byte-wise u·s for small products (≤ 255): two 16-bit multiplies, even and odd bytes.
inline __m256i mul_u8(__m256i u, __m256i s) {
  const __m256i even = _mm256_set1_epi16(0x00ff);
  const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(u, s), even);
  const __m256i hi = _mm256_slli_epi16(_mm256_mullo_epi16(_mm256_srli_epi16(u, 8), _mm256_srli_epi16(s, 8)), 8);
  return _mm256_or_si256(lo, hi);
}

// The panel of rows o … o+P−1 (rows past n_valid repeat the last one) for super-blocks [0, nb).
template <class T, int P, bool PairScales>
void pack_panel(const Matrix& w, int64_t o, int64_t n_valid, uint8_t* panel) {
  using L = PanelLayout<T, P>;
  const int64_t nb = w.n_in / kQK_K;
  const uint8_t* row[P];
  for (int j = 0; j < P; ++j) row[j] = w.data + static_cast<size_t>(o + std::min<int64_t>(j, n_valid - 1)) * w.stride();
  alignas(32) __m256i u[P][8];
  alignas(32) int16_t sc[P][16], off[P][16];
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* pb = panel + static_cast<size_t>(b) * L::kBlock;
    float* d = reinterpret_cast<float*>(pb + L::kD);
    float* m = reinterpret_cast<float*>(pb + L::kM);
    for (int j = 0; j < P; ++j) {
      KBlock k;
      unpack<T>(row[j] + static_cast<size_t>(b) * T::kBytes, k);
      if constexpr (T::kFoldScales) {
        // Scale bytes of weights 32v …: sc[2v] for the first 16, sc[2v+1] for the next.
        const __m256i s8 = _mm256_packus_epi16(k.sc, k.sc);  // bytes sc0-7 sc0-7 | sc8-15 sc8-15
        const __m256i lo = _mm256_permute4x64_epi64(s8, 0x00), hi = _mm256_permute4x64_epi64(s8, 0xaa);
        for (int v = 0; v < 8; ++v) {
          const char i0 = static_cast<char>(2 * (v % 4)), i1 = static_cast<char>(2 * (v % 4) + 1);
          const __m256i pick = _mm256_setr_epi8(i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i0, i1, i1, i1, i1,
                                                i1, i1, i1, i1, i1, i1, i1, i1, i1, i1, i1, i1);
          u[j][v] = mul_u8(k.u[v], _mm256_shuffle_epi8(v < 4 ? lo : hi, pick));
        }
      } else {
        for (int v = 0; v < 8; ++v) u[j][v] = k.u[v];
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(sc[j]), k.sc);
      _mm256_store_si256(reinterpret_cast<__m256i*>(off[j]), k.off);
      d[j] = k.d;
      m[j] = k.m;
    }
    for (int h = 0; h < P / 8; ++h)
      for (int v = 0; v < 8; ++v) {
        __m256i r[8], g[8];
        for (int j = 0; j < 8; ++j) r[j] = u[8 * h + j][v];
        transpose8(r, g);
        for (int i = 0; i < 8; ++i)
          _mm256_store_si256(reinterpret_cast<__m256i*>(pb + static_cast<size_t>((8 * v + i) * P + 8 * h) * 4), g[i]);
      }
    int32_t* s32 = reinterpret_cast<int32_t*>(pb + L::kSc);
    for (int s = 0; s < L::kScales; ++s)
      for (int j = 0; j < P; ++j) {
        const int32_t v = sc[j][s * T::kSub / 16];
        s32[s * P + j] = PairScales ? static_cast<int32_t>((static_cast<uint32_t>(v) << 16) | (static_cast<uint32_t>(v) & 0xffff)) : v;
      }
    int16_t* o16 = reinterpret_cast<int16_t*>(pb + L::kOff);
    for (int p = 0; p < 8; ++p)
      for (int j = 0; j < P; ++j) {
        o16[2 * (p * P + j)] = off[j][2 * p];
        o16[2 * (p * P + j) + 1] = off[j][2 * p + 1];
      }
  }
}


// y[:, o0:o1) through panels: groups of panels (as many as fit the scratch, up to 4) are packed, then
// every tile of activation rows runs over each panel of the group, so a tile's activations stay in L2
// while the group's outputs are computed. Tile::run<NR>(panel, nb, xq, xrow, y, y_stride, n_valid)
// computes NR ≤ Tile::kRows rows against one panel. False when one panel does not fit the scratch.
template <class T, int P, bool PairScales, class Tile>
bool panel_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  using L = PanelLayout<T, P>;
  const int64_t nb = a.w->n_in / kQK_K;
  const size_t panel_bytes = static_cast<size_t>(nb) * L::kBlock;
  const size_t budget = kKernelScratchFloats * sizeof(float);
  if (panel_bytes > budget) return false;
  const int64_t group = std::min<int64_t>(4, static_cast<int64_t>(budget / panel_bytes));
  uint8_t* panels = reinterpret_cast<uint8_t*>(scratch);
  const size_t xrow = static_cast<size_t>(nb) * kQ8_KBlockBytes;
  for (int64_t og = o0; og < o1; og += group * P) {
    const int64_t n_panels = std::min<int64_t>(group, (o1 - og + P - 1) / P);
    for (int64_t p = 0; p < n_panels; ++p)
      pack_panel<T, P, PairScales>(*a.w, og + p * P, std::min<int64_t>(P, o1 - og - p * P), panels + p * panel_bytes);
    int64_t r = 0;
    const auto tiles = [&]<int NR>() {
      for (; r + NR <= a.n_rows; r += NR)
        for (int64_t p = 0; p < n_panels; ++p)
          Tile::template run<T, NR>(panels + p * panel_bytes, nb, a.xq + static_cast<size_t>(r) * xrow, xrow,
                                    a.y + r * a.y_stride + og + p * P, a.y_stride, std::min<int64_t>(P, o1 - og - p * P));
    };
    tiles.template operator()<Tile::kRows>();
    // The rows left (fewer than a tile): one pass of a tile that size over each panel.
    [&]<int... NR>(std::integer_sequence<int, NR...>) {
      ((a.n_rows - r == NR + 1 ? (tiles.template operator()<NR + 1>(), 0) : 0), ...);
    }(std::make_integer_sequence<int, Tile::kRows - 1>{});
  }
  return true;
}

}  // namespace kq
}  // namespace
}  // namespace groak

#endif
