// libFuzzer target: the GGUF reader (src/io/gguf.h) on an in-memory image, then every accessor a loader
// would use on what it returns, and the dequantisation of each tensor's first row (any bytes are a valid
// block of every type groak reads: the decoders must stay inside their block and their codebooks).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/gguf.h"
#include "kernels/quant.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    groak::GgufFile f = groak::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz-input");
    for (const groak::GgufKV& kv : f.metadata()) (void)kv.value.describe();
    for (const groak::GgufTensor& t : f.tensors()) {
      // ASan checks that both ends of each view lie inside the image.
      if (t.nbytes > 0) {
        volatile uint8_t ends = static_cast<uint8_t>(t.data[0] ^ t.data[t.nbytes - 1]);
        (void)ends;
      }
      if (t.n_elements() > 0 && t.ne[0] <= (1 << 16)) {  // a first row exists (a [4, 0] tensor has none)
        std::vector<float> row(static_cast<size_t>(t.ne[0]));
        groak::dequantize_row(t.type, t.data, row.data(), t.ne[0]);
      }
      (void)t.n_rows();
      (void)t.shape_str();
      if (f.find_tensor(t.name) == nullptr) __builtin_trap();
    }
    try {
      (void)f.architecture();
    } catch (const groak::Error&) {
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
