// ggml's grid i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S) in kquant_blocks.h's common
// form, so that they run through the same decode rows and prefill panels as the k-quants (both x86
// tables). Included by kquant_blocks.h; internal linkage like it.
//
// Every weight of a super-block is D · sc[g] · w with an integer w and an integer scale sc[g] per group g
// of 16 weights; this is exactly the dequantised value (the f32 expressions of quant_iquants.cpp's
// dequantize_row_* are exact products of these small integers and the f16 d):
//   IQ2_XXS/XS/S  w = ±grid ∈ ±{8, 25, 43}       sc = 2s + 1 (s: 4 bits)       D = d/8
//   IQ3_XXS       w = ±grid ∈ ±{4, 12, …, 62}    sc = 2s + 1                    D = d/4
//   IQ3_S         w = ±grid ∈ ±{1, 3, …, 15}     sc = 2s + 1                    D = d
//   IQ1_S/IQ1_M   w = 8·grid + δ, grid ∈ {−1, 0, 1}, δ = ±1 (IQ1_S per 32, IQ1_M per 8)   sc = 2s + 1 (3 bits)   D = d/8
// The unsigned codes are u = w + c (c = 64 for the grid types, 9 for IQ1; every u ≤ 126, so maddubs's pair
// sums stay below 2^15), and the bias goes to M through the bsums: off[g] = −c·sc[g], M shares D
// (kOffsetSharesScale), as for Q3_K and Q6_K. |I| ≤ 31·126·128·256 < 2^30.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <array>

#include "kernels/quant_iquants_grids.h"
#include "kernels/x86/kquant_blocks.h"

namespace groak {
namespace {  // internal linkage on purpose (kquant_blocks.h)
namespace kq {

using quant::iq1s_grid;
using quant::iq2s_grid;
using quant::iq2xs_grid;
using quant::iq2xxs_grid;
using quant::iq3s_grid;
using quant::iq3xxs_grid;

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t u;
  std::memcpy(&u, p, 2);
  return u;
}
inline __m256i set64(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3) {  // a0 in the lowest 8 bytes
  return _mm256_set_epi64x(static_cast<long long>(a3), static_cast<long long>(a2), static_cast<long long>(a1),
                           static_cast<long long>(a0));
}

// ksigns_iq2xs expanded to byte masks: byte j of entry i is 0xff when weight j of the group is negative.
constexpr std::array<uint64_t, 128> make_sign_masks() {
  std::array<uint64_t, 128> t{};
  for (uint32_t i = 0; i < 128; ++i)
    for (int j = 0; j < 8; ++j)
      if ((quant::ksigns_iq2xs(i) >> j) & 1u) t[i] |= uint64_t{0xff} << (8 * j);
  return t;
}
constexpr std::array<uint64_t, 128> kSignMasks = make_sign_masks();

// Four explicit sign bytes (one per 8 weights, bit j = weight j negative) -> 32 byte masks.
inline __m256i expand_signs(uint32_t four) {
  const __m256i rep = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                       2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(four)), rep);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// c + (neg ? −g : g) per byte: the biased weight u = w + c from magnitudes g and sign masks.
inline __m256i biased(__m256i g, __m256i neg, __m256i c) {
  return _mm256_add_epi8(_mm256_sub_epi8(_mm256_xor_si256(g, neg), neg), c);
}



// ---------------------------------------------------------------------------------------------------

// 2s + 1 for 8 int32 lanes s (one scale per 32 weights) as the 16 int16 group scales (each twice): built
// in registers, since 16 narrow stores read back as one vector stall the store forwarding.
inline __m256i pair_scales32(__m256i s) {
  const __m256i v = _mm256_add_epi32(_mm256_add_epi32(s, s), _mm256_set1_epi32(1));
  return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}
// 2n + 1 for the 16 nibbles of 8 bytes (low nibble first): one scale per 16 weights.
inline __m256i nibble_scales(const uint8_t* p) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), m = _mm_set1_epi8(0x0f);
  const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(bytes, m), _mm_and_si128(_mm_srli_epi16(bytes, 4), m));
  const __m256i v = _mm256_cvtepu8_epi16(n);
  return _mm256_add_epi16(_mm256_add_epi16(v, v), _mm256_set1_epi16(1));
}


// What every grid type shares: the bias shares D with I, no folded scales, and scales() decodes the whole
// super-block (codes included: one pass over the grid indices), so codes() has nothing left to do. Each
// type adds kBytes, kSub (32 where both groups of 16 in a 32 share their scale) and scales().
struct GridForm {
  static constexpr bool kOffsetSharesScale = true;
  static constexpr bool kFoldScales = false;
  static constexpr bool kWhole = true;
  static inline void codes(const uint8_t*, KBlock&) {}
};

// IQ2_XXS (66 bytes: f16 d, then per sub-block s two uint32: 4 grid index bytes; 4 × 7 sign bits + scale).
struct IQ2XXS : GridForm {
  static constexpr size_t kBytes = 66;
  static constexpr int kSub = 32;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b) * 0.125f;
    const __m256i c = _mm256_set1_epi8(64);
    for (int s = 0; s < 8; ++s) {
      const uint32_t idx = load_u32(b + 2 + 8 * s), aux = load_u32(b + 6 + 8 * s);
      const __m256i g = set64(iq2xxs_grid[idx & 0xff], iq2xxs_grid[(idx >> 8) & 0xff], iq2xxs_grid[(idx >> 16) & 0xff],
                              iq2xxs_grid[idx >> 24]);
      const __m256i neg = set64(kSignMasks[aux & 127], kSignMasks[(aux >> 7) & 127], kSignMasks[(aux >> 14) & 127],
                                kSignMasks[(aux >> 21) & 127]);
      u.u[s] = biased(g, neg, c);
    }
    // The aux words are the odd dwords of the 64 bytes at 2; the scale is each one's top nibble.
    const __m256i lo = _mm256_permutevar8x32_epi32(load32(b + 2), _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
    const __m256i hi = _mm256_permutevar8x32_epi32(load32(b + 34), _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
    u.sc = pair_scales32(_mm256_srli_epi32(_mm256_blend_epi32(lo, hi, 0xf0), 28));
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-64));
  }
};

// IQ2_XS (74 bytes: f16 d, uint16 qs[32] = 9-bit index | 7 sign bits << 9, scales[8] two nibbles per 32).
struct IQ2XS : GridForm {
  static constexpr size_t kBytes = 74;
  static constexpr int kSub = 16;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b) * 0.125f;
    const __m256i c = _mm256_set1_epi8(64);
    for (int s = 0; s < 8; ++s) {
      const uint64_t q = load_u64(b + 2 + 8 * s);
      const auto idx = [&](int l) { return static_cast<uint32_t>(q >> (16 * l)) & 511u; };
      const auto sgn = [&](int l) { return static_cast<uint32_t>(q >> (16 * l + 9)) & 127u; };
      const __m256i g = set64(iq2xs_grid[idx(0)], iq2xs_grid[idx(1)], iq2xs_grid[idx(2)], iq2xs_grid[idx(3)]);
      const __m256i neg = set64(kSignMasks[sgn(0)], kSignMasks[sgn(1)], kSignMasks[sgn(2)], kSignMasks[sgn(3)]);
      u.u[s] = biased(g, neg, c);
    }
    u.sc = nibble_scales(b + 66);
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-64));
  }
};

// IQ2_S (82 bytes: f16 d, qs[32] index low bytes, signs[32], qh[8] index bits 8–9, scales[8]).
struct IQ2S : GridForm {
  static constexpr size_t kBytes = 82;
  static constexpr int kSub = 16;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b) * 0.125f;
    const __m256i c = _mm256_set1_epi8(64);
    const uint8_t* qs = b + 2;
    for (int s = 0; s < 8; ++s) {
      const uint32_t h = b[66 + s];
      const __m256i g = set64(iq2s_grid[qs[4 * s] | ((h << 8) & 0x300)], iq2s_grid[qs[4 * s + 1] | ((h << 6) & 0x300)],
                              iq2s_grid[qs[4 * s + 2] | ((h << 4) & 0x300)], iq2s_grid[qs[4 * s + 3] | ((h << 2) & 0x300)]);
      u.u[s] = biased(g, expand_signs(load_u32(b + 34 + 4 * s)), c);
    }
    u.sc = nibble_scales(b + 74);
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-64));
  }
};

// IQ3_XXS (98 bytes: f16 d, qs[64] grid indices of 4 weights, 8 uint32 of 4 × 7 sign bits + scale).
struct IQ3XXS : GridForm {
  static constexpr size_t kBytes = 98;
  static constexpr int kSub = 32;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b) * 0.25f;
    const __m256i c = _mm256_set1_epi8(64);
    const uint8_t* qs = b + 2;
    for (int s = 0; s < 8; ++s) {
      const uint8_t* i8 = qs + 8 * s;
      const __m256i g = _mm256_setr_epi32(
          static_cast<int>(iq3xxs_grid[i8[0]]), static_cast<int>(iq3xxs_grid[i8[1]]), static_cast<int>(iq3xxs_grid[i8[2]]),
          static_cast<int>(iq3xxs_grid[i8[3]]), static_cast<int>(iq3xxs_grid[i8[4]]), static_cast<int>(iq3xxs_grid[i8[5]]),
          static_cast<int>(iq3xxs_grid[i8[6]]), static_cast<int>(iq3xxs_grid[i8[7]]));
      const uint32_t aux = load_u32(b + 66 + 4 * s);
      const __m256i neg = set64(kSignMasks[aux & 127], kSignMasks[(aux >> 7) & 127], kSignMasks[(aux >> 14) & 127],
                                kSignMasks[(aux >> 21) & 127]);
      u.u[s] = biased(g, neg, c);
    }
    u.sc = pair_scales32(_mm256_srli_epi32(load32(b + 66), 28));  // the top nibble of each aux word
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-64));
  }
};

// IQ3_S (110 bytes: f16 d, qs[64] index low bytes, qh[8] index bit 8, signs[32], scales[4] two nibbles).
struct IQ3S : GridForm {
  static constexpr size_t kBytes = 110;
  static constexpr int kSub = 32;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b);
    const __m256i c = _mm256_set1_epi8(64);
    const uint8_t* qs = b + 2;
    for (int s = 0; s < 8; ++s) {
      const uint8_t* i8 = qs + 8 * s;
      const uint32_t h = b[66 + s];
      const auto idx = [&](int k) { return i8[k] | (((h >> k) & 1u) << 8); };
      const __m256i g = _mm256_setr_epi32(
          static_cast<int>(iq3s_grid[idx(0)]), static_cast<int>(iq3s_grid[idx(1)]), static_cast<int>(iq3s_grid[idx(2)]),
          static_cast<int>(iq3s_grid[idx(3)]), static_cast<int>(iq3s_grid[idx(4)]), static_cast<int>(iq3s_grid[idx(5)]),
          static_cast<int>(iq3s_grid[idx(6)]), static_cast<int>(iq3s_grid[idx(7)]));
      u.u[s] = biased(g, expand_signs(load_u32(b + 74 + 4 * s)), c);
    }
    // Scale s: nibble s of the 4 bytes at 106 (low nibble first).
    u.sc = pair_scales32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(load_u32(b + 106))),
                                                            _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                          _mm256_set1_epi32(0xf)));
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-64));
  }
};

// u = 8·(grid + 1) + (δ + 1) = w + 9 for ternary grid bytes g (−1, 0, 1) and per-byte δ + 1 (0 or 2).
inline __m256i iq1_biased(__m256i g, __m256i delta1) {
  // Bytes of g + 1 are 0…2, so the 16-bit shift moves no bit across a byte.
  return _mm256_add_epi8(_mm256_slli_epi16(_mm256_add_epi8(g, _mm256_set1_epi8(1)), 3), delta1);
}

// IQ1_S (50 bytes: f16 d, qs[32] index low bytes, uint16 qh[8] = 4 × 3 index bits | scale << 12 | δ sign << 15).
struct IQ1S : GridForm {
  static constexpr size_t kBytes = 50;
  static constexpr int kSub = 32;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    u.d = u.m = load_h(b) * 0.125f;
    const uint8_t* qs = b + 2;
    for (int s = 0; s < 8; ++s) {
      const uint32_t h = load_u16(b + 34 + 2 * s);
      const __m256i g = set64(iq1s_grid[qs[4 * s] | ((h << 8) & 0x700)], iq1s_grid[qs[4 * s + 1] | ((h << 5) & 0x700)],
                              iq1s_grid[qs[4 * s + 2] | ((h << 2) & 0x700)], iq1s_grid[qs[4 * s + 3] | ((h >> 1) & 0x700)]);
      u.u[s] = iq1_biased(g, _mm256_set1_epi8(h & 0x8000 ? 0 : 2));
    }
    u.sc = pair_scales32(_mm256_and_si256(_mm256_srli_epi32(_mm256_cvtepu16_epi32(load16(b + 34)), 12), _mm256_set1_epi32(7)));
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-9));
  }
};

// IQ1_M (56 bytes: qs[32] index low bytes, qh[16] two nibbles (3 index bits | δ sign << 3) per byte, then
// 4 uint16 of 3-bit scales (two per 32) whose top nibbles spell the f16 d).
struct IQ1M : GridForm {
  static constexpr size_t kBytes = 56;
  static constexpr int kSub = 16;
  static inline void scales(const uint8_t* b, KBlock& u) {  // codes too: one pass
    const uint8_t* qs = b;
    const uint8_t* qh = b + 32;
    const uint64_t packed = load_u64(b + 48);
    const uint16_t dbits = static_cast<uint16_t>(((packed >> 12) & 0x000f) | ((packed >> 24) & 0x00f0) |
                                                 ((packed >> 36) & 0x0f00) | ((packed >> 48) & 0xf000));
    u.d = u.m = _cvtsh_ss(dbits) * 0.125f;
    for (int s = 0; s < 8; ++s) {
      const uint32_t h0 = qh[2 * s], h1 = qh[2 * s + 1];
      const __m256i g = set64(iq1s_grid[qs[4 * s] | ((h0 << 8) & 0x700)], iq1s_grid[qs[4 * s + 1] | ((h0 << 4) & 0x700)],
                              iq1s_grid[qs[4 * s + 2] | ((h1 << 8) & 0x700)], iq1s_grid[qs[4 * s + 3] | ((h1 << 4) & 0x700)]);
      const auto d1 = [](uint32_t nib) { return nib & 0x08 ? uint64_t{0} : uint64_t{0x0202020202020202}; };
      u.u[s] = iq1_biased(g, set64(d1(h0), d1(h0 >> 4), d1(h1), d1(h1 >> 4)));
    }
    // Scale k (of 16 weights) is bits 3(k % 4) … +2 of word k / 4: each word copied to 4 int16 lanes,
    // multiplied by 2^(12 − 3(k % 4)) (so the 3 bits land at 12 … 14), shifted down.
    const __m256i words = _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<long long>(packed)),
                                              _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,  //
                                                               4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7));
    const __m256i shifted = _mm256_mullo_epi16(words, _mm256_setr_epi16(4096, 512, 64, 8, 4096, 512, 64, 8, 4096, 512, 64,
                                                                         8, 4096, 512, 64, 8));
    const __m256i sc3 = _mm256_and_si256(_mm256_srli_epi16(shifted, 12), _mm256_set1_epi16(7));
    u.sc = _mm256_add_epi16(_mm256_add_epi16(sc3, sc3), _mm256_set1_epi16(1));
    u.off = _mm256_mullo_epi16(u.sc, _mm256_set1_epi16(-9));
  }
};

// Calls f.template operator()<T>() with the kernel type of ggml type t (a k-quant or a grid i-quant);
// false, without calling, for any other type. The one list both x86 tables dispatch on.
template <class F>
bool visit(GgmlType t, F&& f) {
  switch (t) {
    case GgmlType::Q2_K: f.template operator()<Q2K>(); return true;
    case GgmlType::Q3_K: f.template operator()<Q3K>(); return true;
    case GgmlType::Q4_K: f.template operator()<Q4K>(); return true;
    case GgmlType::Q5_K: f.template operator()<Q5K>(); return true;
    case GgmlType::Q6_K: f.template operator()<Q6K>(); return true;
    case GgmlType::IQ2_XXS: f.template operator()<IQ2XXS>(); return true;
    case GgmlType::IQ2_XS: f.template operator()<IQ2XS>(); return true;
    case GgmlType::IQ2_S: f.template operator()<IQ2S>(); return true;
    case GgmlType::IQ3_XXS: f.template operator()<IQ3XXS>(); return true;
    case GgmlType::IQ3_S: f.template operator()<IQ3S>(); return true;
    case GgmlType::IQ1_S: f.template operator()<IQ1S>(); return true;
    case GgmlType::IQ1_M: f.template operator()<IQ1M>(); return true;
    default: return false;
  }
}

}  // namespace kq
}  // namespace
}  // namespace groak
#endif
