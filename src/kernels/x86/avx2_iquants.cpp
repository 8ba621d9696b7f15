// AVX2 + FMA + F16C kernels for ggml's IQ4_XS, ternary quants (TQ1_0, TQ2_0), IQ4_NL and MXFP4 ([out, in]
// rows) against activations quantised once per product: q8_K for the 256-element super-block types (as
// llama.cpp's ggml_vec_dot_iq4_xs_q8_K / tq*_q8_K do), q8_0 for the 32-element IQ4_NL and MXFP4
// (vec_dot_*_q8_0). Each weight block is decoded to small integers inside the product (nibble lookups,
// base-3 digits); the weights are never expanded to f32. quant_iquants.cpp holds the scalar oracles
// (dequantize_row). The grid i-quants (IQ1_S … IQ3_S) share the k-quants' form and kernels instead
// (iquant_blocks.h, kquant_blocks.h).
//
// Every weight of a super-block is D · sc[g] · w with an integer w, an integer scale sc[g] per group g of
// 16 weights and one f32 factor D; this is exactly the dequantised value:
//   IQ4_XS        w = kvalues_iq4nl[nibble] ∈ [−127, 113]   sc = s − 32 (6 bits)   D = d
//   TQ1_0/TQ2_0   w = digit − 1 ∈ {−1, 0, 1}     sc = 1                         D = d
// With a q8_K block of the row (scale d_x, int8 q_x, bsums of 16): Σ value·x = D·d_x·S, S = Σ_g sc[g]·Σ_{i∈g} w_i·q_x,i
// (an exact int32). The ternary weights are stored as u = w + 1 ≥ 0 for maddubs and S = Σ_g Σ u·q_x −
// Σ_g bsums[g]; IQ4_XS's w do not fit that way (u would reach 240), so it takes the sign trick:
// maddubs(|w|, q_x·sign(w)). The 32-element types: S = Σ w·q_x over the block (sign trick), factor d_w·d_x
// (MXFP4: d_w = 2^(e−128)).
//
// Order of arithmetic (what makes results independent of threads and of batch size): every output element
// (o, r) is computed by exactly one sequence, whatever tile it falls in:
//   acc8 = 0; for each weight block b in increasing order: acc8 = fma(D_b·d_x,b, float(S_b lanes), acc8);
//   y = hsum8(acc8)  (the fixed tree of avx2.cpp)
// where the 8 int32 lanes of S_b are exact (so their internal order is free) and D_b·d_x,b is one f32
// product. Decode (one activation row: weight rows streamed once, each block decoded and used at once) and
// the batched path (several rows: a band of weight rows decoded once into the thread's scratch, then every
// tile of activation rows passes over it) call the same block_dot on the same decoded blocks, so a row's
// result is bit-identical alone or in a batch, and for any split of the outputs (tests/simd_test.cpp).
#include "kernels/x86/avx2_iquants.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/quant_iquants_grids.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace groak::avx2 {
namespace {

// A q8_K block (quant.h): f32 d at byte 0, int8 qs[256] at 4, int16 bsums[16] at 260. A q8_0 block: f16 d,
// int8 qs[32].
constexpr size_t kQ8KQs = 4;
constexpr size_t kQ8KSums = 4 + kQK_K;
constexpr size_t kQ8_0Bytes = 34;

// Loads: weights and activations may sit at any address. (Defined per SIMD file on purpose: see avx512_vnni.cpp.)
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
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t u;
  std::memcpy(&u, p, 2);
  return u;
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

// Fixed reduction tree (as avx2.cpp): (l0+l4, l1+l5, l2+l6, l3+l7) -> pairs -> one.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}


// ---------------------------------------------------------------------------------------------------
// A weight super-block decoded for integer dot products with q8_K blocks.

struct Unpacked {
  __m256i q[8];    // weights 32v … 32v+31: u = w + c (unsigned bytes), or |w| for the sign-trick types
  __m256i w[8];    // the sign-trick types: w itself (its signs are applied to the activations)
  __m256i mul[8];  // int16 multipliers of maddubs(q[v], x[v])'s 16 pair sums: the group scales sc
  __m256i off;     // int16 multipliers of the 16 bsums: −c·sc[g] (zero for the sign-trick types)
  float d;         // D
};


// 32 nibbles of 16 bytes in ggml's order (low nibbles = weights 0…15, high = 16…31) looked up in a 16-entry
// int8 table.
inline __m256i nibble_lookup(const uint8_t* p, __m256i table) {
  const __m128i bytes = load16(p), m = _mm_set1_epi8(0x0f);
  const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), m), _mm_and_si128(bytes, m));
  return _mm256_shuffle_epi8(table, idx);
}
inline __m256i iq4nl_table() { return _mm256_broadcastsi128_si256(load16(reinterpret_cast<const uint8_t*>(quant::kvalues_iq4nl))); }

// IQ4_XS (136 bytes: f16 d, uint16 scales_h, scales_l[4], qs[128]); sign trick.
struct IQ4XS {
  static constexpr size_t kBytes = 136;
  static constexpr bool kSignTrick = true;
  static inline void unpack(const uint8_t* b, Unpacked& u) {
    u.d = load_f16(b);
    const uint32_t sh = load_u16(b + 2);
    const __m256i table = iq4nl_table();
    for (int s = 0; s < 8; ++s) {
      u.w[s] = nibble_lookup(b + 8 + 16 * s, table);
      u.q[s] = _mm256_sign_epi8(u.w[s], u.w[s]);
      const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0xf) | (((sh >> (2 * s)) & 3) << 4);
      u.mul[s] = _mm256_set1_epi16(static_cast<short>(ls - 32));
    }
    u.off = _mm256_setzero_si256();
  }
};

// Base-3 digits of bytes (TQ1_0): digit = ((byte·m) mod 256 · 3) >> 8 for the multiplier m = 3^n of each
// 16-bit lane (both bytes of a lane use the lane's multiplier).
inline __m256i tq1_digits(__m256i bytes, __m256i mult) {
  const __m256i lo8 = _mm256_set1_epi16(0x00ff), hi8 = _mm256_set1_epi16(static_cast<short>(0xff00));
  const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_mullo_epi16(bytes, mult), lo8),
                                    _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(bytes, hi8), mult), hi8));
  const __m256i three = _mm256_set1_epi16(3);
  return _mm256_or_si256(_mm256_mulhi_epu16(_mm256_slli_epi16(q, 8), three),
                         _mm256_slli_epi16(_mm256_mulhi_epu16(_mm256_and_si256(q, hi8), three), 8));
}

// TQ1_0 (54 bytes: qs[48] five base-3 digits per byte, qh[4] four, f16 d): u = digit = w + 1.
struct TQ10 {
  static constexpr size_t kBytes = 54;
  static constexpr bool kSignTrick = false;
  static inline void unpack(const uint8_t* b, Unpacked& u) {
    u.d = load_f16(b + 52);
    constexpr short p3[5] = {1, 3, 9, 27, 81};
    // Weights 32n + m: digit n of qs[m], m < 32.
    const __m256i qs0 = load32(b);
    for (int n = 0; n < 5; ++n) u.q[n] = tq1_digits(qs0, _mm256_set1_epi16(p3[n]));
    // Weights 160 + 16n + m: digit n of qs[32 + m]; two digits per vector (low half n, high half n + 1).
    const __m256i qs1 = _mm256_broadcastsi128_si256(load16(b + 32));
    u.q[5] = tq1_digits(qs1, _mm256_set_m128i(_mm_set1_epi16(p3[1]), _mm_set1_epi16(p3[0])));
    u.q[6] = tq1_digits(qs1, _mm256_set_m128i(_mm_set1_epi16(p3[3]), _mm_set1_epi16(p3[2])));
    // Weights 224 … 239: digit 4 of qs[32 + m]; 240 + 4n + j: digit n of qh[j].
    const __m256i last = _mm256_set_m128i(_mm_set1_epi32(static_cast<int>(load_u32(b + 48))), load16(b + 32));
    u.q[7] = tq1_digits(last, _mm256_set_m128i(_mm_setr_epi16(1, 1, 3, 3, 9, 9, 27, 27), _mm_set1_epi16(p3[4])));
    for (int v = 0; v < 8; ++v) u.mul[v] = _mm256_set1_epi16(1);
    u.off = _mm256_set1_epi16(-1);
  }
};

// TQ2_0 (66 bytes: qs[64] four 2-bit q per byte, f16 d): weight 128h + 32l + m is bits 2l of qs[32h + m];
// u = q = w + 1.
struct TQ20 {
  static constexpr size_t kBytes = 66;
  static constexpr bool kSignTrick = false;
  static inline void unpack(const uint8_t* b, Unpacked& u) {
    u.d = load_f16(b + 64);
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = load32(b + 32 * h);
      for (int l = 0; l < 4; ++l) u.q[4 * h + l] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * l), m3);
    }
    for (int v = 0; v < 8; ++v) u.mul[v] = _mm256_set1_epi16(1);
    u.off = _mm256_set1_epi16(-1);
  }
};

// acc8 += this super-block's share of Σ w·x for one q8_K block xb (the sequence in the header).
template <class T>
inline __m256 block_dot(const Unpacked& u, const uint8_t* xb, __m256 acc) {
  const float dx = load_f32(xb);
  __m256i isum = _mm256_setzero_si256();
  for (int v = 0; v < 8; ++v) {
    const __m256i x = load32(xb + kQ8KQs + 32 * v);
    const __m256i p = T::kSignTrick ? _mm256_maddubs_epi16(u.q[v], _mm256_sign_epi8(x, u.w[v]))
                                    : _mm256_maddubs_epi16(u.q[v], x);
    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(u.mul[v], p));
  }
  if constexpr (!T::kSignTrick) isum = _mm256_add_epi32(isum, _mm256_madd_epi16(u.off, load32(xb + kQ8KSums)));
  return _mm256_fmadd_ps(_mm256_set1_ps(u.d * dx), _mm256_cvtepi32_ps(isum), acc);
}

constexpr int64_t kTileRows = 4;      // activation rows per pass over decoded blocks
constexpr int64_t kTileOutputs = 16;  // weight rows per band (kept in L2 while the row tiles pass)

// y[r0 … r0+NR)[o] for one output o: the weight row streamed once, each super-block decoded once.
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

// Several activation rows (the batched path): the weight rows of [o0, o1) are decoded in bands that fit the
// thread's scratch (decoding an i-quant block costs several times its dot product with one q8_K block, so
// it is done once per weight row, not once per tile of activation rows); each tile of kTileRows rows then
// passes over the band's decoded blocks. The sequence per output element is rows_dot's.
template <class T>
void batched(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / kQK_K, R = a.n_rows;
  const size_t xrow = static_cast<size_t>(nb) * kQ8_KBlockBytes;
  Unpacked* dec = reinterpret_cast<Unpacked*>(scratch);  // [band][nb]; scratch is 64-byte aligned
  const int64_t fit = static_cast<int64_t>(kKernelScratchFloats * sizeof(float) / sizeof(Unpacked)) / nb;
  if (fit == 0) {  // a row longer than the scratch holds (n_in in the hundred thousands): decode per tile
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t r = 0; r < R; ++r) rows_dot<T, 1>(a, o, r);
    return;
  }
  const int64_t band = std::min<int64_t>(kTileOutputs, fit);
  for (int64_t ob = o0; ob < o1; ob += band) {
    const int64_t oe = std::min(o1, ob + band);
    for (int64_t o = ob; o < oe; ++o) {
      const uint8_t* wrow = w.data + static_cast<size_t>(o) * w.stride();
      for (int64_t k = 0; k < nb; ++k) T::unpack(wrow + static_cast<size_t>(k) * T::kBytes, dec[(o - ob) * nb + k]);
    }
    for (int64_t r0 = 0; r0 < R; r0 += kTileRows) {
      const int64_t n = std::min(kTileRows, R - r0);
      const uint8_t* x[kTileRows];
      for (int64_t r = 0; r < n; ++r) x[r] = a.xq + static_cast<size_t>(r0 + r) * xrow;
      for (int64_t o = ob; o < oe; ++o) {
        const Unpacked* u = dec + (o - ob) * nb;
        __m256 acc[kTileRows];
        for (int64_t r = 0; r < kTileRows; ++r) acc[r] = _mm256_setzero_ps();
        if (n == kTileRows) {  // the common case, unrolled: each decoded block loaded once for 4 rows
          for (int64_t k = 0; k < nb; ++k)
            for (int64_t r = 0; r < kTileRows; ++r)
              acc[r] = block_dot<T>(u[k], x[r] + static_cast<size_t>(k) * kQ8_KBlockBytes, acc[r]);
        } else {
          for (int64_t k = 0; k < nb; ++k)
            for (int64_t r = 0; r < n; ++r)
              acc[r] = block_dot<T>(u[k], x[r] + static_cast<size_t>(k) * kQ8_KBlockBytes, acc[r]);
        }
        for (int64_t r = 0; r < n; ++r) a.y[(r0 + r) * a.y_stride + o] = hsum8(acc[r]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// 32-element types against q8_0 activations: one vector of int8 weights per block, sign trick.

inline float e8m0_half(uint8_t e) {  // ggml_e8m0_to_fp32_half: 2^(e − 128)
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// IQ4_NL (18 bytes: f16 d, qs[16]).
struct IQ4NL {
  static constexpr size_t kBytes = 18;
  static inline __m256i table() { return iq4nl_table(); }
  static inline float scale(const uint8_t* b) { return load_f16(b); }
  static constexpr size_t kNibbles = 2;
};
// MXFP4 (17 bytes: E8M0 e, qs[16]).
struct MXFP4 {
  static constexpr size_t kBytes = 17;
  static inline __m256i table() {
    return _mm256_broadcastsi128_si256(load16(reinterpret_cast<const uint8_t*>(quant::kvalues_mxfp4)));
  }
  static inline float scale(const uint8_t* b) { return e8m0_half(b[0]); }
  static constexpr size_t kNibbles = 1;
};

template <class T, int NR>
void rows_dot32(const MatmulArgs& a, int64_t o, int64_t r0) {
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / 32;
  const size_t xrow = static_cast<size_t>(nb) * kQ8_0Bytes;
  const uint8_t* wrow = w.data + static_cast<size_t>(o) * w.stride();
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>(r0 + r) * xrow;
  const __m256i table = T::table(), ones = _mm256_set1_epi16(1);
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < nb; ++k) {
    const uint8_t* b = wrow + static_cast<size_t>(k) * T::kBytes;
    const float dw = T::scale(b);
    const __m256i wv = nibble_lookup(b + T::kNibbles, table), wa = _mm256_sign_epi8(wv, wv);
    for (int r = 0; r < NR; ++r) {
      const uint8_t* xb = x[r] + static_cast<size_t>(k) * kQ8_0Bytes;
      const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(load32(xb + 2), wv)), ones);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * load_f16(xb)), _mm256_cvtepi32_ps(s), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) a.y[(r0 + r) * a.y_stride + o] = hsum8(acc[r]);
}

// ---------------------------------------------------------------------------------------------------
// Tiling of the 32-element types (RowsDot<NR> computes NR rows of one output; their blocks are cheap to
// decode, so each is decoded once per tile of rows).

template <template <int> class RowsDot>
void tiled(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t R = a.n_rows;
  if (R == 1) {  // decode: stream the weight rows in order
    for (int64_t o = o0; o < o1; ++o) RowsDot<1>::run(a, o, 0);
    return;
  }
  // Many rows: a band of kTileOutputs weight rows stays in L2 while every tile of rows passes over it.
  for (int64_t ob = o0; ob < o1; ob += kTileOutputs) {
    const int64_t oe = std::min(o1, ob + kTileOutputs);
    for (int64_t r = 0; r < R; r += kTileRows) {
      const int64_t n = std::min(kTileRows, R - r);
      for (int64_t o = ob; o < oe; ++o) {
        switch (n) {
          case 1: RowsDot<1>::run(a, o, r); break;
          case 2: RowsDot<2>::run(a, o, r); break;
          case 3: RowsDot<3>::run(a, o, r); break;
          default: RowsDot<4>::run(a, o, r); break;
        }
      }
    }
  }
}

// The 256-element types: decode streams the weight rows (rows_dot), several rows go through batched().
template <class T>
void super(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  if (a.n_rows == 1) {
    for (int64_t o = o0; o < o1; ++o) rows_dot<T, 1>(a, o, 0);
    return;
  }
  batched<T>(a, o0, o1, scratch);
}
template <class T>
struct Small {
  template <int NR>
  struct At {
    static void run(const MatmulArgs& a, int64_t o, int64_t r0) { rows_dot32<T, NR>(a, o, r0); }
  };
};

}  // namespace

ActFormat iquant_act_format(const Matrix& w) {
  if (w.format != WeightFormat::Ggml || w.layout != Layout::OutIn) return ActFormat::F32;
  switch (w.ggml) {
    case GgmlType::IQ4_XS: case GgmlType::TQ1_0: case GgmlType::TQ2_0:
      return ActFormat::Q8_K;
    case GgmlType::IQ4_NL: case GgmlType::MXFP4:
      return ActFormat::Q8_0;
    default:
      return ActFormat::F32;
  }
}

void iquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  switch (a.w->ggml) {
    case GgmlType::IQ4_XS: return super<IQ4XS>(a, o0, o1, scratch);
    case GgmlType::TQ1_0: return super<TQ10>(a, o0, o1, scratch);
    case GgmlType::TQ2_0: return super<TQ20>(a, o0, o1, scratch);
    case GgmlType::IQ4_NL: return tiled<Small<IQ4NL>::At>(a, o0, o1);
    case GgmlType::MXFP4: return tiled<Small<MXFP4>::At>(a, o0, o1);
    default: return;  // not covered (iquant_covers is false): the caller never gets here
  }
}

}  // namespace groak::avx2

#pragma GCC pop_options
#endif
