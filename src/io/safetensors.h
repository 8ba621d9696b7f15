// Hugging Face safetensors (a single file or a sharded set with model.safetensors.index.json, io/tensor_set.h).
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to its start. Every field and range is checked against the
// buffer before a view is handed out; tensors are zero-copy views into the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/tensor_set.h"

namespace groak {

// The parsed header of one safetensors image held in memory.
struct SafetensorsHeader {
  std::vector<TensorView> tensors;               // sorted by name
  std::map<std::string, std::string> metadata;   // "__metadata__" (may be empty)
  uint64_t data_start = 0;                       // 8 + N
};

// Buffer-level entry (also the fuzz target): parses and validates data[0, size). `file` names the source
// in errors and is copied into each TensorView. Throws groak::Error; never reads outside the buffer.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& file);

// One mapped .safetensors file. Throws groak::Error.
TensorFile open_safetensors_file(const std::string& path);

// model.safetensors, model-0000K-of-0000N.safetensors + model.safetensors.index.json.
extern const ShardedFormat kSafetensorsFormat;

}  // namespace groak
