#include "kernels/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GROAK_PAUSE() _mm_pause()
#else
#define GROAK_PAUSE() ((void)0)
#endif

namespace groak {

namespace {
// Spins before sleeping: ~tens of microseconds, longer than the gap between two loops of one token.
constexpr int kSpinIterations = 20000;
}  // namespace

int ThreadPool::hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_share(int thread) {
  const int64_t n = n_tasks_, T = n_threads_;
  if (dynamic_) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n;) (*job_)(i, thread);
    return;
  }
  const int64_t begin = n * thread / T, end = n * (thread + 1) / T;
  for (int64_t i = begin; i < end; ++i) (*job_)(i, thread);
}

void ThreadPool::start(int64_t n_tasks, const FunctionRef<void(int64_t, int)>& fn, bool dynamic) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {  // on the caller: waking the workers would cost more
    for (int64_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  const auto t0 = timing_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  job_ = &fn;
  n_tasks_ = n_tasks;
  dynamic_ = dynamic;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_share(0);
  while (pending_.load(std::memory_order_acquire) != 0) GROAK_PAUSE();
  job_ = nullptr;
  ++stats_.loops;
  if (timing_) stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void ThreadPool::run(int64_t n_tasks, FunctionRef<void(int64_t, int)> fn) { start(n_tasks, fn, false); }

void ThreadPool::run_dynamic(int64_t n_tasks, FunctionRef<void(int64_t, int)> fn) { start(n_tasks, fn, true); }

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      GROAK_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    run_share(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace groak
