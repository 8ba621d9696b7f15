// The 8-row interleaved layout of Q4_0 and Q8_0 matrices ("rows8"), which the AVX-512 VNNI table reads in
// one stream for both decode and prefill (llama.cpp repacks Q4_0 the same way at load, its CPU "extra
// buffer"). A product then needs no fold of 8 rows' lanes, no gather of 8 scales and no per-pass panel
// copy: one vpdpbusd advances 8 outputs by 4 inputs.
//
// Rows o = 8·g … 8·g+7 form group g (past n_out the last row repeats); the groups follow each other, and a
// group holds its blocks k = 0 … n_in/32−1 in order, each block:
//   8 × f16 scales (row 0 … 7), then (B−2)/4 chunks of 32 bytes: chunk c = bytes [4c, 4c+4) of each of the
//   8 rows' quants (row 0's 4 bytes first). Q4_0: 4 chunks whose low nibbles are inputs 4c…4c+3 and high
//   nibbles inputs 16+4c…; Q8_0: 8 chunks of int8 inputs 4c…4c+3.
// So a block of 8 rows takes exactly the bytes of the 8 rows' blocks (144 for Q4_0, 272 for Q8_0).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/tensor.h"

namespace groak {

// Whether w can be repacked: a Ggml Q4_0 or Q8_0 matrix of [out, in] rows, not already repacked.
bool rows8_eligible(const Matrix& w);
// Bytes of w's repacked copy (whole groups of 8 rows).
size_t rows8_bytes(const Matrix& w);
// Bytes of one group of 8 rows in the repacked layout.
size_t rows8_group_bytes(const Matrix& w);
// Writes groups [g0, g1) of w's repacked copy to out + g0·rows8_group_bytes(w) (w: eligible).
void rows8_pack(const Matrix& w, int64_t g0, int64_t g1, uint8_t* out);
// The matrix that reads `data` (w's repacked copy) as the kernels see it.
Matrix rows8_view(const Matrix& w, const uint8_t* data);

}  // namespace groak
