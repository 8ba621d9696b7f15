// Measurements of the machine itself, taken in the same run as a benchmark so that ratios hold on a
// shared, noisy machine: read bandwidth from memory and the peak rate of f32 fused multiply-adds.
#pragma once
#include <cstddef>

#include "kernels/thread_pool.h"

namespace groak {

// GB/s reading `bytes` of memory (far larger than the caches) on every thread of the pool: each thread
// streams its own share; the best of `reps` passes. bytes = 0: 512 MB, or an eighth of the memory budget
// where that is less (a benchmark under a memory cap must not be killed by its own probe); 0 GB/s (not
// measured) where that eighth is under 64 MB, too little to get past the caches.
double probe_read_bandwidth(ThreadPool& pool, size_t bytes = 0, int reps = 3);

// The memory this process may still take: MemAvailable of /proc/meminfo, or its cgroup's limit (v2
// memory.max, v1 memory.limit_in_bytes) where that is smaller. 0 where none can be read.
size_t memory_budget_bytes();

// Peak f32 multiply-adds per second (in G) on every thread, with register-resident operands: the
// ceiling of an exact (f32-activation) matrix product. 16-lane AVX-512 FMA where the CPU has it, else
// 8-lane AVX2+FMA, else scalar.
double probe_fma_gmacs(ThreadPool& pool);

}  // namespace groak
