// What the per-family files of quant.cpp share (internal to kernels/): half-precision loads, ggml's
// rounding helpers, and each family's table of block routines. A block routine handles one block:
// b = the block's bytes, y / x = its block_size() values.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/quant.h"

namespace groak::quant {

inline float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}
inline void store_half(uint8_t* p, float f) {
  const uint16_t h = f32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// Quantisation helpers (ggml-quants.c)

// ggml's nearest_int, bit for bit: add 1.5·2^23 so the float adder rounds to an integer (to nearest, ties
// to even), then read that integer out of the mantissa. For |x| ≤ 4194303 this is round-half-even; outside
// that (and for ±inf, NaN, which ggml's quantizers meet on degenerate blocks) it is whatever the mantissa
// holds, in [−2^22, 2^22), exactly as ggml computes it (no UB: the bits go through memcpy), so even
// those blocks come out byte-identical to llama.cpp.
inline int nearest_int(float x) {
  constexpr float kRoundingBias = 12582912.f;  // 1.5·2^23: the sum's ulp is 1
  const float biased = x + kRoundingBias;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// The low byte of what x86-64 computes for C's `(int8_t)v` / `(uint8_t)v` (cvttss2si: truncate to int32,
// and 0x80000000 for NaN, ±inf and anything out of int32 range), as ggml's legacy reference quantizers
// compile on x86-64. Used where a block with a degenerate scale (1/d = inf) must still match ggml byte for
// byte; for ordinary input it is plain truncation.
inline uint8_t truncated_low_byte(float v) {
  constexpr float kInt32Limit = 2147483648.f;  // 2^31
  if (!(v >= -kInt32Limit && v < kInt32Limit)) return 0;
  return static_cast<uint8_t>(static_cast<uint32_t>(static_cast<int32_t>(v)) & 0xffu);
}

// The 6-bit scale and min of sub-block j (< 8) of a Q4_K/Q5_K block (ggml's get_scale_min_k4): j < 4 in
// the low 6 bits of bytes j and j+4; j ≥ 4 as nibbles of byte j+4 with the top 2 bits in the spare high
// bits of bytes j−4 (scale) and j (min).
inline void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

using BlockDequant = void (*)(const uint8_t* b, float* y);
using BlockQuant = void (*)(const float* x, uint8_t* b);
// A whole row x[0, n) (n a multiple of the block size) with llama.cpp's per-column importances
// imatrix[0, n) (its quant_weights; null: none), as ggml's quantize_<type>(x, dst, 1, n, imatrix). For the
// types whose rounding search can be weighted; a type with only a BlockQuant ignores an imatrix (as ggml).
using RowQuant = void (*)(const float* x, uint8_t* dst, int64_t n, const float* imatrix);

// Each family's routines for a type; null when the type is not of the family (or has no quantizer).
BlockDequant legacy_dequant(GgmlType t);  // quant_legacy.cpp: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
BlockQuant legacy_quant(GgmlType t);
BlockDequant kquant_dequant(GgmlType t);  // quant_kquants.cpp: Q2_K … Q6_K (their quantizers: RowQuant only)
BlockDequant iquant_dequant(GgmlType t);  // quant_iquants.cpp: IQ1_S … IQ4_XS, TQ1_0, TQ2_0, MXFP4
// Row quantizers (null where the family has none for t, or only a BlockQuant).
RowQuant legacy_row_quant(GgmlType t);
RowQuant kquant_row_quant(GgmlType t);  // quantize_kquants.cpp: Q2_K … Q6_K, then ternary_row_quant
RowQuant iquant_row_quant(GgmlType t);
RowQuant ternary_row_quant(GgmlType t);  // quantize_ternary.cpp: TQ1_0, TQ2_0 (reached through kquant_row_quant)

}  // namespace groak::quant
