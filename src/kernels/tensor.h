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

struct Matrix;
class Context;

// A matrix that a process packs into its own memory the first time it is used: a tensor-parallel rank's
// strided slice of a file the other ranks share (model/shard.h says why). get() is thread-safe.
class PackedOnUse {
 public:
  virtual ~PackedOnUse() = default;
  virtual const Matrix& get() const = 0;
};

// A copy of a matrix in the interleaved layout some kernel tables read faster (kernels/repack.h), made
// the first time a product uses it, over the context's threads. get() is thread-safe.
class RepackedOnUse {
 public:
  virtual ~RepackedOnUse() = default;
  virtual const Matrix& get(Context& ctx) const = 0;
};

// A view of a weight matrix (or of a slice of one: slice_out/slice_in give views, never copies).
struct Matrix {
  WeightFormat format = WeightFormat::F32;
  Layout layout = Layout::InOut;
  int64_t n_in = 0, n_out = 0;
  const uint8_t* data = nullptr;    // elements, layout as above
  const uint8_t* scales = nullptr;  // XaiInt8: bf16 [scale_blocks, n_out] (rows scale_stride apart)
  int64_t scale_blocks = 1;         // XaiInt8: 1 = per output column; 8 = row-parallel (input split in 8)
  GgmlType ggml = GgmlType::F32;    // Ggml: the block format of each row
  int64_t row_stride = 0;           // bytes from one stored row to the next (InOut: input rows, OutIn:
                                    // output rows); 0 = rows packed back to back
  int64_t scale_stride = 0;         // XaiInt8: bf16 elements from one scale row to the next; 0 = n_out
  const PackedOnUse* packed = nullptr;  // set: multiply packed->get() (same shape and format), not this view
  // Set: a table whose matmul reads kernels/repack.h's layout multiplies repacked->get() instead (same
  // numbers, same results to the bit). Slices drop it: a repack belongs to the whole view.
  const RepackedOnUse* repacked = nullptr;
  bool rows8 = false;  // Ggml Q4_0/Q8_0 only: stored in kernels/repack.h's 8-row interleaved layout

  // The matrix a product reads: this view, or its packed copy.
  const Matrix& resolve() const { return packed ? packed->get() : *this; }

  // Bytes of one stored element row as packed (no stride): n_out elements for InOut, n_in for OutIn.
  size_t packed_row_bytes() const {
    const int64_t n = layout == Layout::InOut ? n_out : n_in;
    switch (format) {
      case WeightFormat::F32: return static_cast<size_t>(n) * 4;
      case WeightFormat::XaiInt8: return static_cast<size_t>(n);
      case WeightFormat::Ggml: return row_bytes(ggml, n);
    }
    return 0;
  }
  size_t stride() const { return row_stride > 0 ? static_cast<size_t>(row_stride) : packed_row_bytes(); }
  int64_t scale_row() const { return scale_stride > 0 ? scale_stride : n_out; }
  // Bytes the product reads (the view's own elements, not the gaps of a strided slice).
  size_t data_bytes() const {
    return packed_row_bytes() * static_cast<size_t>(layout == Layout::InOut ? n_in : n_out);
  }
  // Bytes from the first stored row's start to the last one's end (data_bytes() unless strided).
  size_t span_bytes() const {
    const size_t rows = static_cast<size_t>(layout == Layout::InOut ? n_in : n_out);
    return rows == 0 ? 0 : (rows - 1) * stride() + packed_row_bytes();
  }
  size_t scale_bytes() const { return format == WeightFormat::XaiInt8 ? static_cast<size_t>(scale_blocks * n_out) * 2 : 0; }

  // Output units [o0, o0 + n) as a view.
  Matrix slice_out(int64_t o0, int64_t n) const;
  // Inputs [i0, i0 + n) as a view. XaiInt8: must cover whole scale blocks; Ggml: whole ggml blocks.
  Matrix slice_in(int64_t i0, int64_t n) const;
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
