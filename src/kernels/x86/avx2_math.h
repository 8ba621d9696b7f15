// Internal to the x86 tables: elementwise math of avx2_math.cpp (the activation function), for code that
// already runs with AVX2+FMA (the avx2 table checks the CPU once).
#pragma once
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
namespace groak::avx2 {

// x = gelu_tanh(x) in place, [n]: the tanh approximation (jax.nn.gelu's default), computed as
// u·sigmoid(2z) = u / (1 + e^(−2z)), z = √(2/π)·(u + 0.044715·u³) — the same function as
// 0.5·u·(1 + tanh z), without its cancellation for negative u; within a few ulp of the exact value.
void gelu_tanh(float* x, int64_t n);

// x = cap·tanh(x·mult/cap) in place, [n]: tanh as Cephes' tanhf (a polynomial below 0.625, else
// 1 − 2/(e^(2|y|) + 1)), within a couple of ulp.
void soft_cap(float* x, int64_t n, float cap, float mult);

// x = softmax(x) in place, [n]: the max subtracted, e^x to ~1 ulp (0 below −87.3, as expf underflows),
// the sum in double in a fixed order (4 lanes, then a fixed tree), as the reference sums in double.
void softmax(float* x, int64_t n);

}  // namespace groak::avx2
#endif
