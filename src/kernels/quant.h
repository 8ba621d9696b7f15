// ggml's tensor element formats (the ones a GGUF file of Grok-1 may use): per-type tables, exact scalar
// dequantisation, a reference dot product and reference quantizers. These are the oracles that fast
// kernels are tested against, so every routine is plain scalar code that mirrors ggml's reference
// arithmetic operation for operation (no FMA contraction, no reassociation).
//
// A "row" is n consecutive elements along ne[0]; n must be a multiple of block_size(type). All reads and
// writes go through memcpy, so rows may sit at any address (GGUF data is only 32-byte aligned in the file,
// and tests use odd addresses on purpose).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace groak {

// ggml's type numbers as stored in GGUF tensor infos (ggml.h `enum ggml_type`). Only the types groak can
// read are enumerators; other numbers (Q8_1, Q8_K, I8 … F64, the removed ones) still have a name through
// ggml_type_name().
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,  // added to ggml after llama.cpp c392e5094 (the gpt-oss GGUFs use it)
};

// Elements per k-quant super-block (ggml's QK_K).
inline constexpr int64_t kQK_K = 256;
// Largest block_size() of any supported type: a scratch buffer of this many floats holds one block.
inline constexpr int64_t kMaxBlockElements = kQK_K;

// True when `number` is one of the GgmlType enumerators above.
bool ggml_type_supported(uint32_t number);
// ggml's name for any type number it has used ("Q4_K", "IQ2_XXS", "Q4_0_4_4 (removed)"); "unknown" when
// ggml never defined it.
const char* ggml_type_name(uint32_t number);
const char* type_name(GgmlType t);

int64_t block_size(GgmlType t);  // elements per block: 1 (F32/F16/BF16), 32, or 256 (k-quants, most i-quants)
size_t type_size(GgmlType t);    // bytes per block
// Bytes of a row of n elements. Throws groak::Error when n is negative or not a multiple of the block size.
size_t row_bytes(GgmlType t, int64_t n);

// dst[0, n) = the values encoded in src (row_bytes(t, n) bytes). Precondition: n % block_size(t) == 0.
void dequantize_row(GgmlType t, const uint8_t* src, float* dst, int64_t n);

// Σ_i dequant(row)[i] · x[i], i < n: each block is dequantised exactly as dequantize_row does, then
// multiplied and summed in f32 in index order, so the result equals a plain f32 loop over the dequantised
// row bit for bit (the oracle for fast dot kernels, which may reorder).
float dot_row(GgmlType t, const uint8_t* row, const float* x, int64_t n);

// True for the types quantize_row / quantize_rows can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0 (and the i-quants whose quantizers exist).
bool has_quantizer(GgmlType t);
// True for the types ggml refuses to produce without an importance matrix (ggml_quantize_requires_imatrix:
// IQ2_XXS, IQ2_XS, IQ1_S). llama-quantize (and groak convert) also ask one for IQ2_S and IQ1_M weights.
bool quantize_requires_imatrix(GgmlType t);
// dst = src[0, n) encoded as type t, byte for byte as ggml's quantize_row_*_ref (deterministic).
// Throws groak::Error for a type without a quantizer or n not a multiple of the block size.
void quantize_row(GgmlType t, const float* src, uint8_t* dst, int64_t n);
// rows × n_per_row values (row-major) → rows of type t, byte for byte as llama.cpp's ggml_quantize_chunk:
// with imatrix (n_per_row per-column importances, llama.cpp's quant_weights; null: none) the types whose
// rounding search can be weighted use it (quantize_row_*_impl); Q8_0, TQ1_0, TQ2_0 and the float types
// ignore it, as ggml does. Rows are independent (callers may split them across threads). Throws groak::Error as quantize_row, and for a type that
// requires an imatrix when none is given.
void quantize_rows(GgmlType t, const float* src, uint8_t* dst, int64_t rows, int64_t n_per_row,
                   const float* imatrix);

// ggml's block_q8_K: the form in which k-quant dot products read their activations (llama.cpp quantises
// them once per product). Not a weight type (GGUF files do not store it): f32 d, int8 qs[256], int16
// bsums[16] (bsums[j] = Σ qs[16j … 16j+15]); the value of element j is d·qs[j].
inline constexpr size_t kQ8_KBlockBytes = 4 + kQK_K + 2 * (kQK_K / 16);  // 292
// Bytes of n activations as q8_K blocks. Throws groak::Error unless n is a non-negative multiple of 256.
size_t q8_K_row_bytes(int64_t n);
// dst = x[0, n) as q8_K blocks, following ggml's quantize_row_q8_K_ref (d = max/−127 where max is the
// first element of largest magnitude, q = nearest_int(x·(−127/max)), d stored as 1/(−127/max)). An
// all-zero block gets zero sums (ggml leaves them unwritten). Precondition: n % 256 == 0.
void quantize_row_q8_K(const float* x, uint8_t* dst, int64_t n);
// dst[0, n) = d·qs[j] of each block, as ggml's dequantize_row_q8_K. Precondition: n % 256 == 0.
void dequantize_row_q8_K(const uint8_t* src, float* dst, int64_t n);

// IEEE binary16 <-> float32. fp16_to_f32 is exact for every input (subnormals, ±inf, NaN payloads);
// f32_to_fp16 rounds to nearest, ties to even, overflows to ±inf and keeps NaN a (quiet) NaN.
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);

}  // namespace groak
