// Running one kernel table's matrix product directly (one thread, one range), as ops.cpp does.
#pragma once
#include <cstdlib>
#include <memory>
#include <vector>

#include "kernels/kernels.h"

namespace groak::test {

struct KernelScratch {
  std::unique_ptr<float, void (*)(void*)> mem{static_cast<float*>(std::aligned_alloc(64, kKernelScratchFloats * 4)),
                                              std::free};
  float* get() { return mem.get(); }
};

// y[:, o0:o1) = (x·W)[:, o0:o1) through k (activations converted as k asks for w). y: [rows, w.n_out].
inline void kernel_matmul(const Kernels& k, const Matrix& w, const float* x, float* y, int64_t rows, int64_t o0 = 0,
                          int64_t o1 = -1) {
  static KernelScratch scratch;
  std::vector<uint8_t> xq;
  MatmulArgs a;
  a.w = &w;
  a.x = x;
  a.y = y;
  a.y_stride = w.n_out;
  a.n_rows = rows;
  if (const ActFormat f = k.act_format(w); f != ActFormat::F32) {
    const size_t rb = act_row_bytes(f, w.n_in);
    xq.resize(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) quantize_activations(k, f, x + r * w.n_in, xq.data() + r * rb, w.n_in);
    a.xq = xq.data();
  }
  k.matmul(a, o0, o1 < 0 ? w.n_out : o1, scratch.get());
}

}  // namespace groak::test
