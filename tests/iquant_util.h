// Test data in the formats groak reads but cannot write (i-quants, ternary, MXFP4): random blocks. Any bytes
// are a valid block of these types (every index is inside its grid), so random bytes reach every grid entry,
// sign pattern and scale; only the scale field is overwritten with a finite, moderate value.
#pragma once
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant.h"

namespace groak::test {

// The block types of quant_iquants.cpp.
inline const std::vector<GgmlType>& iquant_types() {
  static const std::vector<GgmlType> v = {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                                          GgmlType::IQ3_S,   GgmlType::IQ1_S,  GgmlType::IQ1_M, GgmlType::IQ4_NL,
                                          GgmlType::IQ4_XS,  GgmlType::TQ1_0,  GgmlType::TQ2_0, GgmlType::MXFP4};
  return v;
}

// n_blocks random blocks of type t (an iquant_types() entry); scales of magnitude around `scale`.
inline std::vector<uint8_t> random_iquant_blocks(GgmlType t, size_t n_blocks, uint32_t seed, float scale = 0.01f) {
  const size_t bytes = type_size(t);
  std::vector<uint8_t> v(n_blocks * bytes);
  std::mt19937 g(seed);
  for (uint8_t& b : v) b = static_cast<uint8_t>(g());
  std::uniform_real_distribution<float> ud(0.25f * scale, 2.f * scale);
  for (size_t k = 0; k < n_blocks; ++k) {
    uint8_t* b = v.data() + k * bytes;
    const float d = (g() & 1 ? -1.f : 1.f) * ud(g);
    const uint16_t h = f32_to_fp16(d);
    switch (t) {
      case GgmlType::IQ1_M:  // nibble j of d in the top nibble of scale word j (bytes 48…55)
        for (int j = 0; j < 4; ++j) {
          uint16_t w;
          std::memcpy(&w, b + 48 + 2 * j, 2);
          w = static_cast<uint16_t>((w & 0x0fff) | (((h >> (4 * j)) & 0xf) << 12));
          std::memcpy(b + 48 + 2 * j, &w, 2);
        }
        break;
      case GgmlType::TQ1_0: std::memcpy(b + 52, &h, 2); break;
      case GgmlType::TQ2_0: std::memcpy(b + 64, &h, 2); break;
      case GgmlType::MXFP4: b[0] = static_cast<uint8_t>(118 + g() % 8); break;  // 2^-10 … 2^-3
      default: std::memcpy(b, &h, 2); break;
    }
  }
  return v;
}

}  // namespace groak::test
