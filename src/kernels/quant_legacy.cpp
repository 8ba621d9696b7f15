// ggml's legacy 32-element blocks (block_q4_0 … block_q8_0 in ggml-common.h): exact dequantisation in
// the element order and float expressions of dequantize_row_* (ggml-quants.c), and the reference
// quantizers quantize_row_{q8_0,q4_0}_ref.
#include <algorithm>
#include <cmath>

#include "kernels/quant_impl.h"

namespace groak::quant {

namespace {

// Dequantisation of one block: b = the block's bytes, y = its block_size() outputs. The float expressions
// keep ggml's order of operations so the results are bit-identical to dequantize_row_*.

// Q4_0: y[j] = d·(lo nibble of qs[j] − 8), y[j+16] = d·(hi nibble − 8).
void dq_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1: y = d·nibble + m.
void dq_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0: 5-bit q = nibble | (bit j of the little-endian u32 qh) << 4 (element j+16 uses bit j+16); y = d·(q − 16).
void dq_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(q0 - 16) * d;
    y[j + 16] = static_cast<float>(q1 - 16) * d;
  }
}

// Q5_1: same 5-bit q, y = d·q + m.
void dq_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int q0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int q1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(q0) * d + m;
    y[j + 16] = static_cast<float>(q1) * d + m;
  }
}

// Q8_0: y = d·q, q int8.
void dq_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// quantize_row_q8_0_ref: d = amax/127, q = round(x/d) half away from zero.
void q_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  for (int j = 0; j < 32; ++j) {
    const float v = std::round(x[j] * id);  // roundf in the reference; |v| ≤ 127 for finite input
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::isnan(v) ? 0.f : std::clamp(v, -127.f, 127.f)));
  }
}

// quantize_row_q4_0_ref: d = (signed value of largest magnitude)/−8, so that value maps to q = 0 exactly;
// q = min(15, trunc(x/d + 8.5)).
void q_q4_0(const float* x, uint8_t* b) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  store_half(b, d);
  for (int j = 0; j < 16; ++j) {
    const int q0 = trunc_clamped(x[j] * id + 8.5f, 0, 15);
    const int q1 = trunc_clamped(x[j + 16] * id + 8.5f, 0, 15);
    b[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

}  // namespace

BlockDequant legacy_dequant(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return dq_q4_0;
    case GgmlType::Q4_1: return dq_q4_1;
    case GgmlType::Q5_0: return dq_q5_0;
    case GgmlType::Q5_1: return dq_q5_1;
    case GgmlType::Q8_0: return dq_q8_0;
    default: return nullptr;
  }
}

BlockQuant legacy_quant(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0: return q_q8_0;
    case GgmlType::Q4_0: return q_q4_0;
    default: return nullptr;
  }
}

RowQuant legacy_row_quant(GgmlType) { return nullptr; }

}  // namespace groak::quant
