// libFuzzer target: the model.safetensors.index.json parser on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto map = groak::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size), "fuzz-index");
    for (const auto& [name, shard] : map) {
      // The reader promises plain file names: nothing that could leave the index's folder.
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) __builtin_trap();
    }
  } catch (const groak::Error&) {
  }
  return 0;
}
