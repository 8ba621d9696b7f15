// libFuzzer target: the restricted pickle reader of xAI's checkpoint (src/io/xai_pickle.h).
// It returns payload ranges as offsets, which ASan cannot see, so the target checks them itself.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/xai_pickle.h"
#include "util/error.h"

namespace {

void check_range(const groak::PickledArray& a, const uint8_t* data, size_t size) {
  if (a.offset > size) __builtin_trap();
  groak::fuzz::check_view(data, size, data + a.offset, a.nbytes);
  (void)a.shape_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    groak::PickledTensor t = groak::parse_xai_pickle(data, size, "fuzz-input");
    if (t.kind == groak::PickledTensor::Kind::Array) {
      check_range(t.array, data, size);
    } else {
      check_range(t.weight, data, size);
      check_range(t.scales, data, size);
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
