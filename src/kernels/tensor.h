// Non-owning views of weights as they lie in a mapped file. The model only sees these; the kernels
// know how to multiply each format. Data pointers may be unaligned (xAI pickles put payloads at odd
// offsets), so kernels read through memcpy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/quant.h"

namespace groak {

// How a matrix's numbers are stored.
enum class WeightFormat : uint8_t {
  F32,      // float32 elements, either layout
  XaiInt8,  // int8 elements + bf16 scales per output column (and per input block): xAI ckpt-0
  Ggml,     // a ggml type (F16, BF16, Q8_0, Q4_K, …): OutIn rows of row_bytes(ggml, n_in) bytes
};
const char* format_name(WeightFormat f);

// Which index is contiguous in memory.
enum class Layout : uint8_t {
  InOut,  // [n_in][n_out]: row i = input feature i; y = x·W (xAI, model.py)
  OutIn,  // [n_out][n_in]: row o = output unit o (GGUF, torch, the tied embedding table)
};

struct Matrix {
  WeightFormat format = WeightFormat::F32;
  Layout layout = Layout::InOut;
  int64_t n_in = 0, n_out = 0;
  const uint8_t* data = nullptr;    // elements, layout as above
  const uint8_t* scales = nullptr;  // XaiInt8: bf16 [scale_blocks, n_out]
  int64_t scale_blocks = 1;         // XaiInt8: 1 = per output column; 8 = row-parallel (input split in 8)
  GgmlType ggml = GgmlType::F32;    // Ggml: the block format of each row

  size_t data_bytes() const {
    switch (format) {
      case WeightFormat::F32: return static_cast<size_t>(n_in * n_out) * 4;
      case WeightFormat::XaiInt8: return static_cast<size_t>(n_in * n_out);
      case WeightFormat::Ggml: return static_cast<size_t>(n_out) * row_bytes(ggml, n_in);
    }
    return 0;
  }
  size_t scale_bytes() const { return format == WeightFormat::XaiInt8 ? static_cast<size_t>(scale_blocks * n_out) * 2 : 0; }
};

// The experts of one MoE projection: `list[e]` is expert e's matrix (identical shapes). Merged
// checkpoints point into one tensor; per-expert files point into several.
struct ExpertMatrices {
  std::vector<Matrix> list;
  const Matrix& expert(int64_t e) const { return list[static_cast<size_t>(e)]; }
};

// Unaligned little-endian loads.
inline float load_f32(const uint8_t* p) { float v; std::memcpy(&v, p, 4); return v; }
inline float bf16_to_f32(uint16_t bits) { uint32_t u = static_cast<uint32_t>(bits) << 16; float v; std::memcpy(&v, &u, 4); return v; }
inline float load_bf16(const uint8_t* p) { uint16_t b; std::memcpy(&b, p, 2); return bf16_to_f32(b); }
// float32 -> bfloat16 bits, round to nearest even (NaN stays NaN).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace groak
