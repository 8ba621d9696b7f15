// A fixed set of worker threads, created once per engine context and reused for every parallel loop
// of the forward pass (hundreds per token), so a loop costs a wake-up, not a thread start. Workers spin
// briefly before sleeping: decode issues loops back to back, and a condition-variable round trip per
// loop would cost more than a small matrix product.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "util/function_ref.h"

namespace groak {

class ThreadPool {
 public:
  // n_threads >= 1 (the caller counts too: n_threads - 1 workers are started).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread) for every task in [0, n_tasks); thread t runs the contiguous tasks
  // [t·n/T, (t+1)·n/T), so which thread computes what is fixed by (n_tasks, size()). Returns when all
  // are done. fn must not throw. Not re-entrant: fn must not call run().
  void run(int64_t n_tasks, FunctionRef<void(int64_t task, int thread)> fn);

  // Threads the machine offers (at least 1).
  static int hardware_threads();

 private:
  void worker(int index);
  void run_share(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  const FunctionRef<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<uint64_t> generation_{0};  // bumped for each run(); workers wait for a new value
  std::atomic<int> pending_{0};          // workers still busy with the current run
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace groak
