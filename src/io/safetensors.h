// Hugging Face safetensors (a single file or a sharded set with model.safetensors.index.json).
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to its start. Every field and range is checked against the
// buffer before a view is handed out; tensors are zero-copy views into the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

namespace groak {

// What groak computes with; every other dtype of the format is parsed (so sizes are still checked) and
// reported as Other, keeping its name in SafeTensor::dtype_name for the error a consumer raises.
enum class SafeDType : uint8_t { F32, F16, BF16, Other };

struct SafeTensor {
  std::string name;
  SafeDType dtype = SafeDType::Other;
  std::string dtype_name;       // as written in the header: "BF16", "I64", "F8_E4M3", ...
  std::vector<int64_t> shape;   // [] is a scalar
  const uint8_t* data = nullptr;  // into the buffer/mapping; NOT aligned in general (use memcpy)
  uint64_t nbytes = 0;          // = numel * dtype size, checked
  uint64_t offset = 0;          // absolute position of data in the file
  std::string file;             // the file it came from (for error messages)

  int64_t numel() const;
  std::string shape_str() const;  // "[131072, 6144]"
  // Throws groak::Error naming the tensor and file unless dtype is F32, F16 or BF16.
  void require_float() const;
};

// The parsed header of one safetensors image held in memory.
struct SafetensorsHeader {
  std::vector<SafeTensor> tensors;               // sorted by name
  std::map<std::string, std::string> metadata;   // "__metadata__" (may be empty)
  uint64_t data_start = 0;                       // 8 + N
};

// Buffer-level entry (also the fuzz target): parses and validates data[0, size). `file` names the source
// in errors and is copied into each SafeTensor. Throws groak::Error; never reads outside the buffer.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& file);

// Parses the text of a model.safetensors.index.json: tensor name -> shard file name (as written).
// Rejects shard names that are not plain file names in the index's folder. Throws groak::Error.
std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text,
                                                           const std::string& file);

// One mapped .safetensors file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);  // throws groak::Error

  const std::vector<SafeTensor>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::string& path() const { return map_.path(); }
  const SafeTensor* find(const std::string& name) const;  // nullptr if absent

 private:
  MappedFile map_;
  SafetensorsHeader header_;
};

// A whole model: `model.safetensors`, a sharded set described by `model.safetensors.index.json`, or a
// folder holding either. Every shard is mapped and parsed up front, so a damaged set fails at open().
class SafetensorsModel {
 public:
  static SafetensorsModel open(const std::string& dir_or_file);  // throws groak::Error

  const SafeTensor* find(const std::string& name) const;  // nullptr if absent
  const SafeTensor& get(const std::string& name) const;   // throws groak::Error if absent
  size_t size() const { return by_name_.size(); }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& source() const { return source_; }  // the file or index that was opened

 private:
  std::string source_;
  std::vector<SafetensorsFile> files_;
  // Points into files_[i].tensors(); those vectors never change after open(), and moving the model moves
  // their heap buffers, so the pointers stay valid.
  std::unordered_map<std::string, const SafeTensor*> by_name_;
};

}  // namespace groak
