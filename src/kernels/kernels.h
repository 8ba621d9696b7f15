// The small set of numeric kernels the model is written against: one table of function pointers,
// filled once per CPU (dispatch.cpp). Each entry has a scalar reference (kernels/ref.cpp, the oracle);
// faster tables (fast.cpp: portable C++; x86/avx2.cpp: AVX2+FMA+F16C) fill the same table and are
// tested against it (tests/kernels_test.cpp, tests/simd_test.cpp).
//
// Matrix products compute a range of output units so that a thread pool can split them (ops.h); every
// output element is computed by one call with a fixed order of arithmetic, so results do not depend on
// the number of threads or on how many rows share the product (batch invariance).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/tensor.h"

namespace groak {

// The form in which a matrix product reads its activations.
enum class ActFormat : uint8_t {
  F32,   // as they are
  Q8_0,  // quantised to ggml q8_0 blocks (32 int8 + an f16 scale), as llama.cpp does for quantised weights
  Q8_K,  // quantised to ggml q8_K blocks (256 int8 + an f32 scale + sums of 16), as llama.cpp does for k-quants
};

// Element type of the KV cache (--cache-type): f32 is exact; f16/bf16 halve its memory and traffic.
enum class KvType : uint8_t { F32, F16, BF16 };
const char* kv_type_name(KvType t);
inline size_t kv_type_bytes(KvType t) { return t == KvType::F32 ? 4 : 2; }
// Stores n f32 values as t (f16: round to nearest even; bf16: round to nearest even).
void store_kv_row(const float* src, void* dst, KvType t, int64_t n);

// Bytes of one row of n activations in format f (0 for F32: the product reads x itself).
inline size_t act_row_bytes(ActFormat f, int64_t n) {
  switch (f) {
    case ActFormat::F32: return 0;
    case ActFormat::Q8_0: return row_bytes(GgmlType::Q8_0, n);
    case ActFormat::Q8_K: return q8_K_row_bytes(n);
  }
  return 0;
}

// One product y = x·W, as handed to a kernel.
struct MatmulArgs {
  const Matrix* w = nullptr;
  const float* x = nullptr;     // [n_rows, w->n_in] f32, always present
  const uint8_t* xq = nullptr;  // [n_rows, act_row_bytes(f, w->n_in)] when f = act_format(w) is not F32
  float* y = nullptr;           // [n_rows, y_stride]; the kernel writes columns [o_begin, o_end) only
  int64_t y_stride = 0;
  int64_t n_rows = 0;
};

// Floats of per-thread scratch a matmul kernel may use (weight panels repacked for a block of rows).
inline constexpr size_t kKernelScratchFloats = size_t{1} << 18;  // 1 MiB
// Rows a single product may have (the engine splits longer batches).
inline constexpr int64_t kMaxProductRows = 4096;
// Parts a matrix may be cut into by input rows for ops.h's matmul_parts (model/parts.h).
inline constexpr int64_t kMaxParts = 64;

struct Kernels {
  const char* name;
  // The activation format matmul() expects for w (the caller converts x once per product).
  ActFormat (*act_format)(const Matrix& w);
  // One row of n f32 activations -> row_bytes(Q8_0, n) bytes of q8_0 blocks (n % 32 == 0).
  void (*quantize_q8_0)(const float* x, uint8_t* out, int64_t n);
  // One row of n f32 activations -> q8_K_row_bytes(n) bytes of q8_K blocks (n % 256 == 0), byte for byte
  // what quantize_row_q8_K (quant.h, ggml's quantize_row_q8_K_ref) writes.
  void (*quantize_q8_K)(const float* x, uint8_t* out, int64_t n);
  // y[r][o] = (x·W)[r][o] for r < n_rows and o in [o_begin, o_end). scratch: kKernelScratchFloats floats.
  void (*matmul)(const MatmulArgs& a, int64_t o_begin, int64_t o_end, float* scratch);
  // out = the weights of output unit `o`, dequantised: [w.n_in] f32. For the tied embedding table
  // (OutIn, one row per token) this is the embedding lookup.
  void (*get_row)(const Matrix& w, int64_t o, float* out);
  // y = scale ⊙ x / sqrt(mean(x²) + eps).  x, y, scale: [n] (y may alias x).
  void (*rms_norm)(const float* x, const float* scale, float* y, int64_t n, float eps);
  // Rotate-half (NeoX) RoPE in place on x: [n_heads, head_dim] at absolute position pos.
  void (*rope)(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, float base);
  // x = softmax(x) in place, [n], max-subtracted, f32.
  void (*softmax)(float* x, int64_t n);
  // x = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) in place, [n] (jax.nn.gelu's default).
  void (*gelu_tanh)(float* x, int64_t n);
  // Attention logits' soft cap in place: x = cap·tanh(x·mult/cap), [n].
  void (*soft_cap)(float* x, int64_t n, float cap, float mult);
  // Attention scores: out[j] = q·K[j] for j < n.  q: [hd] f32; K: n rows of hd elements of type t,
  // `stride` elements apart (a KV cache layer).
  void (*dots)(const float* q, const void* K, KvType t, int64_t stride, int64_t n, int64_t hd, float* out);
  // Attention output: out = Σ_j p[j]·V[j], j < n.  V: n rows of hd elements of type t, `stride` apart;
  // out: [hd] f32.
  void (*weighted_sum)(const float* p, const void* V, KvType t, int64_t stride, int64_t n, int64_t hd, float* out);
  // Whether matmul reads Q4_0/Q8_0 matrices in kernels/repack.h's 8-row layout (Matrix::rows8); ops.h then
  // hands it a matrix's repacked copy where it has one.
  bool reads_rows8 = false;
};

// One activation row in format f through table k: out = act_row_bytes(f, n) bytes (nothing for F32).
inline void quantize_activations(const Kernels& k, ActFormat f, const float* x, uint8_t* out, int64_t n) {
  if (f == ActFormat::Q8_0) k.quantize_q8_0(x, out, n);
  if (f == ActFormat::Q8_K) k.quantize_q8_K(x, out, n);
}

// The oracle: plain loops, double accumulation (slow; tests and `--kernels reference`).
const Kernels& reference_kernels();
// Portable C++ (any CPU): f32 runs the compiler can vectorise, f32 activations everywhere.
const Kernels& portable_kernels();
// AVX2+FMA+F16C kernels; null when this build or CPU lacks them.
const Kernels* avx2_kernels();
// AVX2's table with AVX-512 VNNI (256-bit vpdpbusd) q8_0/q4_0 products, bit-identical to AVX2's; null
// when this build or CPU lacks them.
const Kernels* avx512_vnni_kernels();
// The fastest table this CPU runs, chosen once (GROAK_KERNELS=portable|avx2|avx512vnni|reference overrides).
const Kernels& fast_kernels();
// A table by name ("fast", "reference", "portable", "avx2", "avx512vnni"); null for an unknown or unsupported one.
const Kernels* kernels_by_name(const char* name);

}  // namespace groak
