// What every fuzz target checks about the views a parser hands out.
#pragma once
#include <cstddef>
#include <cstdint>

namespace groak::fuzz {

// A view [p, p + n) must lie inside the input [data, data + size); its two ends are read so that ASan checks
// them too. Traps otherwise.
inline void check_view(const uint8_t* data, size_t size, const uint8_t* p, uint64_t n) {
  if (p < data || n > size || p + n > data + size) __builtin_trap();
  if (n > 0) {
    volatile uint8_t ends = static_cast<uint8_t>(p[0] ^ p[n - 1]);
    (void)ends;
  }
}

}  // namespace groak::fuzz
