// Internal to the x86 tables: the AVX2 k-quant kernels of avx2_kquants.cpp, which avx2.cpp's table
// calls for the ggml types they cover. Declared only where they are built (x86-64, GCC/Clang); call
// them only from code that already runs with AVX2+FMA+F16C (the avx2 table checks the CPU once).
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
namespace groak::avx2 {

// True when kquant_matmul multiplies w: an [out, in] ggml matrix of a k-quant type (Q2_K … Q6_K) or of a
// grid i-quant (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S: iquant_blocks.h), which share one form.
// Such a product reads its activations as q8_K blocks (ActFormat::Q8_K).
bool kquant_covers(const Matrix& w);

// y[:, o0:o1) = x·W for a w that kquant_covers(); a.xq holds the rows of x as q8_K blocks. scratch:
// kKernelScratchFloats floats (prefill panels).
void kquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch);

// quantize_row_q8_K, vectorised: the same bytes for every input (tests/simd_test.cpp checks).
void quantize_q8_K(const float* x, uint8_t* out, int64_t n);
// quantize_row_q8_0 (ggml's _ref: half away from zero), vectorised: the same bytes for every input.
void quantize_q8_0(const float* x, uint8_t* out, int64_t n);

}  // namespace groak::avx2
#endif
