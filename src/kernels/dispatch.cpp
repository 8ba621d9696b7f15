// Picks the kernel table once per process from the CPU's features (GROAK_KERNELS overrides, for
// benchmarks and for checking a fallback on a machine that has the faster one).
#include <cstdlib>
#include <cstring>

#include "kernels/kernels.h"

namespace groak {

const Kernels* kernels_by_name(const char* name) {
  if (!std::strcmp(name, "reference")) return &reference_kernels();
  if (!std::strcmp(name, "portable")) return &portable_kernels();
  if (!std::strcmp(name, "avx2")) return avx2_kernels();
  if (!std::strcmp(name, "avx512vnni")) return avx512_vnni_kernels();
  if (!std::strcmp(name, "avx512vnni-q8")) return avx512_vnni_q8_kernels();
  if (!std::strcmp(name, "fast")) return &fast_kernels();
  return nullptr;
}

const Kernels& fast_kernels() {
  static const Kernels* chosen = [] {
    if (const char* env = std::getenv("GROAK_KERNELS"); env && *env && std::strcmp(env, "fast") != 0)
      if (const Kernels* k = kernels_by_name(env)) return k;
    if (const Kernels* k = avx512_vnni_kernels()) return k;
    if (const Kernels* k = avx2_kernels()) return k;
    return &portable_kernels();
  }();
  return *chosen;
}

}  // namespace groak
