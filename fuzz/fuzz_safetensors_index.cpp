// libFuzzer target: the index JSON parser (model.safetensors.index.json, pytorch_model.bin.index.json) on
// arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/tensor_set.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto map = groak::parse_weight_map(std::string(reinterpret_cast<const char*>(data), size), "fuzz-index");
    for (const auto& [name, shard] : map) {
      // The reader promises plain file names: nothing that could leave the index's folder.
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) __builtin_trap();
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
