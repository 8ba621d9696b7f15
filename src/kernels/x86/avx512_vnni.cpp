// AVX-512 VNNI (vpdpbusd) for [out, in] q8_0 / q4_0 rows against q8_0 activations, in place (256-bit
// registers) or from the 8-row repacked copies (kernels/repack.h; 512-bit over two groups); k-quants go to
// avx512_kquants.cpp, every other product to the AVX2 table.
//
// Arithmetic (the same for every batch size, so a row's result never depends on its batch):
//   weights as unsigned bytes u = w + c (q8_0: w ^ 0x80, c = 128; q4_0: the nibbles, c = 8), so that
//   s = Σ u·x − c·Σx = Σ w·x over a 32-block is an exact int32 (vpdpbusd takes u unsigned, x signed);
//   y = Σ over blocks in order of fma(d_w·d_x, float(s), y), one f32 accumulator per output.
// Because s is exact, how it is summed does not matter, which frees each path to use its best layout:
//   - many rows (prefill, ≥ kPackRows): 8 weight rows are repacked once per pass into an interleaved
//     panel (4 bytes of row 0, 4 of row 1, …), so one vpdpbusd advances 8 outputs by 4 inputs and the
//     float steps run once per block for 8 outputs, not once per block per output;
//   - few rows (decode): 8 weight rows are read in place, one vpdpbusd per row and block, and the 8 lane
//     sums are folded into one vector of 8 block sums (reduce8) before the same float steps.
#include "kernels/kernels.h"
#include "kernels/x86/avx2_kquants.h"
#include "kernels/x86/avx512_kquants.h"
#include "kernels/x86/inout_tiles.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")

namespace groak {
namespace {

constexpr int64_t kQ8Bytes = 34;  // f16 d + 32 int8
constexpr int64_t kQ4Bytes = 18;  // f16 d + 16 bytes of nibbles
constexpr int64_t kPackRows = 8;  // rows from which the repacked (prefill) path pays off

template <GgmlType T>
constexpr int64_t block_bytes() { return T == GgmlType::Q8_0 ? kQ8Bytes : kQ4Bytes; }
template <GgmlType T>
constexpr int32_t weight_bias() { return T == GgmlType::Q8_0 ? 128 : 8; }

// Loads are defined per SIMD file on purpose: a shared inline one would be compiled under each file's
// target options and the linker could keep an AVX-512 copy for the AVX2 table.
inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// acc += vpdpbusd(u, s) with the accumulator tied to the destination: GCC 12 copies the accumulator in and
// out of the intrinsic's destination register (two vmovdqa per vpdpbusd in the tiles).
inline void dpbusd(__m256i& acc, __m256i u, __m256i s) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s)); }
inline void dpbusd(__m512i& acc, __m512i u, __m512i s) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s)); }

// The 32 weights of a block as unsigned bytes u = w + c, in input order.
template <GgmlType T>
inline __m256i block_u8(const uint8_t* b) {
  if constexpr (T == GgmlType::Q8_0) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  } else {
    // Both halves hold the 16 bytes; the upper one shifted right by 4 (vpsrlvw): low nibbles then high.
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
    return _mm256_and_si256(_mm256_srlv_epi16(q, _mm256_set_epi64x(0x0004000400040004, 0x0004000400040004, 0, 0)),
                            _mm256_set1_epi8(0x0f));
  }
}

// Lane j of the result = the sum of v[j]'s 8 lanes (exact integers).
inline __m256i reduce8(const __m256i v[8]) {
  const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1);  // [v0..v3 low halves | v0..v3 high halves]
  const __m256i u1 = _mm256_hadd_epi32(t2, t3);  // [v4..v7 low halves | v4..v7 high halves]
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

// Per activation row and block: its scale and −c·Σx.
struct ActBlock {
  float d;
  int32_t neg_bias_sum;
};

template <GgmlType T>
void prepare_acts(const uint8_t* xq, int64_t rows, int64_t nb, ActBlock* out) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < nb; ++k) {
      const uint8_t* xb = xq + (r * nb + k) * kQ8Bytes;
      const __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones,
                                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 2)));
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
      s = _mm_hadd_epi32(s, s);
      s = _mm_hadd_epi32(s, s);
      out[r * nb + k] = {f16_at(xb), -weight_bias<T>() * _mm_cvtsi128_si32(s)};
    }
}

// Writes the n ≤ 8 valid lanes of v to y.
inline void store_lanes(float* y, __m256 v, int64_t n) {
  if (n == 8) return _mm256_storeu_ps(y, v);
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  std::copy(t, t + n, y);
}

// --- few rows: 8 weight rows in place, every activation row against them ------------------------------

template <GgmlType T, int NR>
void rows8(const MatmulArgs& a, const ActBlock* act, int64_t o, int64_t n_valid) {
  constexpr int64_t B = block_bytes<T>();
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / 32;
  const uint8_t* row[8];
  for (int j = 0; j < 8; ++j) row[j] = w.data + static_cast<size_t>(o + std::min<int64_t>(j, n_valid - 1)) * w.stride();
  // Offsets of the 8 rows' scales from row 0's, for one gather per block.
  __m256i offs = _mm256_setzero_si256();
  {
    alignas(32) int32_t t[8];
    for (int j = 0; j < 8; ++j) t[j] = static_cast<int32_t>(row[j] - row[0]);
    offs = _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
  }
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  // Software prefetch ~256 bytes ahead in each of the 8 row streams, once per cache line's worth of
  // blocks: 15–25 % less CPU time per block than the hardware prefetchers alone (decode/q8_0, q4_0).
  constexpr int64_t kAhead = (256 + B - 1) / B, kEvery = 64 / B;
  for (int64_t k = 0; k < nb; ++k) {
    if (k % kEvery == 0)
      for (int j = 0; j < 8; ++j) _mm_prefetch(reinterpret_cast<const char*>(row[j] + (k + kAhead) * B), _MM_HINT_T0);
    __m256i u[8];
    for (int j = 0; j < 8; ++j) {
      u[j] = block_u8<T>(row[j] + k * B);
    }
    // The 8 rows' f16 scales: gather 4 bytes at each block start, keep the low 16 bits.
    const __m256i dw32 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(row[0] + k * B), offs, 1);
    const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dw32));
    for (int r = 0; r < NR; ++r) {
      const uint8_t* xb = a.xq + static_cast<size_t>(r * nb + k) * kQ8Bytes;
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 2));
      __m256i v[8];
      for (int j = 0; j < 8; ++j) v[j] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u[j], xv);
      const ActBlock ab = act[r * nb + k];
      const __m256i s = _mm256_add_epi32(reduce8(v), _mm256_set1_epi32(ab.neg_bias_sum));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(ab.d)), _mm256_cvtepi32_ps(s), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) store_lanes(a.y + r * a.y_stride + o, acc[r], n_valid);
}

template <GgmlType T, int NR>
void rows_in_place(const MatmulArgs& a, const ActBlock* act, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; o += 8) rows8<T, NR>(a, act, o, std::min<int64_t>(8, o1 - o));
}

template <GgmlType T>
void few_rows(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const int64_t nb = a.w->n_in / 32;
  ActBlock* act = reinterpret_cast<ActBlock*>(scratch);  // [n_rows][nb]
  prepare_acts<T>(a.xq, a.n_rows, nb, act);
  switch (a.n_rows) {
    case 1: return rows_in_place<T, 1>(a, act, o0, o1);
    case 2: return rows_in_place<T, 2>(a, act, o0, o1);
    case 3: return rows_in_place<T, 3>(a, act, o0, o1);
    case 4: return rows_in_place<T, 4>(a, act, o0, o1);
    case 5: return rows_in_place<T, 5>(a, act, o0, o1);
    case 6: return rows_in_place<T, 6>(a, act, o0, o1);
    default: return rows_in_place<T, 7>(a, act, o0, o1);
  }
}

// --- many rows: 8 weight rows repacked into an interleaved panel --------------------------------------

// Panel of 8 rows (o, o+1, …; rows past n_valid repeat the last): for block k and group g of 4 inputs,
// 32 bytes = the 4 unsigned weight bytes of each of the 8 rows; dw[k] = the 8 rows' scales.
template <GgmlType T>
void pack8(const Matrix& w, int64_t o, int64_t n_valid, uint8_t* panel, float* dw) {
  constexpr int64_t B = block_bytes<T>();
  const int64_t nb = w.n_in / 32;
  const uint8_t* row[8];
  for (int j = 0; j < 8; ++j) row[j] = w.data + static_cast<size_t>(o + std::min<int64_t>(j, n_valid - 1)) * w.stride();
  for (int64_t k = 0; k < nb; ++k) {
    __m256i r[8];  // r[j]: row j's 8 groups
    for (int j = 0; j < 8; ++j) {
      r[j] = block_u8<T>(row[j] + k * B);
      dw[k * 8 + j] = f16_at(row[j] + k * B);
    }
    // 8×8 transpose of 32-bit groups: g[i] lane j = r[j] lane i.
    const __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
    const __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
    const __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
    const __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
    const __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
    __m256i* g = reinterpret_cast<__m256i*>(panel + k * 256);
    _mm256_storeu_si256(g + 0, _mm256_permute2x128_si256(b0, b4, 0x20));
    _mm256_storeu_si256(g + 1, _mm256_permute2x128_si256(b1, b5, 0x20));
    _mm256_storeu_si256(g + 2, _mm256_permute2x128_si256(b2, b6, 0x20));
    _mm256_storeu_si256(g + 3, _mm256_permute2x128_si256(b3, b7, 0x20));
    _mm256_storeu_si256(g + 4, _mm256_permute2x128_si256(b0, b4, 0x31));
    _mm256_storeu_si256(g + 5, _mm256_permute2x128_si256(b1, b5, 0x31));
    _mm256_storeu_si256(g + 6, _mm256_permute2x128_si256(b2, b6, 0x31));
    _mm256_storeu_si256(g + 7, _mm256_permute2x128_si256(b3, b7, 0x31));
  }
}

// NR activation rows (r0 …; act points at row r0's blocks) against one panel: 8 outputs per vector.
template <int NR>
void panel_tile(const MatmulArgs& a, const uint8_t* panel, const float* dw, const ActBlock* act, int64_t r0,
                int64_t o, int64_t n_valid) {
  const int64_t nb = a.w->n_in / 32;
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>((r0 + r) * nb) * kQ8Bytes + 2;
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < nb; ++k) {
    __m256i s[NR];
    for (int r = 0; r < NR; ++r) s[r] = _mm256_set1_epi32(act[r * nb + k].neg_bias_sum);
    const uint8_t* pk = panel + k * 256;
    for (int g = 0; g < 8; ++g) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk + 32 * g));
      for (int r = 0; r < NR; ++r)
        dpbusd(s[r], wv, _mm256_set1_epi32(load_i32(x[r] + k * kQ8Bytes + 4 * g)));
    }
    const __m256 d = _mm256_loadu_ps(dw + k * 8);
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(act[r * nb + k].d)), _mm256_cvtepi32_ps(s[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) store_lanes(a.y + (r0 + r) * a.y_stride + o, acc[r], n_valid);
}

constexpr int kTileRows = 8;  // activation rows per panel tile (2·8 accumulators + 2 temporaries)

template <GgmlType T>
void many_rows(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const int64_t nb = a.w->n_in / 32;
  const int64_t R = a.n_rows;
  // Scratch: the panel and its scales, then the prepared activations of one block of rows.
  uint8_t* panel = reinterpret_cast<uint8_t*>(scratch);
  float* dw = reinterpret_cast<float*>(panel + nb * 256);
  ActBlock* act = reinterpret_cast<ActBlock*>(dw + nb * 8);
  const int64_t left = static_cast<int64_t>(kKernelScratchFloats * sizeof(float)) - nb * (256 + 32);
  const int64_t row_block = std::min<int64_t>(64, left / (nb * static_cast<int64_t>(sizeof(ActBlock))));
  for (int64_t rb = 0; rb < R; rb += row_block) {
    const int64_t re = std::min(R, rb + row_block);
    prepare_acts<T>(a.xq + static_cast<size_t>(rb * nb) * kQ8Bytes, re - rb, nb, act);  // act[0] = row rb
    for (int64_t o = o0; o < o1; o += 8) {
      const int64_t n_valid = std::min<int64_t>(8, o1 - o);
      pack8<T>(*a.w, o, n_valid, panel, dw);
      int64_t r = rb;
      const auto at = [&](int64_t row) { return act + (row - rb) * nb; };
      for (; r + kTileRows <= re; r += kTileRows) panel_tile<kTileRows>(a, panel, dw, at(r), r, o, n_valid);
      for (; r + 4 <= re; r += 4) panel_tile<4>(a, panel, dw, at(r), r, o, n_valid);
      for (; r < re; ++r) panel_tile<1>(a, panel, dw, at(r), r, o, n_valid);
    }
  }
}

// Scratch bytes each path needs.
int64_t many_rows_scratch(int64_t nb) { return nb * (256 + 32) + 2 * nb * static_cast<int64_t>(sizeof(ActBlock)); }

template <GgmlType T>
void vnni_q(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const int64_t nb = a.w->n_in / 32;
  const int64_t budget = static_cast<int64_t>(kKernelScratchFloats * sizeof(float));
  if (a.n_rows >= kPackRows && many_rows_scratch(nb) <= budget) return many_rows<T>(a, o0, o1, scratch);
  // Few rows (or an input too wide to pack): blocks of at most 7 rows, the same arithmetic.
  const int64_t step = std::min<int64_t>(7, budget / (nb * static_cast<int64_t>(sizeof(ActBlock))));
  if (step == 0) return avx2_kernels()->matmul(a, o0, o1, scratch);  // n_in in the millions: no model has it
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += step) {
    MatmulArgs part = a;
    part.n_rows = std::min<int64_t>(step, a.n_rows - r0);
    part.xq = a.xq + static_cast<size_t>(r0 * nb) * kQ8Bytes;
    part.y = a.y + r0 * a.y_stride;
    few_rows<T>(part, o0, o1, scratch);
  }
}

// --- rows8: the 8-row interleaved copy of kernels/repack.h, one stream for decode and prefill --------

// Block k of a rows8 group as 8 vectors of unsigned bytes: u[g] lane j = row j's inputs 4g … 4g+3 (+ c).
template <GgmlType T>
inline void rows8_block(const uint8_t* q, __m256i u[8]) {
  if constexpr (T == GgmlType::Q8_0) {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int g = 0; g < 8; ++g)
      u[g] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * g)), flip);
  } else {
    const __m256i m = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {  // low nibbles: inputs 4c…; high nibbles: inputs 16 + 4c…
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
      u[c] = _mm256_and_si256(v, m);
      u[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    }
  }
}

// NR activation rows (r0 …; act points at row r0's blocks) against rows8 group `grp`: lanes [lo, hi) of the
// group's 8 outputs, written at columns o + lo … (o = the group's first output).
template <GgmlType T, int NR>
void rows8_tile(const MatmulArgs& a, const uint8_t* grp, const ActBlock* act, int64_t r0, int64_t o, int64_t lo,
                int64_t hi) {
  constexpr int64_t G = 8 * block_bytes<T>();  // bytes of one block of 8 rows
  const int64_t nb = a.w->n_in / 32;
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>((r0 + r) * nb) * kQ8Bytes + 2;
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < nb; ++k) {
    const uint8_t* blk = grp + k * G;
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    __m256i u[8];
    rows8_block<T>(blk + 16, u);
    __m256i s[NR];
    for (int r = 0; r < NR; ++r) s[r] = _mm256_set1_epi32(act[r * nb + k].neg_bias_sum);
    for (int g = 0; g < 8; ++g)
      for (int r = 0; r < NR; ++r)
        dpbusd(s[r], u[g], _mm256_set1_epi32(load_i32(x[r] + k * kQ8Bytes + 4 * g)));
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(act[r * nb + k].d)), _mm256_cvtepi32_ps(s[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) {
    float* y = a.y + (r0 + r) * a.y_stride + o;
    if (lo == 0 && hi == 8) {
      _mm256_storeu_ps(y, acc[r]);
    } else {
      alignas(32) float t[8];
      _mm256_store_ps(t, acc[r]);
      std::copy(t + lo, t + hi, y + lo);
    }
  }
}

// Block k of two rows8 groups as 8 zmm of unsigned bytes: lanes 0-7 group 0's u[g], lanes 8-15 group 1's.
// The halves are joined before the nibbles are split (one insert per 32 bytes loaded).
// 32 bytes at a (low half) and at b (high half) as one zmm; a function, not a lambda, so that it carries
// the file's target options (a lambda returning a zmm drew -Wpsabi).
inline __m512i join(const uint8_t* a, const uint8_t* b) {
  return _mm512_maskz_inserti64x4(0xff, _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)), 1);
}

template <GgmlType T>
inline void rows16_block(const uint8_t* q0, const uint8_t* q1, __m512i u[8]) {
  if constexpr (T == GgmlType::Q8_0) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int g = 0; g < 8; ++g) u[g] = _mm512_xor_si512(join(q0 + 32 * g, q1 + 32 * g), flip);
  } else {
    const __m512i m = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {  // low nibbles: inputs 4c…; high nibbles: inputs 16 + 4c…
      const __m512i v = join(q0 + 32 * c, q1 + 32 * c);
      u[c] = _mm512_and_si512(v, m);
      u[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    }
  }
}

// Software prefetch distance in each of the two group streams: a decode on the copies waited on its loads
// (one core, decode/q4_0_r8/1: 5.9-7.9 → 4.7-5.0 ms at 2 KiB ahead, q8_0_r8 8.3-12.1 → 7.4-8.0 ms; 1 KiB
// gained less, 4 KiB no more).
constexpr int64_t kPrefetchBytes = 2048;
// Two consecutive rows8 groups (16 outputs, both whole) as one zmm per 4 inputs: NR activation rows,
// half the broadcasts and float steps per output of rows8_tile; the same int32 sums and float steps.
template <GgmlType T, int NR>
void rows16_tile(const MatmulArgs& a, const uint8_t* grp, size_t group_bytes, const ActBlock* act, int64_t r0,
                 int64_t o) {
  constexpr int64_t G = 8 * block_bytes<T>();
  const int64_t nb = a.w->n_in / 32;
  const uint8_t* grp2 = grp + group_bytes;
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>((r0 + r) * nb) * kQ8Bytes + 2;
  __m512 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < nb; ++k) {
    const uint8_t* b0 = grp + k * G;
    const uint8_t* b1 = grp2 + k * G;
    for (int64_t l = 0; l < G; l += 64) {  // past the group's end: the next group's lines, or no fault
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kPrefetchBytes + l), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b1 + kPrefetchBytes + l), _MM_HINT_T0);
    }
    const __m512 dw = _mm512_maskz_cvtph_ps(0xffff, _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1)), 1));
    __m512i u[8];
    rows16_block<T>(b0 + 16, b1 + 16, u);
    __m512i s[NR];
    for (int r = 0; r < NR; ++r) s[r] = _mm512_set1_epi32(act[r * nb + k].neg_bias_sum);
    for (int g = 0; g < 8; ++g)
      for (int r = 0; r < NR; ++r)
        dpbusd(s[r], u[g], _mm512_set1_epi32(load_i32(x[r] + k * kQ8Bytes + 4 * g)));
    for (int r = 0; r < NR; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(act[r * nb + k].d)),
                               _mm512_maskz_cvtepi32_ps(0xffff, s[r]), acc[r]);
  }
  for (int r = 0; r < NR; ++r) _mm512_storeu_ps(a.y + (r0 + r) * a.y_stride + o, acc[r]);
}

template <GgmlType T>
void rows16_rest(int n, const MatmulArgs& a, const uint8_t* grp, size_t gb, const ActBlock* act, int64_t r0, int64_t o) {
  switch (n) {
    case 1: return rows16_tile<T, 1>(a, grp, gb, act, r0, o);
    case 2: return rows16_tile<T, 2>(a, grp, gb, act, r0, o);
    case 3: return rows16_tile<T, 3>(a, grp, gb, act, r0, o);
    case 4: return rows16_tile<T, 4>(a, grp, gb, act, r0, o);
    case 5: return rows16_tile<T, 5>(a, grp, gb, act, r0, o);
    case 6: return rows16_tile<T, 6>(a, grp, gb, act, r0, o);
    default: return rows16_tile<T, 7>(a, grp, gb, act, r0, o);
  }
}

template <GgmlType T>
void rows8_rest(int n, const MatmulArgs& a, const uint8_t* grp, const ActBlock* act, int64_t r0, int64_t o, int64_t lo,
                int64_t hi) {
  switch (n) {
    case 1: return rows8_tile<T, 1>(a, grp, act, r0, o, lo, hi);
    case 2: return rows8_tile<T, 2>(a, grp, act, r0, o, lo, hi);
    case 3: return rows8_tile<T, 3>(a, grp, act, r0, o, lo, hi);
    case 4: return rows8_tile<T, 4>(a, grp, act, r0, o, lo, hi);
    case 5: return rows8_tile<T, 5>(a, grp, act, r0, o, lo, hi);
    case 6: return rows8_tile<T, 6>(a, grp, act, r0, o, lo, hi);
    default: return rows8_tile<T, 7>(a, grp, act, r0, o, lo, hi);
  }
}

// Every row of the product against the groups that hold outputs [o0, o1), two whole groups at a time
// where the range allows (rows16_tile: 1.3-1.8x the products per second of rows8_tile on one core, decode
// and prefill alike) and one otherwise; blocks of up to 64 activation rows share a pass over the groups
// (their prepared sums fill the scratch).
template <GgmlType T>
void rows8_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / 32;
  const size_t group_bytes = static_cast<size_t>(nb * 8 * block_bytes<T>());
  ActBlock* act = reinterpret_cast<ActBlock*>(scratch);  // [row_block][nb]
  const int64_t fit = static_cast<int64_t>(kKernelScratchFloats * sizeof(float)) / (nb * static_cast<int64_t>(sizeof(ActBlock)));
  const int64_t row_block = std::clamp<int64_t>(fit, 1, 64);  // rows8_eligible bounds n_in so that fit ≥ 1
  for (int64_t rb = 0; rb < a.n_rows; rb += row_block) {
    const int64_t re = std::min(a.n_rows, rb + row_block);
    prepare_acts<T>(a.xq + static_cast<size_t>(rb * nb) * kQ8Bytes, re - rb, nb, act);  // act[0] = row rb
    for (int64_t g = o0 / 8; g * 8 < o1; ++g) {
      if (g * 8 >= o0 && g * 8 + 16 <= o1) {  // two whole groups: one zmm per 4 inputs
        const uint8_t* grp = w.data + static_cast<size_t>(g) * group_bytes;
        int64_t r = rb;
        for (; r + kTileRows <= re; r += kTileRows)
          rows16_tile<T, kTileRows>(a, grp, group_bytes, act + (r - rb) * nb, r, g * 8);
        if (r < re) rows16_rest<T>(static_cast<int>(re - r), a, grp, group_bytes, act + (r - rb) * nb, r, g * 8);
        ++g;
        continue;
      }
      const int64_t o = g * 8, lo = std::max<int64_t>(o0 - o, 0), hi = std::min<int64_t>(o1 - o, 8);
      const uint8_t* grp = w.data + static_cast<size_t>(g) * group_bytes;
      int64_t r = rb;
      for (; r + kTileRows <= re; r += kTileRows) rows8_tile<T, kTileRows>(a, grp, act + (r - rb) * nb, r, o, lo, hi);
      if (r < re) rows8_rest<T>(static_cast<int>(re - r), a, grp, act + (r - rb) * nb, r, o, lo, hi);
    }
  }
}

void vnni_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const Matrix& w = *a.w;
  if (w.layout == Layout::InOut) return avx2::matmul_inout(a, o0, o1, scratch, {avx512::panel_pair_tile, avx512::panel_pair_tile_i8});
  if (w.rows8) return w.ggml == GgmlType::Q8_0 ? rows8_matmul<GgmlType::Q8_0>(a, o0, o1, scratch)
                                               : rows8_matmul<GgmlType::Q4_0>(a, o0, o1, scratch);
  if (w.format == WeightFormat::Ggml && w.layout == Layout::OutIn) {
    if (w.ggml == GgmlType::Q8_0) return vnni_q<GgmlType::Q8_0>(a, o0, o1, scratch);
    if (w.ggml == GgmlType::Q4_0) return vnni_q<GgmlType::Q4_0>(a, o0, o1, scratch);
    if (avx2::kquant_covers(w)) return avx512::kquant_matmul(a, o0, o1, scratch);
  }
  avx2_kernels()->matmul(a, o0, o1, scratch);
}

}  // namespace

const Kernels* avx512_vnni_kernels() {
  static const bool ok = avx2_kernels() != nullptr && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vnni");
  if (!ok) return nullptr;
  static const Kernels k = [] {
    Kernels f = *avx2_kernels();  // act_format, quantizers, attention: AVX2's
    f.name = "avx512vnni";
    f.matmul = vnni_matmul;
    f.reads_rows8 = true;
    return f;
  }();
  return &k;
}

}  // namespace groak

#pragma GCC pop_options

#else
namespace groak {
const Kernels* avx512_vnni_kernels() { return nullptr; }
}  // namespace groak
#endif
