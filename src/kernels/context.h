// The engine context every kernel call runs in (gemma.cpp's MatMulEnv, llama2.c's RunState): the
// thread pool, the kernel table chosen once for this CPU, per-thread scratch and the communicator
// that tensor parallelism hooks into. Created once per process (or per server) and passed down
// explicitly; nothing here is global.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace groak {

// What one process of a tensor-parallel group sent and waited for (docs/distributed.md counts them).
struct CommStats {
  int64_t all_reduces = 0, all_reduce_floats = 0;  // calls; floats summed (each call's n)
  int64_t gathers = 0, gather_floats = 0;          // logits gathers; floats this rank contributed
  int64_t broadcasts = 0, broadcast_bytes = 0;     // control messages from rank 0 (which batch runs next)
  double reduce_seconds = 0;                       // wall time inside all-reduces and gathers
};

// The processes that share one model (tensor parallelism: each holds a slice of every layer). The model
// calls it at its reduction points; the runtime uses it to make the other ranks follow rank 0.
// This base class is one process: every call is a no-op. dist/job.cpp implements it over MPI.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // x[0, n) = the element-wise sum of every rank's x; every rank gets the same bits (the routing of
  // the experts, computed on every rank from the reduced stream, must agree).
  virtual void all_reduce_sum(float* x, int64_t n) {}
  // x: [rows, cols], this rank's columns of a matrix split evenly by columns, ranks in order. On rank 0,
  // x becomes the whole [rows, size·cols] matrix (x must have room for it); elsewhere x is left as is.
  virtual void gather_columns(float* x, int64_t rows, int64_t cols) {}
  // Rank 0's data[0, bytes) to every rank. A rank waiting here for rank 0 sleeps rather than spins.
  virtual void broadcast(void* data, size_t bytes) {}
  // Every rank's text in rank order, on rank 0; an empty list elsewhere.
  virtual std::vector<std::string> gather_text(const std::string& text) { return {text}; }
  virtual CommStats stats() const { return {}; }

  // Collective: "" when every rank's `error` is empty, else one message naming each failed rank and
  // host (identical errors are listed once), the same on every rank.
  std::string agree(const std::string& error);
  // "rank R (host)" of this process, for messages.
  std::string where() const;
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
