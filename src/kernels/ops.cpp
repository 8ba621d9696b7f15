#include "kernels/ops.h"

#include <algorithm>
#include <cassert>

namespace groak {

namespace {
// Output units per task are a multiple of this (the widest register tile of any kernel).
constexpr int64_t kOutputGrain = 16;
// Products smaller than this many weight bytes run on one thread (waking the pool costs more).
constexpr size_t kMinParallelBytes = 64 * 1024;
}  // namespace

void parallel_for(Context& ctx, int64_t n, FunctionRef<void(int64_t, int)> fn) { ctx.pool().run(n, fn); }

void matmul(Context& ctx, const Matrix& view, const float* x, float* y, int64_t n_rows) {
  assert(n_rows > 0 && n_rows <= kMaxProductRows);
  if (MatmulObserver* o = ctx.observer()) o->on_matmul(view, x, n_rows);
  const Matrix& w = view.resolve();
  const Kernels& k = ctx.kernels();
  MatmulArgs a;
  a.w = &w;
  a.x = x;
  a.y = y;
  a.y_stride = w.n_out;
  a.n_rows = n_rows;
  if (const ActFormat f = k.act_format(w); f != ActFormat::F32) {
    // Quantise each activation row once (rows in parallel), then every task reads the blocks.
    const size_t row = act_row_bytes(f, w.n_in);
    uint8_t* xq = ctx.act_buffer(row * static_cast<size_t>(n_rows));
    ctx.pool().run(n_rows, [&](int64_t r, int) { quantize_activations(k, f, x + r * w.n_in, xq + r * row, w.n_in); });
    a.xq = xq;
  }
  const int T = ctx.threads();
  const int64_t groups = (w.n_out + kOutputGrain - 1) / kOutputGrain;
  const int64_t tasks = w.data_bytes() < kMinParallelBytes ? 1 : std::min<int64_t>(T, groups);
  ctx.pool().run(tasks, [&](int64_t t, int thread) {
    const int64_t o0 = std::min(w.n_out, groups * t / tasks * kOutputGrain);
    const int64_t o1 = std::min(w.n_out, groups * (t + 1) / tasks * kOutputGrain);
    if (o1 > o0) k.matmul(a, o0, o1, ctx.scratch(thread));
  });
}

}  // namespace groak
