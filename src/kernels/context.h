// The engine context every kernel call runs in (gemma.cpp's MatMulEnv, llama2.c's RunState): the
// thread pool, the kernel table chosen once for this CPU, per-thread scratch and the communicator
// that tensor parallelism hooks into. Created once per process (or per server) and passed down
// explicitly; nothing here is global.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace groak {

// Reductions across the processes that share one model (tensor parallelism). One process: no-ops.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // x[0, n) = the element-wise sum of every rank's x.
  virtual void all_reduce_sum(float* x, int64_t n) {}
};

class Context {
 public:
  // threads: 0 = every core. kernels: null = the fastest table for this CPU. comm: null = one process.
  explicit Context(int threads = 0, const Kernels* kernels = nullptr, std::shared_ptr<Communicator> comm = nullptr);

  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  const Kernels& kernels() const { return *kernels_; }
  Communicator& comm() { return *comm_; }

  // Thread t's kernel scratch: kKernelScratchFloats floats, 64-byte aligned.
  float* scratch(int thread) { return scratch_.get() + static_cast<size_t>(thread) * kKernelScratchFloats; }
  // A buffer for quantised activations of at least `bytes` (grows to the largest product, then stays).
  uint8_t* act_buffer(size_t bytes);

 private:
  struct FreeAligned { void operator()(float* p) const; };
  ThreadPool pool_;
  const Kernels* kernels_;
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<float, FreeAligned> scratch_;  // [threads][kKernelScratchFloats]
  std::vector<uint8_t> act_;
};

}  // namespace groak
