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

// The products of a matrix cut by input rows into parts (model/parts.h: the partial sums tensor parallelism
// adds up): ys[p] = x_p·W_p, where x_p is columns [p·k, (p+1)·k) of x and parts[p] is W's input rows
// [p·k, (p+1)·k). parts: n_parts matrices [k, n_out]; x: [n_rows, n_parts·k]; xs: scratch of x's size (x's
// parts side by side; unused for one part); ys: n_parts pointers to [n_rows, n_out]. One pass of the pool:
// each task computes its columns [o0, o1) of every part, then calls epilogue(o0, o1) on them (combine
// the parts there, in a fixed order). `observed` is what the context's observer is shown (the whole
// matrix, with x).
void matmul_parts(Context& ctx, const Matrix* parts, int64_t n_parts, const Matrix& observed, const float* x,
                  float* xs, float* const* ys, int64_t n_rows, FunctionRef<void(int64_t o0, int64_t o1)> epilogue);

// parts[0][i] = the sum of parts[0 … n)[i] for i in [i0, i1), in the halving tree order: sum(lo, hi) =
// sum(lo, mid) + sum(mid, hi), mid = lo + (hi - lo) / 2. The other parts are overwritten. Any run of
// parts that is a node of the tree can be summed apart (by another process) and combined later with the
// same bits (model/parts.h).
void tree_sum(float* const* parts, int64_t n, int64_t i0, int64_t i1);

// fn(i, thread) for i in [0, n) on every thread (rows, heads: any independent work items).
void parallel_for(Context& ctx, int64_t n, FunctionRef<void(int64_t i, int thread)> fn);

// fn(i0, i1) over disjoint ranges covering [0, n), one per thread, each a multiple of 16 elements but
// the last; one call on the caller's thread when n is too small to be worth waking the pool (element-
// wise work on a batch's [T, d] arrays: the split never changes a result).
void parallel_ranges(Context& ctx, int64_t n, FunctionRef<void(int64_t i0, int64_t i1)> fn);

}  // namespace groak
