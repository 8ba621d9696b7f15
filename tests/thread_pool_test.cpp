// The pool every parallel loop runs on: each task exactly once, in both scheduling modes, and the
// dynamic mode really lets the other threads take the work of a stalled one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels/thread_pool.h"

namespace groak {
namespace {

TEST(ThreadPool, EveryTaskRunsOnceInBothModes) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      for (bool dynamic : {false, true}) {
        std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
        std::atomic<bool> bad_thread{false};
        const auto fn = [&](int64_t task, int thread) {
          runs[static_cast<size_t>(task)].fetch_add(1);
          if (thread < 0 || thread >= threads) bad_thread = true;
        };
        if (dynamic)
          pool.run_dynamic(n, fn);
        else
          pool.run(n, fn);
        for (int64_t i = 0; i < n; ++i)
          EXPECT_EQ(runs[static_cast<size_t>(i)].load(), 1) << threads << " threads, " << n << " tasks, task " << i
                                                            << (dynamic ? " (dynamic)" : " (static)");
        EXPECT_FALSE(bad_thread);
      }
    }
  }
}

// The caller's first task waits until every other task is done. Static shares would leave half of the
// tasks to the stalled caller (the wait times out and the test fails); dynamic claiming lets the
// worker take all of them.
TEST(ThreadPool, DynamicTasksFlowAroundAStalledThread) {
  ThreadPool pool(2);
  constexpr int64_t kTasks = 64;
  std::atomic<int64_t> done_by_worker{0};
  std::atomic<int64_t> done_by_caller{0};
  std::atomic<bool> timed_out{false};
  pool.run_dynamic(kTasks, [&](int64_t, int thread) {
    if (thread != 0) {
      done_by_worker.fetch_add(1);
      return;
    }
    if (done_by_caller.fetch_add(1) == 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (done_by_worker.load() < kTasks - 1)  // every task but this one
        if (std::chrono::steady_clock::now() > deadline) {
          timed_out = true;
          break;
        } else {
          std::this_thread::yield();
        }
    }
  });
  EXPECT_FALSE(timed_out) << "the worker did not take the stalled caller's tasks";
  // The worker may even claim all of them before the caller starts its share.
  EXPECT_LE(done_by_caller.load(), 1);
  EXPECT_EQ(done_by_caller.load() + done_by_worker.load(), kTasks);
}

}  // namespace
}  // namespace groak
