// AVX2 + FMA + F16C kernels for ggml's k-quant weights ([out, in] rows of Q4_K / Q6_K super-blocks of
// 256) against activations quantised once per product to q8_K (256 int8, an f32 scale, sums of 16), as
// llama.cpp's ggml_vec_dot_q4_K_q8_K / ggml_vec_dot_q6_K_q8_K do. avx2.cpp's table calls these
// (avx2_kquants.h); quant.cpp holds the scalar oracles (dequantize_row, quantize_row_q8_K).
//
// One super-block b of weights and the matching q8_K block of a row x (scale d_x, int8 q_x, bsums):
//   Q4_K  w = d·sc[s]·q − dmin·m[s]  (q in 0…15, sub-block s of 32)   Q6_K  w = d·sc[s]·(q − 32)  (q in 0…63, s of 16)
//   Σ w·x = d_w·d_x·I + m_w·d_x·M,  I = Σ_s sc[s]·Σ_{i in s} q_i·q_x,i  (exact int32),
//   M = Σ_{16-groups g} off[g]·bsums[g] (exact int32): Q4_K off = m[g/2], m_w = −dmin; Q6_K off = −32·sc[g],
//   and M shares d_w (m_w = d_w), so it is added to I as an integer.
// The integer parts are computed in 8 int32 lanes with maddubs (unsigned weight byte × signed activation
// byte, pairs summed in int16: |q·q_x| ≤ 63·128, no saturation) and madd (× the int16 scale, pairs
// summed in int32; every lane stays below 2^26).
//
// Order of arithmetic (what makes results independent of threads and of batch size): every output
// element (o, r) is computed by exactly one sequence, whatever tile it falls in:
//   acc8 = 0; for each super-block b in increasing order:
//     Q4_K: acc8 = fma(d_w·d_x, float(I_b), acc8); acc8 = fma((−dmin_w)·d_x, float(M_b), acc8)
//     Q6_K: acc8 = fma(d_w·d_x, float(I_b + M_b), acc8)
//   y = hsum8(acc8)  (the fixed tree of avx2.cpp)
// where I_b, M_b are the 8-lane int32 vectors above (integers: exact, so their internal order is free)
// and d_w·d_x is one f32 product. The decode path (one activation row: one output at a time, weights
// streamed once) and the tiled path (several rows: each weight super-block unpacked once per tile of
// kTileRows rows and multiplied with each of them) both call the same block_dot, so a row's result is
// bit-identical alone or in a batch, and for any split of the outputs (tests/simd_test.cpp).
#include "kernels/x86/avx2_kquants.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace groak::avx2 {
namespace {

// A q8_K block (quant.h): f32 d at byte 0, int8 qs[256] at 4, int16 bsums[16] at 260.
constexpr size_t kQ8KQs = 4;
constexpr size_t kQ8KSums = 4 + kQK_K;

// Loads: weights and activations may sit at any address.
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
inline float load_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  return u;
}

// Fixed reduction tree (as avx2.cpp): (l0+l4, l1+l5, l2+l6, l3+l7) -> pairs -> one.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------------------------------------------
// A weight super-block unpacked for integer dot products with q8_K blocks.

struct Unpacked {
  __m256i q[8];    // weights 32v … 32v+31 as unsigned bytes (their ggml codes: 0…15 or 0…63)
  __m256i mul[8];  // int16 multipliers of maddubs(q[v], x[v])'s 16 pair sums: the sub-block scales
  __m256i off;     // int16 multipliers of the 16 bsums (the offset term M)
  float d;         // f32 factor of I (and of M when the type folds M into I)
  float m;         // f32 factor of M otherwise
};

// Q4_K (ggml block_q4_K, 144 bytes): f16 d, f16 dmin, scales[12] (6-bit scales and mins of 8 sub-blocks
// of 32), qs[128]. Sub-block 2c is the low nibbles of qs[32c … 32c+31], sub-block 2c+1 their high nibbles.
struct Q4K {
  static constexpr size_t kBytes = 144;
  static constexpr bool kOffsetSharesScale = false;

  static inline void unpack(const uint8_t* b, Unpacked& u) {
    u.d = load_f16(b);
    u.m = -load_f16(b + 2);
    // The 12 scale bytes as 8 scales then 8 mins, one byte each (quant.cpp's scale_min_k4 for all j):
    // j < 4 in the low 6 bits of bytes j (scale) and j+4 (min); j ≥ 4 in the nibbles of byte j+4 with
    // the top 2 bits in the spare high bits of bytes j−4 (scale) and j (min).
    constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
    const uint32_t s0 = load_u32(b + 4), s1 = load_u32(b + 8), s2 = load_u32(b + 12);
    const uint32_t scales_lo = s0 & kLow6;
    const uint32_t scales_hi = (s2 & kLow4) | (((s0 >> 6) & kLow2) << 4);
    const uint32_t mins_lo = s1 & kLow6;
    const uint32_t mins_hi = ((s2 >> 4) & kLow4) | (((s1 >> 6) & kLow2) << 4);
    const __m128i sm = _mm_set_epi32(static_cast<int>(mins_hi), static_cast<int>(mins_lo),
                                     static_cast<int>(scales_hi), static_cast<int>(scales_lo));
    // 8 scales as int16 in both 128-bit halves; mul[v] = scale v in all 16 lanes.
    const __m256i scales = _mm256_permute4x64_epi64(_mm256_cvtepu8_epi16(sm), 0x44);
    for (int v = 0; v < 8; ++v) u.mul[v] = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(static_cast<short>(0x0100 + 0x0202 * v)));
    // bsums group g (elements 16g … 16g+15) lies in sub-block g/2: off = m[0], m[0], m[1], m[1], …
    const __m128i dup_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    u.off = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup_mins));
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m256i bits = load32(b + 16 + 32 * c);
      u.q[2 * c] = _mm256_and_si256(bits, low4);
      u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
    }
  }
};

// Q6_K (ggml block_q6_K, 210 bytes): ql[128], qh[64], int8 scales[16] (one per 16 weights), f16 d. In half
// h, weights 128h + 32r + l (r < 4, l < 32) take their low 4 bits from ql[64h + 32(r&1) + l] (low nibble
// for r < 2, high for r ≥ 2) and their top 2 bits from bits 2r, 2r+1 of qh[32h + l].
struct Q6K {
  static constexpr size_t kBytes = 210;
  static constexpr bool kOffsetSharesScale = true;

  static inline void unpack(const uint8_t* b, Unpacked& u) {
    u.d = load_f16(b + 208);
    u.m = u.d;
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(b + 64 * h), ql1 = load32(b + 64 * h + 32), qh = load32(b + 128 + 32 * h);
      // Shifts are per 16-bit lane; the masks keep only bits that came from the same byte.
      u.q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
      u.q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
      u.q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
      u.q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
    }
    // Weights 32v … 32v+15 use scale 2v, 32v+16 … 32v+31 scale 2v+1: the low 8 int16 lanes of maddubs's
    // result take scale 2v, the high 8 scale 2v+1.
    const __m256i sc16 = _mm256_cvtepi8_epi16(load16(b + 192));  // int16 scales 0 … 15
    const __m256i lo = _mm256_permute4x64_epi64(sc16, 0x44), hi = _mm256_permute4x64_epi64(sc16, 0xee);
    for (int v = 0; v < 8; ++v) {
      const int k = v % 4;  // scales 2k, 2k+1 of the half (lo: 0…7, hi: 8…15)
      const __m256i pick = _mm256_setr_epi8(
          static_cast<char>(4 * k), static_cast<char>(4 * k + 1), static_cast<char>(4 * k), static_cast<char>(4 * k + 1),
          static_cast<char>(4 * k), static_cast<char>(4 * k + 1), static_cast<char>(4 * k), static_cast<char>(4 * k + 1),
          static_cast<char>(4 * k), static_cast<char>(4 * k + 1), static_cast<char>(4 * k), static_cast<char>(4 * k + 1),
          static_cast<char>(4 * k), static_cast<char>(4 * k + 1), static_cast<char>(4 * k), static_cast<char>(4 * k + 1),
          static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3), static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3),
          static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3), static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3),
          static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3), static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3),
          static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3), static_cast<char>(4 * k + 2), static_cast<char>(4 * k + 3));
      u.mul[v] = _mm256_shuffle_epi8(v < 4 ? lo : hi, pick);
    }
    // q − 32: the −32·sc[g]·bsums[g] of each group of 16 (|32·sc| ≤ 4096 fits int16).
    u.off = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));
  }
};

// acc8 += this super-block's share of Σ w·x for one q8_K block xb (the sequence in the header).
template <class T>
inline __m256 block_dot(const Unpacked& u, const uint8_t* xb, __m256 acc) {
  const float dx = load_f32(xb);
  __m256i isum = _mm256_madd_epi16(u.mul[0], _mm256_maddubs_epi16(u.q[0], load32(xb + kQ8KQs)));
  for (int v = 1; v < 8; ++v)
    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(u.mul[v], _mm256_maddubs_epi16(u.q[v], load32(xb + kQ8KQs + 32 * v))));
  const __m256i msum = _mm256_madd_epi16(u.off, load32(xb + kQ8KSums));
  if constexpr (T::kOffsetSharesScale)
    return _mm256_fmadd_ps(_mm256_set1_ps(u.d * dx), _mm256_cvtepi32_ps(_mm256_add_epi32(isum, msum)), acc);
  acc = _mm256_fmadd_ps(_mm256_set1_ps(u.d * dx), _mm256_cvtepi32_ps(isum), acc);
  return _mm256_fmadd_ps(_mm256_set1_ps(u.m * dx), _mm256_cvtepi32_ps(msum), acc);
}

constexpr int64_t kTileRows = 4;      // tiled path: activation rows per unpacked super-block
constexpr int64_t kTileOutputs = 16;  // tiled path: weight rows kept in L2 while the row tiles pass

// y[r0 … r0+NR)[o] for one output o: the weight row streamed once, each super-block unpacked once.
template <class T, int NR>
void rows_dot(const MatmulArgs& a, int64_t o, int64_t r0) {
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / kQK_K;
  const size_t xrow = static_cast<size_t>(nb) * kQ8_KBlockBytes;
  const uint8_t* wrow = w.data + static_cast<size_t>(o) * w.stride();
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>(r0 + r) * xrow;
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < nb; ++k) {
    Unpacked u;
    T::unpack(wrow + static_cast<size_t>(k) * T::kBytes, u);
    for (int r = 0; r < NR; ++r) acc[r] = block_dot<T>(u, x[r] + static_cast<size_t>(k) * kQ8_KBlockBytes, acc[r]);
  }
  for (int r = 0; r < NR; ++r) a.y[(r0 + r) * a.y_stride + o] = hsum8(acc[r]);
}

template <class T>
void rows_dot_n(const MatmulArgs& a, int64_t o, int64_t r0, int64_t n) {
  switch (n) {
    case 1: return rows_dot<T, 1>(a, o, r0);
    case 2: return rows_dot<T, 2>(a, o, r0);
    case 3: return rows_dot<T, 3>(a, o, r0);
    default: return rows_dot<T, 4>(a, o, r0);
  }
}

template <class T>
void matmul_t(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t R = a.n_rows;
  if (R == 1) {  // decode: stream the weight rows in order
    for (int64_t o = o0; o < o1; ++o) rows_dot<T, 1>(a, o, 0);
    return;
  }
  // Many rows: a band of kTileOutputs weight rows stays in L2 while every tile of rows passes over it.
  for (int64_t ob = o0; ob < o1; ob += kTileOutputs) {
    const int64_t oe = std::min(o1, ob + kTileOutputs);
    for (int64_t r = 0; r < R; r += kTileRows)
      for (int64_t o = ob; o < oe; ++o) rows_dot_n<T>(a, o, r, std::min(kTileRows, R - r));
  }
}

}  // namespace

bool kquant_covers(const Matrix& w) {
  return w.format == WeightFormat::Ggml && w.layout == Layout::OutIn &&
         (w.ggml == GgmlType::Q4_K || w.ggml == GgmlType::Q6_K);
}

void kquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1) {
  switch (a.w->ggml) {
    case GgmlType::Q4_K: return matmul_t<Q4K>(a, o0, o1);
    case GgmlType::Q6_K: return matmul_t<Q6K>(a, o0, o1);
    default: return;  // not covered (kquant_covers is false): the caller never gets here
  }
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
      std::memset(out + kQ8KQs, 0, kQK_K);
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
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + kQ8KQs + j), b);
      }
      const int8_t* qs = reinterpret_cast<const int8_t*>(out + kQ8KQs);
      for (int g = 0; g < kQK_K / 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += qs[16 * g + l];
        bsums[g] = static_cast<int16_t>(sum);
      }
      d = 1 / iscale;
    }
    std::memcpy(out, &d, 4);
    std::memcpy(out + kQ8KSums, bsums, sizeof bsums);
  }
}

}  // namespace groak::avx2

#pragma GCC pop_options
#endif
