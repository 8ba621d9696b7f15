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

// Round to nearest, ties to even: what ggml's nearest_int computes (by adding 1.5·2^23) for the
// |x| ≤ 4194303 it is defined on. Saturates outside that and maps NaN to 0 so that no input is UB.
inline int nearest_int(float x) {
  constexpr float kLimit = 4194303.f;
  if (!(std::fabs(x) <= kLimit)) return std::isnan(x) ? 0 : (x > 0 ? 4194303 : -4194303);
  return static_cast<int>(std::nearbyint(x));  // default rounding mode: to nearest even
}

// (int)v with C truncation, clamped to [lo, hi]; NaN → lo. Matches the `(int8_t)(x + 8.5f)` casts of the
// reference quantizers for every value they can produce from finite input.
inline int trunc_clamped(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
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
BlockDequant kquant_dequant(GgmlType t);  // quant_kquants.cpp: Q2_K … Q6_K
BlockQuant kquant_quant(GgmlType t);
BlockDequant iquant_dequant(GgmlType t);  // quant_iquants.cpp: IQ1_S … IQ4_XS, TQ1_0, TQ2_0, MXFP4
// Row quantizers (null where the family has none for t, or only a BlockQuant).
RowQuant legacy_row_quant(GgmlType t);
RowQuant kquant_row_quant(GgmlType t);
RowQuant iquant_row_quant(GgmlType t);

}  // namespace groak::quant
