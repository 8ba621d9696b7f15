#include "kernels/ops.h"

#include <algorithm>
#include <cassert>

namespace groak {

namespace {
// Output units per task are a multiple of this (the widest register tile of any kernel).
constexpr int64_t kOutputGrain = 16;
// Products smaller than this many weight bytes run on one thread (waking the pool costs more).
constexpr size_t kMinParallelBytes = 64 * 1024;
// Activations (elements) below which a product's parts are copied and quantised on the calling thread.
constexpr int64_t kMinParallelPrep = 64 * 1024;
}  // namespace

void parallel_for(Context& ctx, int64_t n, FunctionRef<void(int64_t, int)> fn) { ctx.pool().run(n, fn); }

namespace {
// Task t of `tasks`: its share [begin, end) of [0, n), cut at multiples of kOutputGrain (16 floats: a
// cache line, and the widest register tile of any kernel).
struct Share {
  int64_t begin, end;
};
Share share_of(int64_t n, int64_t t, int64_t tasks) {
  const int64_t groups = (n + kOutputGrain - 1) / kOutputGrain;
  return {std::min(n, groups * t / tasks * kOutputGrain), std::min(n, groups * (t + 1) / tasks * kOutputGrain)};
}
}  // namespace

void parallel_ranges(Context& ctx, int64_t n, FunctionRef<void(int64_t, int64_t)> fn) {
  constexpr int64_t kMinPerThread = 16 * 1024;  // elements: ~a few µs of streaming, more than a wake-up
  const int64_t tasks = std::min<int64_t>(ctx.threads(), std::max<int64_t>(1, n / kMinPerThread));
  if (tasks <= 1) return n > 0 ? fn(0, n) : void();
  ctx.pool().run(tasks, [&](int64_t t, int) {
    const Share s = share_of(n, t, tasks);
    if (s.end > s.begin) fn(s.begin, s.end);
  });
}

namespace {
// The matrix a product multiplies: the view's repacked copy when the table reads that layout (made on
// first use), its packed copy (a strided shard), or the view itself.
const Matrix& operand(Context& ctx, const Matrix& view) {
  if (view.repacked && ctx.kernels().reads_rows8) return view.repacked->get(ctx);
  return view.resolve();
}

// The product's arguments, its activations quantised into ctx's buffer (rows in parallel) when the
// kernel reads them quantised.
MatmulArgs prepare(Context& ctx, const Matrix& view, const float* x, float* y, int64_t n_rows) {
  assert(n_rows > 0 && n_rows <= kMaxProductRows);
  if (MatmulObserver* o = ctx.observer()) o->on_matmul(view, x, n_rows);
  const Matrix& w = operand(ctx, view);
  const Kernels& k = ctx.kernels();
  MatmulArgs a;
  a.w = &w;
  a.x = x;
  a.y = y;
  a.y_stride = w.n_out;
  a.n_rows = n_rows;
  if (const ActFormat f = k.act_format(w); f != ActFormat::F32) {
    const size_t row = act_row_bytes(f, w.n_in);
    uint8_t* xq = ctx.act_buffer(row * static_cast<size_t>(n_rows));
    ctx.pool().run(n_rows, [&](int64_t r, int) { quantize_activations(k, f, x + r * w.n_in, xq + r * row, w.n_in); });
    a.xq = xq;
  }
  return a;
}

// fn(o0, o1, thread) over disjoint output ranges [o0, o1) of n_out, multiples of kOutputGrain (one task
// when the weights are too small to be worth waking the pool). Few rows (decode) of [out, in] weights:
// kChunksPerThread ranges per thread, claimed in order, so a thread the machine slows down takes fewer;
// many rows (prefill): one range per thread, as each call prepares the activations and panels it reads;
// [in, out] weights (xAI int8): one range per thread, as a range is a column band of every input row and
// narrower bands read shorter runs of each row (measured: raw decode 28 % slower with 4 per thread).
constexpr int64_t kDynamicRows = 16;
constexpr int64_t kChunksPerThread = 4;

void split_outputs(Context& ctx, int64_t n_out, size_t weight_bytes, int64_t n_rows, Layout layout,
                   FunctionRef<void(int64_t, int64_t, int)> fn) {
  const int T = ctx.threads();
  const int64_t groups = (n_out + kOutputGrain - 1) / kOutputGrain;
  const bool dynamic = n_rows <= kDynamicRows && layout == Layout::OutIn;
  const int64_t per_thread = dynamic ? kChunksPerThread : 1;
  const int64_t tasks = weight_bytes < kMinParallelBytes ? 1 : std::min<int64_t>(T * per_thread, groups);
  const auto range = [&](int64_t t, int thread) {
    const Share s = share_of(n_out, t, tasks);
    if (s.end > s.begin) fn(s.begin, s.end, thread);
  };
  if (dynamic)
    ctx.pool().run_dynamic(tasks, range);
  else
    ctx.pool().run(tasks, range);
}
}  // namespace

void matmul(Context& ctx, const Matrix& view, const float* x, float* y, int64_t n_rows) {
  const MatmulArgs a = prepare(ctx, view, x, y, n_rows);
  const Kernels& k = ctx.kernels();
  split_outputs(ctx, a.w->n_out, a.w->data_bytes(), n_rows, a.w->layout,
                [&](int64_t o0, int64_t o1, int thread) { k.matmul(a, o0, o1, ctx.scratch(thread)); });
}

void matmul_gelu_gated(Context& ctx, const Matrix& gate_view, const Matrix& up_view, const float* x, float* h,
                       float* up, int64_t n_rows) {
  const Kernels& k = ctx.kernels();
  const Matrix& gw = operand(ctx, gate_view);
  const Matrix& uw = operand(ctx, up_view);
  assert(gw.n_in == uw.n_in && gw.n_out == uw.n_out);
  auto gelu_mul = [&](int64_t o0, int64_t o1) {  // h = gelu(h) ⊙ up on columns [o0, o1) of every row
    const int64_t f = gw.n_out;
    for (int64_t r = 0; r < n_rows; ++r) {
      float* g = h + r * f;
      const float* u = up + r * f;
      k.gelu_tanh(g + o0, o1 - o0);
      for (int64_t i = o0; i < o1; ++i) g[i] *= u[i];
    }
  };
  if (k.act_format(gw) != k.act_format(uw)) {  // types that read different activations (a mix's override)
    matmul(ctx, gate_view, x, h, n_rows);
    matmul(ctx, up_view, x, up, n_rows);
    split_outputs(ctx, gw.n_out, gw.data_bytes(), n_rows, gw.layout,
                  [&](int64_t o0, int64_t o1, int) { gelu_mul(o0, o1); });
    return;
  }
  // One quantisation of x and one pass of the pool: each thread computes both products on its columns
  // and applies the GELU there while they are in its cache.
  MatmulArgs ga = prepare(ctx, gate_view, x, h, n_rows);
  if (MatmulObserver* o = ctx.observer()) o->on_matmul(up_view, x, n_rows);
  MatmulArgs ua = ga;
  ua.w = &uw;
  ua.y = up;
  split_outputs(ctx, gw.n_out, gw.data_bytes() + uw.data_bytes(), n_rows, gw.layout,
                [&](int64_t o0, int64_t o1, int thread) {
                  k.matmul(ga, o0, o1, ctx.scratch(thread));
                  k.matmul(ua, o0, o1, ctx.scratch(thread));
                  gelu_mul(o0, o1);
                });
}

void matmul_parts(Context& ctx, const Matrix* parts, int64_t n_parts, const Matrix& observed, const float* x,
                  float* xs, float* const* ys, int64_t n_rows, FunctionRef<void(int64_t, int64_t)> epilogue) {
  assert(n_parts >= 1 && n_parts <= kMaxParts && n_rows > 0 && n_rows <= kMaxProductRows);
  if (MatmulObserver* o = ctx.observer()) o->on_matmul(observed, x, n_rows);
  const Kernels& k = ctx.kernels();
  const int64_t kw = parts[0].n_in, K = n_parts * kw, n_out = parts[0].n_out;
  // Row-wise preparation on the pool, or here when it is too little to wake the pool for (decode).
  const auto each = [&](int64_t n, FunctionRef<void(int64_t, int)> fn) {
    if (n_rows * K < kMinParallelPrep) {
      for (int64_t i = 0; i < n; ++i) fn(i, 0);
    } else {
      ctx.pool().run(n, fn);
    }
  };
  if (n_parts > 1) {  // xs[p]: [n_rows, kw], part p's columns of every row
    each(n_rows, [&](int64_t r, int) {
      for (int64_t p = 0; p < n_parts; ++p)
        std::copy(x + r * K + p * kw, x + r * K + (p + 1) * kw, xs + (p * n_rows + r) * kw);
    });
  }
  const float* xp = n_parts > 1 ? xs : x;
  MatmulArgs args[kMaxParts];
  size_t xq_bytes = 0, weight_bytes = 0;
  for (int64_t p = 0; p < n_parts; ++p) {
    const Matrix& w = operand(ctx, parts[p]);  // (makes a repacked copy on first use)
    assert(w.n_in == kw && w.n_out == n_out);
    args[p] = {.w = &w, .x = xp + p * n_rows * kw, .y = ys[p], .y_stride = n_out, .n_rows = n_rows};
    xq_bytes += act_row_bytes(k.act_format(w), kw) * static_cast<size_t>(n_rows);
    weight_bytes += w.data_bytes();
  }
  if (xq_bytes > 0) {  // each part's activations in its own format, parts after one another
    uint8_t* xq = ctx.act_buffer(xq_bytes);
    for (int64_t p = 0; p < n_parts; ++p) {
      args[p].xq = xq;
      xq += act_row_bytes(k.act_format(*args[p].w), kw) * static_cast<size_t>(n_rows);
    }
    each(n_rows * n_parts, [&](int64_t i, int) {
      const int64_t p = i / n_rows, r = i % n_rows;
      const ActFormat f = k.act_format(*args[p].w);
      const size_t row = act_row_bytes(f, kw);
      if (row > 0) quantize_activations(k, f, args[p].x + r * kw, const_cast<uint8_t*>(args[p].xq) + r * row, kw);
    });
  }
  split_outputs(ctx, n_out, weight_bytes, n_rows, parts[0].layout, [&](int64_t o0, int64_t o1, int thread) {
    for (int64_t p = 0; p < n_parts; ++p) k.matmul(args[p], o0, o1, ctx.scratch(thread));
    epilogue(o0, o1);
  });
}

void tree_sum(float* const* parts, int64_t n, int64_t i0, int64_t i1) {
  if (n < 2) return;
  const int64_t mid = n / 2;
  tree_sum(parts, mid, i0, i1);
  tree_sum(parts + mid, n - mid, i0, i1);
  float* a = parts[0];
  const float* b = parts[mid];
  for (int64_t i = i0; i < i1; ++i) a[i] += b[i];
}

}  // namespace groak
