// libFuzzer target: torch.save archives (src/io/torch_bin.h): the zip central directory, then data.pkl through
// the restricted pickle machine, then every tensor checked against its storage. data.pkl's CRC is not
// checked here, so that mutated pickles reach the reader. Anything but success or a groak::Error (a crash, a
// sanitizer report, another exception type, a view outside the input) is a bug.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/torch_bin.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    for (const groak::TensorView& t : groak::parse_torch_zip(data, size, "fuzz-input", groak::PickleCrc::Skip)) {
      groak::fuzz::check_view(data, size, t.data, t.nbytes);
      (void)t.numel();
      (void)t.shape_str();
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
