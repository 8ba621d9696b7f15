// The kernel table run on every thread of a context: what the model file calls. Each op splits its
// work into disjoint ranges (output units of a product, rows, heads) so that all cores stream
// disjoint weights; the split never changes a result (kernels.h).
#pragma once
#include <cstdint>

#include "kernels/context.h"
#include "util/function_ref.h"

namespace groak {

// y = x·W.  x: [n_rows, w.n_in] f32; y: [n_rows, w.n_out] f32. n_rows ≤ kMaxProductRows.
void matmul(Context& ctx, const Matrix& w, const float* x, float* y, int64_t n_rows);

// h = gelu_tanh(x·gate) ⊙ (x·up), an expert's two input projections as one operation: x is quantised
// once and each thread computes both products and the GELU on its own columns.  x: [n_rows, n_in];
// gate, up: same shape; h, up_out: [n_rows, n_out] (up_out holds x·up).
void matmul_gelu_gated(Context& ctx, const Matrix& gate, const Matrix& up, const float* x, float* h, float* up_out,
                       int64_t n_rows);

// fn(i, thread) for i in [0, n) on every thread (rows, heads: any independent work items).
void parallel_for(Context& ctx, int64_t n, FunctionRef<void(int64_t i, int thread)> fn);

// fn(i0, i1) over disjoint ranges covering [0, n), one per thread, each a multiple of 16 elements but
// the last; one call on the caller's thread when n is too small to be worth waking the pool (element-
// wise work on a batch's [T, d] arrays: the split never changes a result).
void parallel_ranges(Context& ctx, int64_t n, FunctionRef<void(int64_t i0, int64_t i1)> fn);

}  // namespace groak
