// Internal to the x86 tables: the AVX2 kernels of avx2_iquants.cpp for ggml's i-quants, ternary quants and
// MXFP4, which avx2.cpp's table calls for the types they cover. Declared only where they are built (x86-64,
// GCC/Clang); call them only from code that already runs with AVX2+FMA+F16C (the avx2 table checks the CPU).
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
namespace groak::avx2 {

// The activation format iquant_matmul reads for w: Q8_K for the 256-element types (IQ4_XS, TQ1_0, TQ2_0),
// Q8_0 for the 32-element ones (IQ4_NL, MXFP4), as llama.cpp's vec_dot_type; F32 when w is not an
// [out, in] matrix of one of these (not covered). The grid i-quants (IQ1_S … IQ3_S) are avx2_kquants.h's.
ActFormat iquant_act_format(const Matrix& w);
inline bool iquant_covers(const Matrix& w) { return iquant_act_format(w) != ActFormat::F32; }

// y[:, o0:o1) = x·W for a w that iquant_covers(); a.xq holds the rows of x in iquant_act_format(w).
// scratch: the thread's kKernelScratchFloats floats (64-byte aligned), for decoded weight rows.
void iquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch);

}  // namespace groak::avx2
#endif
