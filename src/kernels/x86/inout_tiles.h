// Internal to the x86 tables: the [in, out] product (xAI int8, f32) of avx2.cpp, whose prefill path
// packs 16-column f32 panels and runs register tiles over them, and the AVX-512 tile that covers two
// panels at once (avx512_f32.cpp). Call only from code that already runs with AVX2+FMA+F16C; pass a
// PanelPairTile only where the CPU has AVX-512F.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
namespace groak::avx2 {

// Activation rows per two-panel tile.
inline constexpr int64_t kPairTileRows = 8;

// Panels: [k][16] f32, one per 16 output columns. R ≤ kPairTileRows activation rows x[r * n_in + i], i < k; per
// column the chain acc = fma(x[i], panel[i][c], acc) in increasing i, continued from acc_a / acc_b
// ([R][16] each), exactly as avx2.cpp's own tile, so the result does not depend on which tile ran.
using PanelPairTile = void (*)(int64_t R, const float* panel_a, const float* panel_b, const float* x,
                               int64_t n_in, int64_t k, float* acc_a, float* acc_b);

// The same chains over two int8 panels side by side: row i of the pair is 32 int8 at p8 + i * stride.
using PanelPairTileI8 = void (*)(int64_t R, const int8_t* p8, int64_t stride, const float* x, int64_t n_in, int64_t k,
                                 float* acc_a, float* acc_b);

// The AVX-512 table's tiles of two adjacent panels; without them AVX2's one-panel tiles run.
struct PairTiles {
  PanelPairTile f32 = nullptr;
  PanelPairTileI8 i8 = nullptr;  // xAI int8: panels stay int8 (4x fewer bytes to write than widened)
};

// y[:, o0:o1) = x·W for an [in, out] matrix (Layout::InOut).
void matmul_inout(const MatmulArgs& a, int64_t o0, int64_t o1, float* scratch, PairTiles pair);

}  // namespace groak::avx2

namespace groak::avx512 {
// Two panels per tile in zmm registers: R rows × 32 columns, 16 accumulators at R = 8.
void panel_pair_tile(int64_t R, const float* panel_a, const float* panel_b, const float* x, int64_t n_in,
                     int64_t k, float* acc_a, float* acc_b);
void panel_pair_tile_i8(int64_t R, const int8_t* p8, int64_t stride, const float* x, int64_t n_in, int64_t k,
                        float* acc_a, float* acc_b);
}  // namespace groak::avx512
#endif
