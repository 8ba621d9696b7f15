// ggml's k-quants (256-element super-blocks, block_q2_K … block_q6_K in ggml-common.h, QK_K = 256,
// K_SCALE_SIZE = 12): exact dequantisation as dequantize_row_*, and q8_K, the form k-quant products read
// their activations in (ggml-quants.c). The k-quant quantizers live in quantize_kquants.cpp.
#include <algorithm>
#include <cassert>
#include <cmath>

#include "kernels/quant_impl.h"
#include "kernels/tensor.h"
#include "util/error.h"

namespace groak {
namespace quant {

namespace {

// Q2_K: 16 sub-blocks of 16. Element e = 128·h + 32·s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1 of
// qs[32·h + l]; its sub-block is 8·h + 2·s + l/16, whose byte in scales[] holds the 4-bit scale (low) and
// 4-bit min (high): y = (d·scale)·q − (dmin·min).
void dq_q2_K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = load_half(b + 80), dmin = load_half(b + 82);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[8 * h + 2 * s + half];
        const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int q = (qs[32 * h + l] >> (2 * s)) & 3;
          y[128 * h + 32 * s + l] = dl * static_cast<float>(q) - ml;
        }
      }
    }
  }
}

// Q3_K: like Q2_K's order for the low 2 bits; the third bit of element 128·h + 32·s + l is bit 4·h + s of
// hmask[l] (set = +0, clear = −4). The 16 scales are 6-bit, biased by 32, packed in 12 bytes: low nibble
// from scales[j] (j < 8) or the high nibble of scales[j − 8]; top 2 bits from scales[8 + j%4] >> 2·(j/4).
void dq_q3_K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* packed = b + 96;
  const float d = load_half(b + 108);
  int scale[16];
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (packed[j] & 0x0f) : (packed[j - 8] >> 4);
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    scale[j] = (lo | (hi << 4)) - 32;
  }
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      const int hbit = 4 * h + s;
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(scale[8 * h + 2 * s + half]);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int q = ((qs[32 * h + l] >> (2 * s)) & 3) - (((hmask[l] >> hbit) & 1) ? 0 : 4);
          y[128 * h + 32 * s + l] = dl * static_cast<float>(q);
        }
      }
    }
  }
}

// Q4_K: 8 sub-blocks of 32. Chunk c < 4 covers elements 64c … 64c+63: the low nibbles of qs[32c + l] are
// sub-block 2c, the high nibbles sub-block 2c+1; y = (d·scale)·q − (dmin·min).
void dq_q4_K(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * static_cast<float>(qs[32 * c + l] & 0x0f) - m1;
    for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * static_cast<float>(qs[32 * c + l] >> 4) - m2;
  }
}

// Q5_K: Q4_K plus a fifth bit: qh[l] bit 2c for element 64c + l, bit 2c+1 for element 64c + 32 + l.
void dq_q5_K(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    scale_min_k4(2 * c, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * c + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[32 * c + l] & 0x0f) + (((qh[l] >> (2 * c)) & 1) ? 16 : 0);
      y[64 * c + l] = d1 * static_cast<float>(q) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[32 * c + l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) ? 16 : 0);
      y[64 * c + 32 + l] = d2 * static_cast<float>(q) - m2;
    }
  }
}

// Q6_K: 16 sub-blocks of 16, int8 scales. Half h < 2 covers elements 128h …: for l < 32 and r < 4,
// element 128h + 32r + l takes its low 4 bits from ql[64h + l + 32·(r&1)] (low nibble for r < 2, high
// for r ≥ 2) and its top 2 bits from bits 2r..2r+1 of qh[32h + l]; its scale is scales[8h + 2r + l/16];
// y = (d·scale)·(q − 32).
void dq_q6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const uint8_t* scales = b + 192;
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int r = 0; r < 4; ++r) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lowbyte = ql[64 * h + l + 32 * (r & 1)];
        const int lo = r < 2 ? (lowbyte & 0x0f) : (lowbyte >> 4);
        const int hi = (qh[32 * h + l] >> (2 * r)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        const int8_t sc = static_cast<int8_t>(scales[8 * h + 2 * r + l / 16]);
        y[128 * h + 32 * r + l] = d * static_cast<float>(sc) * static_cast<float>(q);
      }
    }
  }
}

}  // namespace

BlockDequant kquant_dequant(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: return dq_q2_K;
    case GgmlType::Q3_K: return dq_q3_K;
    case GgmlType::Q4_K: return dq_q4_K;
    case GgmlType::Q5_K: return dq_q5_K;
    case GgmlType::Q6_K: return dq_q6_K;
    default: return nullptr;
  }
}

}  // namespace quant

using quant::load_half;
using quant::nearest_int;

size_t q8_K_row_bytes(int64_t n) {
  if (n < 0 || n % kQK_K != 0) {
    throw Error("row of " + std::to_string(n) + " activations cannot be quantised to q8_K: the length must be a " +
                "non-negative multiple of " + std::to_string(kQK_K));
  }
  return static_cast<size_t>(n / kQK_K) * kQ8_KBlockBytes;
}

// quantize_row_q8_K_ref, block by block. Layout of a block: d at byte 0, qs at 4, bsums at 260.
void quantize_row_q8_K(const float* x, uint8_t* dst, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t i = 0; i < n; i += kQK_K, x += kQK_K, dst += kQ8_KBlockBytes) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];
    float d = 0.f;
    if (!amax) {
      std::memset(qs, 0, sizeof qs);
      std::memset(bsums, 0, sizeof bsums);  // ggml leaves them unwritten: every sum of zeros is 0
    } else {
      const float iscale = -127.f / max;
      // |iscale·x| ≤ 127 for finite x (plus a rounding step), so the int8 cast below is exact.
      for (int j = 0; j < kQK_K; ++j) qs[j] = static_cast<int8_t>(std::max(-128, std::min(127, nearest_int(iscale * x[j]))));
      for (int j = 0; j < kQK_K / 16; ++j) {
        int sum = 0;
        for (int ii = 0; ii < 16; ++ii) sum += qs[16 * j + ii];
        bsums[j] = static_cast<int16_t>(sum);
      }
      d = 1 / iscale;
    }
    std::memcpy(dst, &d, 4);
    std::memcpy(dst + 4, qs, kQK_K);
    std::memcpy(dst + 4 + kQK_K, bsums, sizeof bsums);
  }
}

void dequantize_row_q8_K(const uint8_t* src, float* dst, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t i = 0; i < n; i += kQK_K, src += kQ8_KBlockBytes) {
    const float d = load_f32(src);
    for (int j = 0; j < kQK_K; ++j) dst[i + j] = d * static_cast<float>(static_cast<int8_t>(src[4 + j]));
  }
}

}  // namespace groak
