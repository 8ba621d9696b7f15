// The type table of ggml's tensor formats and the row-level API over it. Each family's block routines
// live in their own file: quant_legacy.cpp (32-element blocks, with their quantizers), quant_kquants.cpp
// (k-quants and q8_K), quant_iquants.cpp (codebook i-quants, ternary TQ1_0/TQ2_0, MXFP4); the k-quant and
// ternary quantizers are in quantize_kquants.cpp and quantize_ternary.cpp, the scale searches they share
// with the legacy ones in quant_search.cpp.
// Block sizes are sizeof(block_*) of ggml/src/ggml-common.h (packed structs of uint8_t and ggml_half).
#include "kernels/quant.h"

#include "kernels/quant_impl.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

#include "kernels/tensor.h"
#include "util/error.h"

namespace groak {

// ---------------------------------------------------------------------------------------------------------
// fp16

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN with its payload
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal half = mant·2^-24: normalise so the leading 1 lands on bit 10 (every one is a normal float).
    int shift = 0;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      ++shift;
    }
    bits = sign | (static_cast<uint32_t>(127 - 14 - shift) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to inf (and inf)
  if (a >= 0x38800000u) {
    // Normal half: rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to nearest even;
    // a carry out of the mantissa correctly bumps the exponent.
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal half (|f| < 2^-14): the result is round(|f|·2^24) in units of 2^-24.
  const uint32_t e = a >> 23;
  if (e < 102) return sign;  // |f| < 2^-25: rounds to zero (float subnormals included)
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;  // |f| = m·2^(e-150)
  const uint32_t shift = 126 - e;                   // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: still right
  return static_cast<uint16_t>(sign | q);
}

namespace {

// ---------------------------------------------------------------------------------------------------------
// Type table

struct TypeInfo {
  const char* name;
  int64_t block;  // elements per block
  size_t bytes;   // bytes per block
};

// Sizes: sizeof(block_*) in ggml-common.h.
TypeInfo info(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return {"F32", 1, 4};
    case GgmlType::F16: return {"F16", 1, 2};
    case GgmlType::BF16: return {"BF16", 1, 2};
    case GgmlType::Q4_0: return {"Q4_0", 32, 18};   // d, qs[16]
    case GgmlType::Q4_1: return {"Q4_1", 32, 20};   // d, m, qs[16]
    case GgmlType::Q5_0: return {"Q5_0", 32, 22};   // d, qh[4], qs[16]
    case GgmlType::Q5_1: return {"Q5_1", 32, 24};   // d, m, qh[4], qs[16]
    case GgmlType::Q8_0: return {"Q8_0", 32, 34};   // d, qs[32]
    case GgmlType::Q2_K: return {"Q2_K", 256, 84};  // scales[16], qs[64], d, dmin
    case GgmlType::Q3_K: return {"Q3_K", 256, 110}; // hmask[32], qs[64], scales[12], d
    case GgmlType::Q4_K: return {"Q4_K", 256, 144}; // d, dmin, scales[12], qs[128]
    case GgmlType::Q5_K: return {"Q5_K", 256, 176}; // d, dmin, scales[12], qh[32], qs[128]
    case GgmlType::Q6_K: return {"Q6_K", 256, 210}; // ql[128], qh[64], scales[16] (int8), d
    case GgmlType::IQ2_XXS: return {"IQ2_XXS", 256, 66};  // d, qs[32] (uint16)
    case GgmlType::IQ2_XS: return {"IQ2_XS", 256, 74};    // d, qs[32] (uint16), scales[8]
    case GgmlType::IQ2_S: return {"IQ2_S", 256, 82};      // d, qs[64], qh[8], scales[8]
    case GgmlType::IQ3_XXS: return {"IQ3_XXS", 256, 98};  // d, qs[96]
    case GgmlType::IQ3_S: return {"IQ3_S", 256, 110};     // d, qs[64], qh[8], signs[32], scales[4]
    case GgmlType::IQ1_S: return {"IQ1_S", 256, 50};      // d, qs[32], qh[8] (uint16)
    case GgmlType::IQ1_M: return {"IQ1_M", 256, 56};      // qs[32], qh[16], scales[8] (d inside)
    case GgmlType::IQ4_NL: return {"IQ4_NL", 32, 18};     // d, qs[16]
    case GgmlType::IQ4_XS: return {"IQ4_XS", 256, 136};   // d, scales_h (uint16), scales_l[4], qs[128]
    case GgmlType::TQ1_0: return {"TQ1_0", 256, 54};      // qs[48], qh[4], d
    case GgmlType::TQ2_0: return {"TQ2_0", 256, 66};      // qs[64], d
    case GgmlType::MXFP4: return {"MXFP4", 32, 17};       // e (E8M0), qs[16]
  }
  return {"?", 1, 0};
}

using quant::BlockDequant;
using quant::BlockQuant;

// The block routines of a type, from its family's file; null for the float types.
BlockDequant block_dequant(GgmlType t) {
  if (BlockDequant f = quant::legacy_dequant(t)) return f;
  if (BlockDequant f = quant::kquant_dequant(t)) return f;
  return quant::iquant_dequant(t);
}

BlockQuant block_quant(GgmlType t) { return quant::legacy_quant(t); }

// One element of a float type.
inline float load_scalar(GgmlType t, const uint8_t* p) {
  switch (t) {
    case GgmlType::F16: return quant::load_half(p);
    case GgmlType::BF16: return load_bf16(p);
    default: return load_f32(p);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Public API

bool ggml_type_supported(uint32_t number) {
  switch (number) {
    case 0: case 1: case 2: case 3: case 6: case 7: case 8:      // F32 … Q8_0
    case 10: case 11: case 12: case 13: case 14:                 // Q2_K … Q6_K
    case 16: case 17: case 18: case 19: case 20: case 21: case 22: case 23:  // IQ2_XXS … IQ4_XS
    case 29: case 30: case 34: case 35: case 39:                 // IQ1_M, BF16, TQ1_0, TQ2_0, MXFP4
      return true;
    default:
      return false;
  }
}

const char* ggml_type_name(uint32_t number) {
  // ggml.h enum ggml_type; numbers 4, 5, 31–33 and 36–38 were used once and later removed from GGUF.
  static constexpr const char* kNames[] = {
      "F32",      "F16",      "Q4_0",     "Q4_1",     "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0",
      "Q5_1",     "Q8_0",     "Q8_1",     "Q2_K",     "Q3_K",           "Q4_K",           "Q5_K",
      "Q6_K",     "Q8_K",     "IQ2_XXS",  "IQ2_XS",   "IQ3_XXS",        "IQ1_S",          "IQ4_NL",
      "IQ3_S",    "IQ2_S",    "IQ4_XS",   "I8",       "I16",            "I32",            "I64",
      "F64",      "IQ1_M",    "BF16",     "Q4_0_4_4 (removed)", "Q4_0_4_8 (removed)", "Q4_0_8_8 (removed)",
      "TQ1_0",    "TQ2_0",    "IQ4_NL_4_4 (removed)", "IQ4_NL_4_8 (removed)", "IQ4_NL_8_8 (removed)", "MXFP4",
  };
  return number < std::size(kNames) ? kNames[number] : "unknown";
}

const char* type_name(GgmlType t) { return info(t).name; }
int64_t block_size(GgmlType t) { return info(t).block; }
size_t type_size(GgmlType t) { return info(t).bytes; }

size_t row_bytes(GgmlType t, int64_t n) {
  const TypeInfo ti = info(t);
  if (n < 0 || n % ti.block != 0) {
    throw Error(std::string("row of ") + std::to_string(n) + " elements cannot be stored as " + ti.name +
                ": the length must be a non-negative multiple of its block size " + std::to_string(ti.block));
  }
  if (static_cast<uint64_t>(n / ti.block) > std::numeric_limits<size_t>::max() / ti.bytes) {
    throw Error(std::string("row of ") + std::to_string(n) + " " + ti.name + " elements does not fit in memory");
  }
  return static_cast<size_t>(n / ti.block) * ti.bytes;
}

void dequantize_row(GgmlType t, const uint8_t* src, float* dst, int64_t n) {
  const TypeInfo ti = info(t);
  assert(n % ti.block == 0);
  if (const BlockDequant dq = block_dequant(t)) {
    for (int64_t i = 0; i + ti.block <= n; i += ti.block, src += ti.bytes) dq(src, dst + i);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = load_scalar(t, src + static_cast<size_t>(i) * ti.bytes);
}

float dot_row(GgmlType t, const uint8_t* row, const float* x, int64_t n) {
  const TypeInfo ti = info(t);
  assert(n % ti.block == 0);
  // f32 accumulation in index order: the oracle fixes the order so tests can demand exact equality.
  float sum = 0.f;
  if (const BlockDequant dq = block_dequant(t)) {
    float buf[kMaxBlockElements];  // one block, dequantised
    for (int64_t i = 0; i + ti.block <= n; i += ti.block, row += ti.bytes) {
      dq(row, buf);
      for (int64_t j = 0; j < ti.block; ++j) sum += buf[j] * x[i + j];
    }
    return sum;
  }
  for (int64_t i = 0; i < n; ++i) sum += load_scalar(t, row + static_cast<size_t>(i) * ti.bytes) * x[i];
  return sum;
}

quant::RowQuant row_quant(GgmlType t) {
  if (quant::RowQuant f = quant::legacy_row_quant(t)) return f;
  if (quant::RowQuant f = quant::kquant_row_quant(t)) return f;
  return quant::iquant_row_quant(t);
}

bool has_quantizer(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || block_quant(t) != nullptr ||
         row_quant(t) != nullptr;
}

bool quantize_requires_imatrix(GgmlType t) {
  return t == GgmlType::IQ2_XXS || t == GgmlType::IQ2_XS || t == GgmlType::IQ1_S;
}

void quantize_row(GgmlType t, const float* src, uint8_t* dst, int64_t n) {
  quantize_rows(t, src, dst, 1, n, nullptr);
}

void quantize_rows(GgmlType t, const float* src, uint8_t* dst, int64_t rows, int64_t n, const float* imatrix) {
  if (!has_quantizer(t)) throw Error(std::string("groak has no quantizer for ") + type_name(t));
  if (imatrix == nullptr && quantize_requires_imatrix(t))
    throw Error(std::string("quantizing to ") + type_name(t) + " needs an importance matrix (--imatrix FILE; "
                "make one with groak imatrix)");
  const TypeInfo ti = info(t);
  const size_t rb = row_bytes(t, n);  // throws on a partial block
  for (int64_t r = 0; r < rows; ++r, src += n, dst += rb) {
    if (const quant::RowQuant rq = row_quant(t)) {
      rq(src, dst, n, imatrix);
    } else if (const BlockQuant q = block_quant(t)) {
      uint8_t* d = dst;
      for (int64_t i = 0; i < n; i += ti.block, d += ti.bytes) q(src + i, d);
    } else {
      uint8_t* d = dst;
      for (int64_t i = 0; i < n; ++i, d += ti.bytes) {
        if (t == GgmlType::F32) {
          std::memcpy(d, src + i, 4);
        } else {
          const uint16_t h = t == GgmlType::F16 ? f32_to_fp16(src[i]) : f32_to_bf16(src[i]);
          std::memcpy(d, &h, 2);
        }
      }
    }
  }
}

}  // namespace groak
