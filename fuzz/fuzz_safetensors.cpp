// libFuzzer target: the safetensors header parser on arbitrary bytes. Anything but success or a
// groak::Error (a crash, a sanitizer report, another exception type, a view outside the input) is a bug.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    groak::SafetensorsHeader h = groak::parse_safetensors_header(data, size, "fuzz-input");
    for (const groak::TensorView& t : h.tensors) {
      groak::fuzz::check_view(data, size, t.data, t.nbytes);
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
