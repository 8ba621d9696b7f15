// Internal to the x86 tables: the AVX-512 VNNI k-quant kernels of avx512_kquants.cpp, which
// avx512_vnni.cpp's table calls for the products avx2::kquant_covers() accepts (Q2_K … Q6_K rows
// against q8_K activations). Call only from code that already runs on a CPU with AVX-512 F/VL/BW/VNNI.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
namespace groak::avx512 {

// y[:, o0:o1) = x·W; a.xq holds the rows of x as q8_K blocks. Bit-identical to avx2::kquant_matmul.
void kquant_matmul(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch);

}  // namespace groak::avx512
#endif
