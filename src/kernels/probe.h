// Measurements of the machine itself, taken in the same run as a benchmark so that ratios hold on a
// shared, noisy machine: read bandwidth from memory and the peak rate of f32 fused multiply-adds.
#pragma once
#include <cstddef>

#include "kernels/thread_pool.h"

namespace groak {

// GB/s reading `bytes` of memory (far larger than the caches) on every thread of the pool: each thread
// streams its own share; the best of `reps` passes.
double probe_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int reps = 3);

// Peak f32 multiply-adds per second (in G) on every thread, with register-resident operands: the
// ceiling of an exact (f32-activation) matrix product. 16-lane AVX-512 FMA where the CPU has it, else
// 8-lane AVX2+FMA, else scalar.
double probe_fma_gmacs(ThreadPool& pool);

}  // namespace groak
