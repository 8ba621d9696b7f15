// Quantizers for ggml's ternary types TQ1_0 and TQ2_0 (BitNet b1.58 / TriLM weights in {−d, 0, d}; their
// layouts and dequantisation are in quant_iquants.cpp), writing exactly the bytes of llama.cpp's
// quantize_row_tq{1,2}_0_ref. ggml_quantize_chunk ignores an importance matrix for both, and so do these.
#include <cmath>

#include "kernels/quant_impl.h"

namespace groak::quant {

namespace {

constexpr int kTq1Bytes = 54;  // qs[48], qh[4], d
constexpr int kTq2Bytes = 66;  // qs[64], d

// ggml's `lroundf(v) + 1`: the trit 0, 1, 2 for v ≈ −1, 0, 1 (rounding half away from zero). v is x/amax,
// so |v| ≤ 1 except when 1/amax overflows (amax subnormal): then v is ±inf or NaN, where glibc's lroundf
// returns LONG_MIN on x86-64, whose int conversion is 0, giving trit 1.
inline int trit(float v) {
  if (!std::isfinite(v)) return 1;
  return static_cast<int>(std::lround(v)) + 1;
}

// d = the block's largest |x| (ggml's MAX order), stored as f16; returns 1/d (0 for an all-zero block).
float ternary_scale(const float* x, uint8_t* d_at) {
  float amax = 0;
  for (int j = 0; j < kQK_K; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
  store_half(d_at, amax);
  return amax ? 1.0f / amax : 0.0f;
}

// Five (or four, then ×3 so the first trit is the most significant of five) trits as a base-3 number v
// (uint8 arithmetic as ggml), stored as ⌈v·256/243⌉ so the decoder can read digits by multiplying.
inline uint8_t pack_trits(const float* x, int stride, int count, float id) {
  uint8_t q = 0;
  for (int n = 0; n < count; ++n) q = static_cast<uint8_t>(q * 3 + trit(x[n * stride] * id));
  if (count == 4) q = static_cast<uint8_t>(q * 3);
  constexpr int kPow3_5 = 243;
  return static_cast<uint8_t>((static_cast<int>(q) * 256 + (kPow3_5 - 1)) / kPow3_5);
}

// quantize_row_tq1_0_ref. Element order (as dq_tq1_0 reads it): qs[0…31] hold elements m + 32n (n < 5),
// qs[32…47] hold 160 + m + 16n, qh[0…3] hold 240 + m + 4n (n < 4).
void q_tq1_0(const float* x, uint8_t* b) {
  const float id = ternary_scale(x, b + 52);
  for (int m = 0; m < 32; ++m) b[m] = pack_trits(x + m, 32, 5, id);
  for (int m = 0; m < 16; ++m) b[32 + m] = pack_trits(x + 160 + m, 16, 5, id);
  for (int m = 0; m < 4; ++m) b[48 + m] = pack_trits(x + 240 + m, 4, 4, id);
}

// quantize_row_tq2_0_ref: element 128h + 32n + m at bits 2n of qs[32h + m], stored as trit (0, 1, 2).
void q_tq2_0(const float* x, uint8_t* b) {
  const float id = ternary_scale(x, b + 64);
  for (int h = 0; h < 2; ++h) {
    for (int m = 0; m < 32; ++m) {
      unsigned q = 0;
      for (int n = 0; n < 4; ++n) q += static_cast<unsigned>(trit(x[128 * h + 32 * n + m] * id) & 3) << (2 * n);
      b[32 * h + m] = static_cast<uint8_t>(q);
    }
  }
}

template <BlockQuant kQuant, int kBytes>
void ternary_row(const float* x, uint8_t* dst, int64_t n, const float* /*imatrix: unused, as ggml*/) {
  for (int64_t i = 0; i < n; i += kQK_K, dst += kBytes) kQuant(x + i, dst);
}

}  // namespace

RowQuant ternary_row_quant(GgmlType t) {
  switch (t) {
    case GgmlType::TQ1_0: return ternary_row<q_tq1_0, kTq1Bytes>;
    case GgmlType::TQ2_0: return ternary_row<q_tq2_0, kTq2Bytes>;
    default: return nullptr;
  }
}

}  // namespace groak::quant
