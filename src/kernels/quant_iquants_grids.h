// The codebooks of ggml's i-quants (internal to kernels/): format data that GGUF blocks index into, so they
// must be bit-exact. The grids are generated into quant_iquants_grids.cpp (IQ2, IQ3) and
// quant_iquants_grid_iq1.cpp (IQ1) by scripts/gen_iquant_grids.py from llama.cpp's gguf-py and checked
// against ggml-common.h; the small tables below follow from their definitions. Entry i of a grid packs its
// 8 (or 4) elements as ggml-common.h does: byte j = element j.
#pragma once
#include <cstdint>

namespace groak::quant {

// 8-element grids of unsigned magnitudes (signs are stored separately): values 0x08, 0x19, 0x2b.
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
// 4-element grids: IQ3_XXS values 0x04 … 0x3e (4, 12, 20, 28, 36, 44, 52, 62); IQ3_S odd values 1 … 15.
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
// 8-element ternary grid of IQ1_S / IQ1_M: int8 values −1, 0, +1 (bytes 0xff, 0x00, 0x01).
extern const uint64_t iq1s_grid[2048];

// ggml's ksigns_iq2xs: 7 stored sign bits of 8 weights, the 8th bit chosen so that the number of minus
// signs is even (ksigns[i] = i | parity(i) << 7). Bit j set = weight j is negative.
constexpr uint8_t ksigns_iq2xs(uint32_t i) {
  const uint32_t p = (i ^ (i >> 1) ^ (i >> 2) ^ (i >> 3) ^ (i >> 4) ^ (i >> 5) ^ (i >> 6)) & 1u;
  return static_cast<uint8_t>((i & 127u) | (p << 7));
}

// kvalues_iq4nl (ggml-quants.c): the 16 non-linear levels of IQ4_NL and IQ4_XS.
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// kvalues_mxfp4 (ggml-common.h of llama.cpp after mid 2025): the 16 FP4 E2M1 values, doubled so that they
// are integers (0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6 times 2); the E8M0 scale is halved to match.
inline constexpr int8_t kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

inline constexpr float kIq1Delta = 0.125f;  // IQ1S_DELTA = IQ1M_DELTA

}  // namespace groak::quant
