// libFuzzer target: the safetensors header parser on arbitrary bytes. Anything but success or a
// groak::Error (a crash, a sanitizer report, another exception type, a view outside the input) is a bug.
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    groak::SafetensorsHeader h = groak::parse_safetensors_header(data, size, "fuzz-input");
    for (const groak::SafeTensor& t : h.tensors) {
      // Views must lie inside the input; reading both ends lets ASan check it too.
      if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) __builtin_trap();
      if (t.nbytes > 0) {
        volatile uint8_t ends = static_cast<uint8_t>(t.data[0] ^ t.data[t.nbytes - 1]);
        (void)ends;
      }
      (void)t.numel();
      (void)t.shape_str();
      try {
        t.require_float();
      } catch (const groak::Error&) {
      }
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
