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

// fn(i, thread) for i in [0, n) on every thread (rows, heads: any independent work items).
void parallel_for(Context& ctx, int64_t n, FunctionRef<void(int64_t i, int thread)> fn);

}  // namespace groak
