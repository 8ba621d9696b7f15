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

  // The same, but each thread claims the next task in order until none is left: a thread slowed by
  // the machine (a busy neighbour, an interrupt) does fewer tasks instead of making the others wait.
  // For work whose result does not depend on which thread runs it (the products: kernels.h).
  void run_dynamic(int64_t n_tasks, FunctionRef<void(int64_t task, int thread)> fn);

  // Threads the machine offers (at least 1).
  static int hardware_threads();

  // Loops that woke the workers (a loop of one task runs on the caller and is not one), and with timing
  // on, the seconds spent inside them: the rest of a step is serial (`groak bench --profile`).
  struct Stats {
    int64_t loops = 0;
    double seconds = 0;
  };
  Stats stats() const { return stats_; }
  void set_timing(bool on) { timing_ = on; }

 private:
  void worker(int index);
  void run_share(int thread);
  void start(int64_t n_tasks, const FunctionRef<void(int64_t, int)>& fn, bool dynamic);

  int n_threads_;
  std::vector<std::thread> workers_;
  const FunctionRef<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  bool dynamic_ = false;
  std::atomic<int64_t> next_{0};  // run_dynamic: the next unclaimed task
  Stats stats_;                   // written by the caller only
  bool timing_ = false;
  std::atomic<uint64_t> generation_{0};  // bumped for each run(); workers wait for a new value
  std::atomic<int> pending_{0};          // workers still busy with the current run
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace groak
