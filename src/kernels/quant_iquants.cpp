// ggml's codebook ("i-") quants, ternary quants and MXFP4: exact dequantisation of one block, in the element
// order and float expressions of llama.cpp's dequantize_row_* (ggml/src/ggml-quants.c, c392e5094; MXFP4 from
// the later ggml that added it), so every value equals llama.cpp's bit for bit. Block layouts are those of
// ggml-common.h (the byte offsets are spelled out at each function); the codebooks are in
// quant_iquants_grids.{h,cpp}. The quantizers live in quantize_iq*.cpp (quantize_iquants.h).
//
// Most of them share one shape: a 256-element super-block with an f16 scale d, 8 sub-blocks of 32, each
// with a small integer scale, and groups of 8 (or 4) weights given by an index into a grid of magnitudes
// plus sign bits. The value of a weight is d · f(scale) · grid[j] · sign.
#include <cstring>

#include "kernels/quant_iquants_grids.h"
#include "kernels/quant_impl.h"
#include "kernels/quantize_iquants.h"

namespace groak::quant {

namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// Element j of a grid entry (byte j, little-endian).
inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }
inline float sign_of(uint8_t signs, int j) { return (signs >> j) & 1u ? -1.f : 1.f; }

// IQ2_XXS (66 bytes: f16 d, uint16 qs[32]). Sub-block s < 8 is the two uint32 at bytes 2 + 8s: the bytes of
// the first are 4 grid indices (iq2xxs_grid, 8 weights each); the second holds 4 × 7 sign bits (ksigns) in
// bits 0…27 and the 4-bit scale in bits 28…31: y = d·(0.5 + scale)·0.25 · grid · sign.
void dq_iq2_xxs(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int s = 0; s < 8; ++s, y += 32) {
    const uint32_t idx = load_u32(b + 2 + 8 * s), aux = load_u32(b + 6 + 8 * s);
    const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      const uint64_t g = iq2xxs_grid[(idx >> (8 * l)) & 0xff];
      const uint8_t signs = ksigns_iq2xs((aux >> (7 * l)) & 127);
      for (int j = 0; j < 8; ++j) y[8 * l + j] = db * static_cast<float>(grid_byte(g, j)) * sign_of(signs, j);
    }
  }
}

// IQ2_XS (74 bytes: f16 d, uint16 qs[32], scales[8]). Group g < 32 of 8 weights is qs[g]: a 9-bit index into
// iq2xs_grid and 7 sign bits (ksigns) above it. Sub-block s has two 4-bit scales in scales[s]: the low one
// for its first 16 weights, the high one for the last 16: y = d·(0.5 + scale)·0.25 · grid · sign.
void dq_iq2_xs(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* scales = b + 66;
  for (int s = 0; s < 8; ++s, y += 32) {
    const float db[2] = {d * (0.5f + static_cast<float>(scales[s] & 0xf)) * 0.25f,
                         d * (0.5f + static_cast<float>(scales[s] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const uint16_t q = load_u16(b + 2 + 2 * (4 * s + l));
      const uint64_t g = iq2xs_grid[q & 511];
      const uint8_t signs = ksigns_iq2xs(q >> 9);
      for (int j = 0; j < 8; ++j) y[8 * l + j] = db[l / 2] * static_cast<float>(grid_byte(g, j)) * sign_of(signs, j);
    }
  }
}

// IQ2_S (82 bytes: f16 d, qs[32] grid index low bytes, signs[32] (8 explicit sign bits per group), qh[8],
// scales[8]). Group 4s + l takes index bits 8…9 from bits 2l…2l+1 of qh[s] (iq2s_grid has 1024 entries);
// scales as IQ2_XS.
void dq_iq2_s(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  const uint8_t* signs = b + 34;
  const uint8_t* qh = b + 66;
  const uint8_t* scales = b + 74;
  for (int s = 0; s < 8; ++s, y += 32) {
    const float db[2] = {d * (0.5f + static_cast<float>(scales[s] & 0xf)) * 0.25f,
                         d * (0.5f + static_cast<float>(scales[s] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const uint64_t g = iq2s_grid[qs[4 * s + l] | ((qh[s] << (8 - 2 * l)) & 0x300)];
      for (int j = 0; j < 8; ++j)
        y[8 * l + j] = db[l / 2] * static_cast<float>(grid_byte(g, j)) * sign_of(signs[4 * s + l], j);
    }
  }
}

// IQ3_XXS (98 bytes: f16 d, qs[64] grid indices (iq3xxs_grid, 4 weights each), then 8 uint32 of scales and
// signs). Sub-block s: indices qs[8s … 8s+7]; its uint32 holds 4 × 7 sign bits (ksigns, one byte of signs
// per 8 weights) and the 4-bit scale in bits 28…31: y = d·(0.5 + scale)·0.5 · grid · sign.
void dq_iq3_xxs(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int s = 0; s < 8; ++s, y += 32) {
    const uint32_t aux = load_u32(b + 66 + 4 * s);
    const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
    for (int l = 0; l < 4; ++l) {
      const uint8_t signs = ksigns_iq2xs((aux >> (7 * l)) & 127);
      const uint32_t g1 = iq3xxs_grid[qs[8 * s + 2 * l]], g2 = iq3xxs_grid[qs[8 * s + 2 * l + 1]];
      for (int j = 0; j < 4; ++j) {
        y[8 * l + j] = db * static_cast<float>(grid_byte(g1, j)) * sign_of(signs, j);
        y[8 * l + j + 4] = db * static_cast<float>(grid_byte(g2, j)) * sign_of(signs, j + 4);
      }
    }
  }
}

// IQ3_S (110 bytes: f16 d, qs[64] index low bytes, qh[8] index bit 8, signs[32], scales[4]). Sub-block s:
// indices qs[8s + k] | bit k of qh[s] << 8 (iq3s_grid, 4 weights each), sign byte signs[4s + l] for
// weights 8l … 8l+7; its 4-bit scale is nibble s%2 of scales[s/2]: y = d·(1 + 2·scale) · grid · sign.
void dq_iq3_s(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  const uint8_t* qh = b + 66;
  const uint8_t* signs = b + 74;
  const uint8_t* scales = b + 106;
  for (int s = 0; s < 8; ++s, y += 32) {
    const float db = d * static_cast<float>(1 + 2 * ((scales[s / 2] >> (4 * (s % 2))) & 0xf));
    for (int l = 0; l < 4; ++l) {
      const uint32_t g1 = iq3s_grid[qs[8 * s + 2 * l] | ((qh[s] << (8 - 2 * l)) & 256)];
      const uint32_t g2 = iq3s_grid[qs[8 * s + 2 * l + 1] | ((qh[s] << (7 - 2 * l)) & 256)];
      for (int j = 0; j < 4; ++j) {
        y[8 * l + j] = db * static_cast<float>(grid_byte(g1, j)) * sign_of(signs[4 * s + l], j);
        y[8 * l + j + 4] = db * static_cast<float>(grid_byte(g2, j)) * sign_of(signs[4 * s + l], j + 4);
      }
    }
  }
}

// IQ1_S (50 bytes: f16 d, qs[32], uint16 qh[8]). Group 4s + l of 8 weights: 11-bit index qs[4s + l] |
// bits 3l…3l+2 of qh[s] << 8 into the ternary iq1s_grid; qh[s] bits 12…14 are the sub-block's 3-bit scale
// and bit 15 the sign of its shift δ = ±1/8: y = d·(2·scale + 1) · (grid + δ).
void dq_iq1_s(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int s = 0; s < 8; ++s, y += 32) {
    const uint16_t qh = load_u16(b + 34 + 2 * s);
    const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
    const float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
    for (int l = 0; l < 4; ++l) {
      const uint64_t g = iq1s_grid[qs[4 * s + l] | (((qh >> (3 * l)) & 7) << 8)];
      for (int j = 0; j < 8; ++j) y[8 * l + j] = dl * (static_cast<float>(static_cast<int8_t>(grid_byte(g, j))) + delta);
    }
  }
}

// IQ1_M (56 bytes: qs[32], qh[16], scales[8]; no d field). The f16 d is spread over the top nibbles of the
// 4 uint16 of scales (bits 0…3 of d in sc[0] >> 12, …, bits 12…15 in sc[3] >> 12). Group 4s + l: index
// qs[4s + l] | 3 bits of qh[2s + l/2] (low nibble for even l, high for odd) << 8; bit 3 of that nibble is
// the sign of its δ = ±1/8. Sub-block s has two 3-bit scales in bits 6(s%2) … of sc[s/2]: the first for
// groups 0–1, the second for groups 2–3: y = d·(2·scale + 1) · (grid + δ).
void dq_iq1_m(const uint8_t* b, float* y) {
  const uint8_t* qs = b;
  const uint8_t* qh = b + 32;
  uint16_t sc[4];
  for (int k = 0; k < 4; ++k) sc[k] = load_u16(b + 48 + 2 * k);
  const uint16_t dbits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                                               (sc[3] & 0xf000));
  const float d = fp16_to_f32(dbits);
  for (int s = 0; s < 8; ++s, y += 32) {
    const float dl[2] = {d * static_cast<float>(2 * ((sc[s / 2] >> (6 * (s % 2))) & 0x7) + 1),
                         d * static_cast<float>(2 * ((sc[s / 2] >> (6 * (s % 2) + 3)) & 0x7) + 1)};
    for (int l = 0; l < 4; ++l) {
      const uint8_t nib = static_cast<uint8_t>(qh[2 * s + l / 2] >> (4 * (l % 2)));
      const uint64_t g = iq1s_grid[qs[4 * s + l] | ((nib & 7) << 8)];
      const float delta = nib & 0x08 ? -kIq1Delta : kIq1Delta;
      for (int j = 0; j < 8; ++j)
        y[8 * l + j] = dl[l / 2] * (static_cast<float>(static_cast<int8_t>(grid_byte(g, j))) + delta);
    }
  }
}

// IQ4_NL (18 bytes, 32 weights: f16 d, qs[16]): y[j] = d·kvalues[low nibble of qs[j]], y[j+16] = the high one.
void dq_iq4_nl(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kvalues_iq4nl[b[2 + j] & 0xf]);
    y[j + 16] = d * static_cast<float>(kvalues_iq4nl[b[2 + j] >> 4]);
  }
}

// IQ4_XS (136 bytes: f16 d, uint16 scales_h, scales_l[4], qs[128]). Sub-block s: 6-bit scale = nibble s%2 of
// scales_l[s/2] | bits 2s…2s+1 of scales_h << 4, biased by 32; its 32 weights are IQ4_NL's nibble order
// over qs[16s … 16s+15]: y = d·(scale − 32) · kvalues[nibble].
void dq_iq4_xs(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint16_t scales_h = load_u16(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int s = 0; s < 8; ++s, y += 32) {
    const int ls = ((scales_l[s / 2] >> (4 * (s % 2))) & 0xf) | (((scales_h >> (2 * s)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * static_cast<float>(kvalues_iq4nl[qs[16 * s + j] & 0xf]);
      y[j + 16] = dl * static_cast<float>(kvalues_iq4nl[qs[16 * s + j] >> 4]);
    }
  }
}

// One base-3 digit of a TQ1_0 byte: the byte is ⌈v·256/243⌉ for a 5-digit (or 4-digit) ternary number v, so
// multiplying by 3^n modulo 256 brings digit n to the top and (q·3) >> 8 reads it (0, 1 or 2).
inline float tq1_digit(uint8_t byte, int n, float d) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t q = static_cast<uint8_t>(byte * kPow3[n]);
  const int xi = (static_cast<uint16_t>(q) * 3) >> 8;
  return static_cast<float>(xi - 1) * d;
}

// TQ1_0 (54 bytes: qs[48] five weights per byte, qh[4] four per byte, f16 d), weights in {−d, 0, d}.
// Element order: digit-major over bytes: qs[0…31] give elements 32n + m (digit n < 5 of byte m), qs[32…47]
// give 160 + 16n + m, qh[0…3] give 240 + 4n + m (digit n < 4).
void dq_tq1_0(const uint8_t* b, float* y) {
  const float d = load_half(b + 52);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) *y++ = tq1_digit(b[m], n, d);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) *y++ = tq1_digit(b[32 + m], n, d);
  for (int n = 0; n < 4; ++n)
    for (int m = 0; m < 4; ++m) *y++ = tq1_digit(b[48 + m], n, d);
}

// TQ2_0 (66 bytes: qs[64] four 2-bit weights per byte, f16 d). Element 128h + 32l + m is bits 2l…2l+1 of
// qs[32h + m]: y = (q − 1)·d.
void dq_tq2_0(const uint8_t* b, float* y) {
  const float d = load_half(b + 64);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(((b[32 * h + m] >> (2 * l)) & 3) - 1) * d;
}

// ggml_e8m0_to_fp32_half: 2^(e − 128) as a float (e < 2 gives the subnormals 2^-128, 2^-127).
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// MXFP4 (17 bytes, 32 weights: E8M0 exponent e, qs[16]): Q4_0's nibble order, y = kvalues_mxfp4[nibble]·2^(e−128).
void dq_mxfp4(const uint8_t* b, float* y) {
  const float d = e8m0_half(b[0]);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(kvalues_mxfp4[b[1 + j] & 0xf]) * d;
    y[j + 16] = static_cast<float>(kvalues_mxfp4[b[1 + j] >> 4]) * d;
  }
}

}  // namespace

BlockDequant iquant_dequant(GgmlType t) {
  switch (t) {
    case GgmlType::IQ2_XXS: return dq_iq2_xxs;
    case GgmlType::IQ2_XS: return dq_iq2_xs;
    case GgmlType::IQ2_S: return dq_iq2_s;
    case GgmlType::IQ3_XXS: return dq_iq3_xxs;
    case GgmlType::IQ3_S: return dq_iq3_s;
    case GgmlType::IQ1_S: return dq_iq1_s;
    case GgmlType::IQ1_M: return dq_iq1_m;
    case GgmlType::IQ4_NL: return dq_iq4_nl;
    case GgmlType::IQ4_XS: return dq_iq4_xs;
    case GgmlType::TQ1_0: return dq_tq1_0;
    case GgmlType::TQ2_0: return dq_tq2_0;
    case GgmlType::MXFP4: return dq_mxfp4;
    default: return nullptr;
  }
}

// The quantizers (quantize_iq*.cpp), each byte-identical to llama.cpp's quantize_iq* for the same input and
// importance matrix (MXFP4, which c392e5094 lacks, follows the format's definition and ignores an imatrix).
RowQuant iquant_row_quant(GgmlType t) {
  switch (t) {
    case GgmlType::IQ4_NL: return quantize_row_iq4_nl;
    case GgmlType::IQ4_XS: return quantize_row_iq4_xs;
    case GgmlType::IQ3_S: return quantize_row_iq3_s;
    case GgmlType::IQ3_XXS: return quantize_row_iq3_xxs;
    case GgmlType::IQ2_S: return quantize_row_iq2_s;
    case GgmlType::IQ2_XS: return quantize_row_iq2_xs;
    case GgmlType::IQ2_XXS: return quantize_row_iq2_xxs;
    case GgmlType::IQ1_S: return quantize_row_iq1_s;
    case GgmlType::IQ1_M: return quantize_row_iq1_m;
    case GgmlType::MXFP4: return quantize_row_mxfp4;  // not in c392e5094: from MXFP4's definition
    default: return nullptr;
  }
}

}  // namespace groak::quant
