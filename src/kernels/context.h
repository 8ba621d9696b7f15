// The engine context every kernel call runs in (gemma.cpp's MatMulEnv, llama2.c's RunState): the
// thread pool, the kernel table chosen once for this CPU and per-thread scratch. Created once per process
// (or per server) and passed down explicitly; nothing here is global.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace groak {

// Sees the input of every matrix product before it runs (groak imatrix collects llama.cpp's importance
// matrix this way). w is the product's weight as the forward pass names it (an expert's view, a rank's
// slice), x its input rows [rows, w.n_in].
class MatmulObserver {
 public:
  virtual ~MatmulObserver() = default;
  virtual void on_matmul(const Matrix& w, const float* x, int64_t rows) = 0;
};

class Context {
 public:
  // threads: 0 = every core. kernels: null = the fastest table for this CPU.
  explicit Context(int threads = 0, const Kernels* kernels = nullptr);

  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  const Kernels& kernels() const { return *kernels_; }

  // Thread t's kernel scratch: kKernelScratchFloats floats, 64-byte aligned.
  float* scratch(int thread) { return scratch_.get() + static_cast<size_t>(thread) * kKernelScratchFloats; }
  // A buffer for quantised activations of at least `bytes` (grows to the largest product, then stays).
  uint8_t* act_buffer(size_t bytes);
  // Sizes that buffer up front (an engine reserves its largest product, so no forward pass allocates).
  void reserve_act(size_t bytes);
  // The observer of every product (null = none, the default: one pointer test per product).
  void set_observer(MatmulObserver* o) { observer_ = o; }
  MatmulObserver* observer() const { return observer_; }

 private:
  struct FreeAligned { void operator()(float* p) const; };
  ThreadPool pool_;
  const Kernels* kernels_;
  std::unique_ptr<float, FreeAligned> scratch_;  // [threads][kKernelScratchFloats]
  std::vector<uint8_t> act_;
  MatmulObserver* observer_ = nullptr;
};

}  // namespace groak
