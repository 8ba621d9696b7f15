// The tensors of a Hugging Face checkpoint, whatever its container: one file, or a sharded set described
// by an index JSON ({"weight_map": {tensor: shard file}}), as safetensors or as torch.save zip archives.
// A container's reader turns one mapped file into TensorViews (zero-copy, every range checked); this layer
// pairs the shards with the index and finds tensors by name. It knows nothing about the model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

namespace groak {

// What groak computes with; every other element type is parsed (so sizes are still checked) and reported as
// Other, keeping its name in TensorView::dtype_name for the error a consumer raises.
enum class TensorDType : uint8_t { F32, F16, BF16, Other };

struct TensorView {
  std::string name;
  TensorDType dtype = TensorDType::Other;
  std::string dtype_name;         // safetensors' spelling: "BF16", "F32", "I64", …
  std::vector<int64_t> shape;     // [] is a scalar; C order (row-major, contiguous)
  const uint8_t* data = nullptr;  // into the buffer/mapping; NOT aligned in general (use memcpy)
  uint64_t nbytes = 0;            // = numel * dtype size, checked
  uint64_t offset = 0;            // absolute position of data in the file
  std::string file;               // the file it came from (for error messages)

  int64_t numel() const;
  std::string shape_str() const;  // "[131072, 6144]"
  // Throws groak::Error naming the tensor and file unless dtype is F32, F16 or BF16.
  void require_float() const;
};

std::string dims_str(const std::vector<int64_t>& shape);  // "[2, 3]"

// Throws groak::Error "file: tensor 'name': what; hint" (the tensor part only when `tensor` is not empty).
[[noreturn]] void throw_tensor_error(const std::string& file, const std::string& tensor, const std::string& what,
                                     const std::string& hint);

// One mapped file and the views into it.
struct TensorFile {
  MappedFile map;
  std::vector<TensorView> tensors;  // sorted by name
  const std::string& path() const { return map.path(); }
  const TensorView* find(const std::string& name) const;  // nullptr if absent
};

// A container format of Hugging Face checkpoints: its file names and how to read one file.
struct ShardedFormat {
  const char* name;          // "safetensors"
  const char* single_file;   // "model.safetensors"
  const char* index_file;    // "model.safetensors.index.json"
  const char* extension;     // ".safetensors"
  TensorFile (*open_file)(const std::string& path);  // throws groak::Error
};

// True if `dir` holds files of the format (its index, its single file, or any file with its extension).
bool folder_holds(const std::string& dir, const ShardedFormat& format);

// Parses the text of an index JSON: tensor name -> shard file name (as written). Rejects shard names that
// are not plain file names in the index's folder. Throws groak::Error.
std::map<std::string, std::string> parse_weight_map(const std::string& json_text, const std::string& file);

// A whole model: the format's single file, a sharded set described by its index, or a folder holding either
// (or exactly one file with the format's extension). Every shard is mapped and parsed up front, so a damaged
// set fails at open().
class TensorSet {
 public:
  static TensorSet open(const std::string& dir_or_file, const ShardedFormat& format);  // throws groak::Error

  const TensorView* find(const std::string& name) const;  // nullptr if absent
  const TensorView& get(const std::string& name) const;   // throws groak::Error if absent
  size_t size() const { return by_name_.size(); }
  const std::vector<TensorFile>& files() const { return files_; }
  const std::string& source() const { return source_; }  // the file or index that was opened

 private:
  std::string source_;
  std::vector<TensorFile> files_;
  // Points into files_[i].tensors; those vectors never change after open(), and moving the set moves their
  // heap buffers, so the pointers stay valid.
  std::unordered_map<std::string, const TensorView*> by_name_;
};

}  // namespace groak
