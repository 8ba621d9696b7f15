// The small set of numeric kernels the model is written against. Each has a scalar reference
// (kernels/ref.cpp, the oracle); faster versions (kernels/fast.cpp) fill the same table and are
// tested against it.
#pragma once
#include <cstdint>

#include "kernels/tensor.h"

namespace groak {

struct Kernels {
  const char* name;
  // y[r] = x[r]·W for r < n_rows.  x: [n_rows, w.n_in] f32; y: [n_rows, w.n_out] f32 (overwritten).
  void (*matmul)(const Matrix& w, const float* x, float* y, int64_t n_rows);
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
};

// The oracle: plain loops, double accumulation (slow; tests and `--kernels reference`).
const Kernels& reference_kernels();
// The default: f32 runs of vectorisable work; same element-wise kernels as the reference.
const Kernels& fast_kernels();

}  // namespace groak
