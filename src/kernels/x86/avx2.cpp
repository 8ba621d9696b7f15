// AVX2 + FMA + F16C kernels (x86-64). Chosen at run time by dispatch.cpp when the CPU has all three;
// everything not here comes from the reference table. AVX-512/VNNI or NEON versions go in sibling
// files that fill the same table.
//
// Order of arithmetic (what makes results independent of threads and of batch size): every output
// element is computed by exactly one sequence of fused multiply-adds, whatever the tile it falls in:
// - [in, out] matrices (xAI int8, f32): per scale block b, acc = 0, acc = fma(x[i], w[i][o], acc) for i
//   in increasing order; y = 0, y = fma(s[b][o], acc, y) for b in increasing order (s = 1 for f32).
// - [out, in] f32/f16/bf16 rows: 8 lanes, lane l sums i ≡ l (mod 8) in increasing order with fma,
//   then hsum8() (fixed tree), then the n_in % 8 tail with scalar fma.
// - [out, in] q8_0/q4_0 rows with q8_0 activations: per 32-block an exact int32 dot in 8 lanes,
//   acc8 = fma(d_w·d_x, lanes, acc8) over blocks in order, then hsum8().
// - [out, in] k-quant rows (Q2_K … Q6_K) with q8_K activations: kquant_blocks.h states the sequence
//   (per 256-block exact int32 sums, one or two fma into one f32 accumulator per output).
// - [out, in] i-quant, ternary and MXFP4 rows with q8_K (or q8_0) activations: avx2_iquants.cpp (the
//   same shape: per block exact int32 lanes, one fma into acc8, then hsum8()).
// The streaming (few rows) and the tiled (many rows) paths follow the same sequences, so a row's
// result is bit-identical whether it is alone in a product or shares it (tests/simd_test.cpp).
#include "kernels/kernels.h"
#include "kernels/x86/avx2_iquants.h"
#include "kernels/x86/avx2_kquants.h"
#include "kernels/x86/avx2_math.h"
#include "kernels/x86/inout_tiles.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cmath>
#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace groak {
namespace {

// ---------------------------------------------------------------------------------------------------
// Loads. All weight pointers may be unaligned (pickle payloads sit at odd offsets).

inline __m256 load8_i8(const uint8_t* p) {  // 8 int8 -> 8 f32
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 load8_f32(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
inline __m256 load8_f16(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load8_bf16(const uint8_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
inline float f16_scalar(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Fixed reduction tree: (l0+l4, l1+l5, l2+l6, l3+l7) -> pairs -> one.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------------------------------------------
// [in, out] matrices: xAI int8 (bf16 scales per column and input block) and f32.

struct InOutView {
  const uint8_t* data;
  size_t stride;      // bytes between input rows
  bool int8;          // else f32
  const uint8_t* scales;  // bf16 [blocks][scale_row], null for f32
  int64_t scale_row;
  int64_t blocks, block_len;
};

inline InOutView inout_view(const Matrix& w) {
  InOutView v;
  v.data = w.data;
  v.stride = w.stride();
  v.int8 = w.format == WeightFormat::XaiInt8;
  v.scales = v.int8 ? w.scales : nullptr;
  v.scale_row = w.scale_row();
  v.blocks = v.int8 ? w.scale_blocks : 1;
  v.block_len = w.n_in / v.blocks;
  return v;
}
inline const uint8_t* in_row(const InOutView& v, int64_t i) { return v.data + static_cast<size_t>(i) * v.stride; }
inline __m256 w8(const InOutView& v, const uint8_t* row, int64_t o) {
  return v.int8 ? load8_i8(row + o) : load8_f32(row + 4 * o);
}
inline float w1(const InOutView& v, const uint8_t* row, int64_t o) {
  if (v.int8) return static_cast<float>(static_cast<int8_t>(row[o]));
  float f;
  std::memcpy(&f, row + 4 * o, 4);
  return f;
}
inline float scale_of(const InOutView& v, int64_t b, int64_t o) {
  if (!v.scales) return 1.f;
  return load_bf16(v.scales + 2 * static_cast<size_t>(b * v.scale_row + o));
}

constexpr int64_t kStreamCols = 16384;  // columns per pass of the streaming path (acc stays in L1/L2)
constexpr int64_t kStreamRows = 4;     // up to this many rows use the streaming path
constexpr int64_t kPanelCols = 16;     // tiled path: columns per packed panel (2 ymm)
constexpr int64_t kPanelK = 256;       // tiled path: input rows per packed panel
constexpr int64_t kTileRows = 6;       // tiled path: activation rows per register tile

template <bool INT8>
inline __m256 w8t(const uint8_t* row, int64_t o) {
  if constexpr (INT8) return load8_i8(row + o);
  return load8_f32(row + 4 * o);
}

// acc[r][0, n) = fma chain over input rows [i0, i1) for columns [c0, c0+n), R rows of x.
template <int R, bool INT8>
void stream_block(const InOutView& v, const float* x, int64_t n_in, int64_t i0, int64_t i1, int64_t c0, int64_t n,
                  float* acc /* [R][n] */) {
  constexpr int U = 8;  // input rows per pass: acc is read and written once per U rows
  int64_t i = i0;
  for (; i + U <= i1; i += U) {
    const uint8_t* rw[U];
    for (int k = 0; k < U; ++k) rw[k] = in_row(v, i + k);
    float xs[R][U];
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < U; ++k) xs[r][k] = x[r * n_in + i + k];
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      __m256 w[U];
      for (int k = 0; k < U; ++k) w[k] = w8t<INT8>(rw[k], c0 + c);
      for (int r = 0; r < R; ++r) {
        __m256 s = _mm256_loadu_ps(acc + r * n + c);
        for (int k = 0; k < U; ++k) s = _mm256_fmadd_ps(_mm256_set1_ps(xs[r][k]), w[k], s);
        _mm256_storeu_ps(acc + r * n + c, s);
      }
    }
    for (; c < n; ++c)
      for (int r = 0; r < R; ++r) {
        float s = acc[r * n + c];
        for (int k = 0; k < U; ++k) s = std::fma(xs[r][k], w1(v, rw[k], c0 + c), s);
        acc[r * n + c] = s;
      }
  }
  for (; i < i1; ++i) {
    const uint8_t* row = in_row(v, i);
    for (int r = 0; r < R; ++r) {
      const __m256 xb = _mm256_set1_ps(x[r * n_in + i]);
      int64_t c = 0;
      for (; c + 8 <= n; c += 8)
        _mm256_storeu_ps(acc + r * n + c, _mm256_fmadd_ps(xb, w8t<INT8>(row, c0 + c), _mm256_loadu_ps(acc + r * n + c)));
      for (; c < n; ++c) acc[r * n + c] = std::fma(x[r * n_in + i], w1(v, row, c0 + c), acc[r * n + c]);
    }
  }
}

// Few rows: stream W row by row over a band of columns, accumulators in scratch.
template <int R>
void inout_stream(const InOutView& v, const MatmulArgs& a, int64_t row0, int64_t o0, int64_t o1, float* scratch) {
  const int64_t n_in = a.w->n_in;
  const float* x = a.x + row0 * n_in;
  for (int64_t c0 = o0; c0 < o1; c0 += kStreamCols) {
    const int64_t n = std::min(kStreamCols, o1 - c0);
    float* acc = scratch;          // [R][n]
    float* y = scratch + R * n;    // [R][n]
    std::memset(y, 0, sizeof(float) * static_cast<size_t>(R * n));
    for (int64_t b = 0; b < v.blocks; ++b) {
      std::memset(acc, 0, sizeof(float) * static_cast<size_t>(R * n));
      if (v.int8)
        stream_block<R, true>(v, x, n_in, b * v.block_len, (b + 1) * v.block_len, c0, n, acc);
      else
        stream_block<R, false>(v, x, n_in, b * v.block_len, (b + 1) * v.block_len, c0, n, acc);
      for (int64_t c = 0; c < n; ++c) {
        const float s = scale_of(v, b, c0 + c);
        for (int r = 0; r < R; ++r) y[r * n + c] = std::fma(s, acc[r * n + c], y[r * n + c]);
      }
    }
    for (int r = 0; r < R; ++r) std::memcpy(a.y + (row0 + r) * a.y_stride + c0, y + r * n, sizeof(float) * n);
  }
}

void inout_stream_rows(const InOutView& v, const MatmulArgs& a, int64_t row0, int64_t rows, int64_t o0, int64_t o1,
                       float* scratch) {
  switch (rows) {
    case 1: inout_stream<1>(v, a, row0, o0, o1, scratch); break;
    case 2: inout_stream<2>(v, a, row0, o0, o1, scratch); break;
    case 3: inout_stream<3>(v, a, row0, o0, o1, scratch); break;
    default: inout_stream<4>(v, a, row0, o0, o1, scratch); break;
  }
}

// Register tile: R rows × 16 columns over panel rows [0, k): acc[r] (2 ymm) continues the chains.
template <int R>
inline void tile_kernel(const float* panel, const float* x, int64_t n_in, int64_t k, float* acc /* [R][16] */) {
  __m256 c[R][2];
  for (int r = 0; r < R; ++r) {
    c[r][0] = _mm256_loadu_ps(acc + r * 16);
    c[r][1] = _mm256_loadu_ps(acc + r * 16 + 8);
  }
  for (int64_t i = 0; i < k; ++i) {
    const __m256 w0 = _mm256_load_ps(panel + i * 16), w1v = _mm256_load_ps(panel + i * 16 + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 xb = _mm256_broadcast_ss(x + r * n_in + i);
      c[r][0] = _mm256_fmadd_ps(xb, w0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(xb, w1v, c[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(acc + r * 16, c[r][0]);
    _mm256_storeu_ps(acc + r * 16 + 8, c[r][1]);
  }
}

void tile_rows(int64_t R, const float* panel, const float* x, int64_t n_in, int64_t k, float* acc) {
  switch (R) {
    case 1: tile_kernel<1>(panel, x, n_in, k, acc); break;
    case 2: tile_kernel<2>(panel, x, n_in, k, acc); break;
    case 3: tile_kernel<3>(panel, x, n_in, k, acc); break;
    case 4: tile_kernel<4>(panel, x, n_in, k, acc); break;
    case 5: tile_kernel<5>(panel, x, n_in, k, acc); break;
    default: tile_kernel<6>(panel, x, n_in, k, acc); break;
  }
}

// Many rows: for each band of kBandPanels 16-column panels, repack kPanelK input rows of W into f32
// panels [k][16] (int8 widened once, reused by every row of x; a band reads whole cache lines of each
// weight row), or int8 ones where the table has int8 pair tiles, then run register tiles over all rows.
constexpr int64_t kPrefetchRows = 8;
constexpr int64_t kBandPanels = 16;  // 256 columns: 256 contiguous bytes of each int8 weight row per read

void inout_tiled(const InOutView& v, const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch,
                 avx2::PairTiles pair) {
  const int64_t n_in = a.w->n_in, R = a.n_rows;
  constexpr int64_t kBand = kBandPanels * kPanelCols;
  float* panels = scratch;                              // [kBandPanels][kPanelK][16], 64-byte aligned
  float* acc = panels + kBandPanels * kPanelK * kPanelCols;  // [kBandPanels][R][16]
  float* y = acc + kBandPanels * R * kPanelCols;             // [kBandPanels][R][16]
  int64_t c0 = o0;
  for (; c0 + kPanelCols <= o1; c0 += kBand) {
    const int64_t np = std::min(kBandPanels, (o1 - c0) / kPanelCols);  // whole panels in this band
    std::memset(y, 0, sizeof(float) * static_cast<size_t>(np * R * kPanelCols));
    for (int64_t b = 0; b < v.blocks; ++b) {
      std::memset(acc, 0, sizeof(float) * static_cast<size_t>(np * R * kPanelCols));
      for (int64_t k0 = b * v.block_len; k0 < (b + 1) * v.block_len; k0 += kPanelK) {
        const int64_t k = std::min(kPanelK, (b + 1) * v.block_len - k0);
        const int64_t band_bytes = np * kPanelCols * (v.int8 ? 1 : 4);
        // With int8 pair tiles, the panels of whole pairs stay int8 (widened in registers by the tiles):
        // the band's bytes of each row are copied as they are, [k][n8] bytes at the start of the panels,
        // a quarter of the bytes to write (this loop waits on memory). An odd last panel is widened to f32.
        const int64_t n8 = pair.i8 && v.int8 ? np / 2 * 2 * kPanelCols : 0;  // int8 columns
        int8_t* band8 = reinterpret_cast<int8_t*>(panels);
        for (int64_t i = 0; i < k; ++i) {
          const uint8_t* row = in_row(v, k0 + i);
          // Rows are far apart (one page each for wide matrices): fetch a few rows ahead.
          if (i + kPrefetchRows < k) {
            const uint8_t* ahead = in_row(v, k0 + i + kPrefetchRows) + (c0 * (v.int8 ? 1 : 4));
            for (int64_t off = 0; off < band_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + off), _MM_HINT_T0);
          }
          for (int64_t o = 0; o < n8; o += 32)  // a pair of panels: 32 bytes
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(band8 + i * n8 + o),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c0 + o)));
          for (int64_t p = n8 / kPanelCols; p < np; ++p) {
            float* dst = panels + p * kPanelK * kPanelCols + i * kPanelCols;
            _mm256_store_ps(dst, w8(v, row, c0 + p * kPanelCols));
            _mm256_store_ps(dst + 8, w8(v, row, c0 + p * kPanelCols + 8));
          }
        }
        int64_t p = 0;
        for (; p * kPanelCols < n8; p += 2)
          for (int64_t r = 0; r < R; r += avx2::kPairTileRows)
            pair.i8(std::min(avx2::kPairTileRows, R - r), band8 + p * kPanelCols, n8, a.x + r * n_in + k0, n_in, k,
                    acc + (p * R + r) * kPanelCols, acc + ((p + 1) * R + r) * kPanelCols);
        for (; pair.f32 && p + 2 <= np; p += 2)
          for (int64_t r = 0; r < R; r += avx2::kPairTileRows)
            pair.f32(std::min(avx2::kPairTileRows, R - r), panels + p * kPanelK * kPanelCols, panels + (p + 1) * kPanelK * kPanelCols,
                     a.x + r * n_in + k0, n_in, k, acc + (p * R + r) * kPanelCols, acc + ((p + 1) * R + r) * kPanelCols);
        for (; p < np; ++p)
          for (int64_t r = 0; r < R; r += kTileRows)
            tile_rows(std::min(kTileRows, R - r), panels + p * kPanelK * kPanelCols, a.x + r * n_in + k0, n_in, k,
                      acc + (p * R + r) * kPanelCols);
      }
      for (int64_t p = 0; p < np; ++p)
        for (int64_t c = 0; c < kPanelCols; ++c) {
          const float s = scale_of(v, b, c0 + p * kPanelCols + c);
          for (int64_t r = 0; r < R; ++r) {
            float& yo = y[(p * R + r) * kPanelCols + c];
            yo = std::fma(s, acc[(p * R + r) * kPanelCols + c], yo);
          }
        }
    }
    for (int64_t p = 0; p < np; ++p)
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(a.y + r * a.y_stride + c0 + p * kPanelCols, y + (p * R + r) * kPanelCols, sizeof(float) * kPanelCols);
    if (np < kBandPanels) {
      c0 += np * kPanelCols;
      break;
    }
  }
  if (c0 < o1)  // columns left over: the streaming path computes the same chains
    for (int64_t r = 0; r < R; r += kStreamRows)
      inout_stream_rows(v, a, r, std::min(kStreamRows, R - r), c0, o1, scratch);
}

constexpr int64_t kRowBlock = 256;  // tiled path: rows per pass (bounds scratch; x slab stays in L2)
static_assert(kBandPanels * (kPanelK + 2 * kRowBlock) * kPanelCols <= static_cast<int64_t>(kKernelScratchFloats),
              "inout_tiled's panels, acc and y fit the kernel scratch");

}  // namespace

void avx2::matmul_inout(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch, PairTiles pair) {
  const InOutView v = inout_view(*a.w);
  if (a.n_rows <= kStreamRows) return inout_stream_rows(v, a, 0, a.n_rows, o0, o1, scratch);
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += kRowBlock) {
    MatmulArgs part = a;
    part.x = a.x + r0 * a.w->n_in;
    part.y = a.y + r0 * a.y_stride;
    part.n_rows = std::min(kRowBlock, a.n_rows - r0);
    inout_tiled(v, part, o0, o1, scratch, pair);
  }
}

namespace {

// ---------------------------------------------------------------------------------------------------
// [out, in] rows of f32, f16 or bf16, f32 activations: NO outputs × NR activation rows per tile.

enum class RowType { F32, F16, BF16 };

template <RowType T>
inline __m256 rload8(const uint8_t* p, int64_t i) {
  if constexpr (T == RowType::F32) return load8_f32(p + 4 * i);
  if constexpr (T == RowType::F16) return load8_f16(p + 2 * i);
  return load8_bf16(p + 2 * i);
}
template <RowType T>
inline float rload1(const uint8_t* p, int64_t i) {
  if constexpr (T == RowType::F32) return load_f32(p + 4 * i);
  if constexpr (T == RowType::F16) return f16_scalar(p + 2 * i);
  return load_bf16(p + 2 * i);
}

template <RowType T, int NO, int NR>
void outin_float_tile(const MatmulArgs& a, int64_t o, int64_t r0) {
  const Matrix& w = *a.w;
  const int64_t n = w.n_in, n8 = n / 8 * 8;
  const uint8_t* row[NO];
  for (int j = 0; j < NO; ++j) row[j] = w.data + static_cast<size_t>(o + j) * w.stride();
  const float* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.x + (r0 + r) * n;
  __m256 acc[NO][NR];
  for (int j = 0; j < NO; ++j)
    for (int r = 0; r < NR; ++r) acc[j][r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n8; i += 8) {
    __m256 xv[NR];
    for (int r = 0; r < NR; ++r) xv[r] = _mm256_loadu_ps(x[r] + i);
    for (int j = 0; j < NO; ++j) {
      const __m256 wv = rload8<T>(row[j], i);
      for (int r = 0; r < NR; ++r) acc[j][r] = _mm256_fmadd_ps(xv[r], wv, acc[j][r]);
    }
  }
  for (int j = 0; j < NO; ++j)
    for (int r = 0; r < NR; ++r) {
      float s = hsum8(acc[j][r]);
      for (int64_t i = n8; i < n; ++i) s = std::fma(x[r][i], rload1<T>(row[j], i), s);
      a.y[(r0 + r) * a.y_stride + o + j] = s;
    }
}

template <RowType T>
void outin_float(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t R = a.n_rows;
  if (R == 1) {
    int64_t o = o0;
    for (; o + 4 <= o1; o += 4) outin_float_tile<T, 4, 1>(a, o, 0);
    for (; o < o1; ++o) outin_float_tile<T, 1, 1>(a, o, 0);
    return;
  }
  int64_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    int64_t r = 0;
    for (; r + 3 <= R; r += 3) outin_float_tile<T, 4, 3>(a, o, r);
    for (; r < R; ++r) outin_float_tile<T, 4, 1>(a, o, r);
  }
  for (; o < o1; ++o)
    for (int64_t r = 0; r < R; ++r) outin_float_tile<T, 1, 1>(a, o, r);
}

// ---------------------------------------------------------------------------------------------------
// [out, in] q8_0 / q4_0 rows against q8_0 activations.

constexpr int64_t kQ8Bytes = 34;  // f16 d + 32 int8
constexpr int64_t kQ4Bytes = 18;  // f16 d + 16 bytes of nibbles


template <GgmlType T, int NO, int NR>
void outin_q_tile(const MatmulArgs& a, int64_t o, int64_t r0) {
  constexpr int64_t B = T == GgmlType::Q8_0 ? kQ8Bytes : kQ4Bytes;
  const Matrix& w = *a.w;
  const int64_t nb = w.n_in / 32;
  const size_t xrow = static_cast<size_t>(nb) * kQ8Bytes;
  const uint8_t* row[NO];
  for (int j = 0; j < NO; ++j) row[j] = w.data + static_cast<size_t>(o + j) * w.stride();
  const uint8_t* x[NR];
  for (int r = 0; r < NR; ++r) x[r] = a.xq + static_cast<size_t>(r0 + r) * xrow;
  __m256 acc[NO][NR];
  for (int j = 0; j < NO; ++j)
    for (int r = 0; r < NR; ++r) acc[j][r] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t k = 0; k < nb; ++k) {
    float dx[NR];
    __m256i xv[NR];
    __m256i xsum8[NR];  // q4_0: per lane, 8 × the sum of the lane's 4 activations
    for (int r = 0; r < NR; ++r) {
      const uint8_t* xb = x[r] + k * kQ8Bytes;
      dx[r] = f16_scalar(xb);
      xv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 2));
      if constexpr (T == GgmlType::Q4_0)
        xsum8[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), xv[r]), ones);
    }
    // One weight block at a time, against every activation row of the tile. The int32 lanes are exact:
    // q8_0 by the sign trick (|w| ≤ 127, so maddubs cannot saturate); q4_0 as Σ nibble·x − 8·Σx, the
    // unsigned nibbles feeding maddubs directly. Both give Σ w·x per lane, the same integers either way.
    for (int j = 0; j < NO; ++j) {
      const uint8_t* b = row[j] + k * B;
      const float dw = f16_scalar(b);
      if constexpr (T == GgmlType::Q8_0) {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
        const __m256i wa = _mm256_sign_epi8(wq, wq);
        for (int r = 0; r < NR; ++r) {
          const __m256i p16 = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xv[r], wq));
          const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
          acc[j][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[r]), p, acc[j][r]);
        }
      } else {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
        const __m128i m = _mm_set1_epi8(0x0f);
        const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
        for (int r = 0; r < NR; ++r) {
          const __m256i lanes = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(nib, xv[r]), ones), xsum8[r]);
          acc[j][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[r]), _mm256_cvtepi32_ps(lanes), acc[j][r]);
        }
      }
    }
  }
  for (int j = 0; j < NO; ++j)
    for (int r = 0; r < NR; ++r) a.y[(r0 + r) * a.y_stride + o + j] = hsum8(acc[j][r]);
}

// Rows of activations per pass of the tiled q8 path: their blocks stay in L2 while every output
// tile of the range streams past them.
constexpr int64_t kQRowBlock = 64;

// Decode (a few rows, e.g. one token per sequence of a server's batch): every row against each weight
// block as it streams past, so the weights are read once whatever the row count.
template <GgmlType T, int NO, int NR>
void outin_q_rows(const MatmulArgs& a, int64_t o0, int64_t o1) {
  int64_t o = o0;
  for (; o + NO <= o1; o += NO) outin_q_tile<T, NO, NR>(a, o, 0);
  for (; o < o1; ++o) outin_q_tile<T, 1, NR>(a, o, 0);
}

template <GgmlType T>
void outin_q(const MatmulArgs& a, int64_t o0, int64_t o1) {
  const int64_t R = a.n_rows;
  // Tiles sized to the 16 ymm registers (accumulators + activation blocks).
  if (R == 1) return outin_q_rows<T, 4, 1>(a, o0, o1);
  if (R == 2) return outin_q_rows<T, 4, 2>(a, o0, o1);
  if (R == 3) return outin_q_rows<T, 3, 3>(a, o0, o1);
  for (int64_t rb = 0; rb < R; rb += kQRowBlock) {
    const int64_t re = std::min(R, rb + kQRowBlock);
    int64_t o = o0;
    for (; o + 3 <= o1; o += 3) {
      int64_t r = rb;
      for (; r + 4 <= re; r += 4) outin_q_tile<T, 3, 4>(a, o, r);
      for (; r < re; ++r) outin_q_tile<T, 3, 1>(a, o, r);
    }
    for (; o < o1; ++o)
      for (int64_t r = rb; r < re; ++r) outin_q_tile<T, 1, 1>(a, o, r);
  }
}

// Other ggml types: dequantise each weight row once per call (exact, ggml's arithmetic), then f32 dots
// in the same 8-lane order as the f32 rows.
void outin_dequant(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const Matrix& w = *a.w;
  const int64_t n = w.n_in, n8 = n / 8 * 8;
  float* row = scratch;  // [n_in] (n_in ≤ kKernelScratchFloats, checked by the dispatcher)
  for (int64_t o = o0; o < o1; ++o) {
    dequantize_row(w.ggml, w.data + static_cast<size_t>(o) * w.stride(), row, n);
    for (int64_t r = 0; r < a.n_rows; ++r) {
      const float* x = a.x + r * n;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t i = 0; i < n8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(row + i), acc);
      float s = hsum8(acc);
      for (int64_t i = n8; i < n; ++i) s = std::fma(x[i], row[i], s);
      a.y[r * a.y_stride + o] = s;
    }
  }
}

bool q8_activations(const Matrix& w) {
  return w.format == WeightFormat::Ggml && w.layout == Layout::OutIn &&
         (w.ggml == GgmlType::Q8_0 || w.ggml == GgmlType::Q4_0);
}

ActFormat avx2_act_format(const Matrix& w) {
  if (q8_activations(w)) return ActFormat::Q8_0;
  if (avx2::kquant_covers(w)) return ActFormat::Q8_K;
  return avx2::iquant_act_format(w);  // F32 when not an i-quant either
}

void avx2_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const Matrix& w = *a.w;
  if (w.layout == Layout::InOut) return avx2::matmul_inout(a, o0, o1, scratch, {});
  if (avx2::kquant_covers(w)) return avx2::kquant_matmul(a, o0, o1, scratch);
  if (avx2::iquant_covers(w)) return avx2::iquant_matmul(a, o0, o1, scratch);
  switch (w.format) {
    case WeightFormat::F32: return outin_float<RowType::F32>(a, o0, o1);
    case WeightFormat::XaiInt8: break;  // xAI int8 is always [in, out]
    case WeightFormat::Ggml:
      switch (w.ggml) {
        case GgmlType::F32: return outin_float<RowType::F32>(a, o0, o1);
        case GgmlType::F16: return outin_float<RowType::F16>(a, o0, o1);
        case GgmlType::BF16: return outin_float<RowType::BF16>(a, o0, o1);
        case GgmlType::Q8_0: return outin_q<GgmlType::Q8_0>(a, o0, o1);
        case GgmlType::Q4_0: return outin_q<GgmlType::Q4_0>(a, o0, o1);
        default: return outin_dequant(a, o0, o1, scratch);
      }
  }
  reference_kernels().matmul(a, o0, o1, scratch);
}

// ---------------------------------------------------------------------------------------------------
// Attention helpers.

template <KvType T>
inline __m256 kv8(const void* base, int64_t i) {
  const uint8_t* p = static_cast<const uint8_t*>(base);
  if constexpr (T == KvType::F32) return load8_f32(p + 4 * i);
  if constexpr (T == KvType::F16) return load8_f16(p + 2 * i);
  return load8_bf16(p + 2 * i);
}
template <KvType T>
inline float kv1(const void* base, int64_t i) {
  const uint8_t* p = static_cast<const uint8_t*>(base);
  if constexpr (T == KvType::F32) return load_f32(p + 4 * i);
  if constexpr (T == KvType::F16) return f16_scalar(p + 2 * i);
  return load_bf16(p + 2 * i);
}

template <KvType T>
void dots_t(const float* q, const void* K, int64_t stride, int64_t n, int64_t hd, float* out) {
  const int64_t h8 = hd / 8 * 8;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t row = j * stride;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < h8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv8<T>(K, row + i), acc);
    float s = hsum8(acc);
    for (int64_t i = h8; i < hd; ++i) s = std::fma(q[i], kv1<T>(K, row + i), s);
    out[j] = s;
  }
}

template <KvType T>
void weighted_sum_t(const float* p, const void* V, int64_t stride, int64_t n, int64_t hd, float* out) {
  constexpr int64_t kBand = 64;  // output floats held in registers (8 ymm)
  int64_t i0 = 0;
  for (; i0 + kBand <= hd; i0 += kBand) {
    __m256 acc[8];
    for (auto& v : acc) v = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const int64_t row = j * stride + i0;
      for (int k = 0; k < 8; ++k) acc[k] = _mm256_fmadd_ps(pj, kv8<T>(V, row + 8 * k), acc[k]);
    }
    for (int k = 0; k < 8; ++k) _mm256_storeu_ps(out + i0 + 8 * k, acc[k]);
  }
  for (int64_t i = i0; i < hd; ++i) {
    float s = 0.f;
    for (int64_t j = 0; j < n; ++j) s = std::fma(p[j], kv1<T>(V, j * stride + i), s);
    out[i] = s;
  }
}

void avx2_dots(const float* q, const void* K, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  switch (t) {
    case KvType::F32: return dots_t<KvType::F32>(q, K, stride, n, hd, out);
    case KvType::F16: return dots_t<KvType::F16>(q, K, stride, n, hd, out);
    case KvType::BF16: return dots_t<KvType::BF16>(q, K, stride, n, hd, out);
  }
}

void avx2_weighted_sum(const float* p, const void* V, KvType t, int64_t stride, int64_t n, int64_t hd, float* out) {
  switch (t) {
    case KvType::F32: return weighted_sum_t<KvType::F32>(p, V, stride, n, hd, out);
    case KvType::F16: return weighted_sum_t<KvType::F16>(p, V, stride, n, hd, out);
    case KvType::BF16: return weighted_sum_t<KvType::BF16>(p, V, stride, n, hd, out);
  }
}

}  // namespace

const Kernels* avx2_kernels() {
  static const Kernels k = [] {
    Kernels f = reference_kernels();
    f.name = "avx2";
    f.act_format = avx2_act_format;
    f.quantize_q8_K = avx2::quantize_q8_K;
    f.quantize_q8_0 = avx2::quantize_q8_0;
    f.matmul = avx2_matmul;
    f.dots = avx2_dots;
    f.weighted_sum = avx2_weighted_sum;
    f.gelu_tanh = avx2::gelu_tanh;
    f.soft_cap = avx2::soft_cap;
    f.softmax = avx2::softmax;
    return f;
  }();
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("f16c");
  return ok ? &k : nullptr;
}

}  // namespace groak

#pragma GCC pop_options

#else
namespace groak {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace groak
#endif
