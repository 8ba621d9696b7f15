// Writes GGUF v3 files the way llama.cpp's gguf-py does: header, metadata, tensor infos, then the
// tensor data, each tensor aligned to `alignment` bytes. Tensor data is streamed in pieces, so a
// writer never holds a whole tensor. The file is written under FILE.tmp and renamed by commit(), so
// the parts of a split set can all appear at once, after the last one is complete.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace groak {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path, uint32_t alignment = 32);
  ~GgufWriter();  // an unfinished file is removed
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, in the order added.
  void add_u16(const std::string& key, uint16_t v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);

  // Declares a tensor: ne[0] is the contiguous dimension; `bytes` its data size for `ggml_type`.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type, uint64_t bytes);

  // Writes header, metadata and tensor infos; then tensor data in declaration order.
  void write_header();
  void write_data(const void* p, size_t n);  // appends to the current tensor
  void end_tensor();                         // checks its size, pads to the alignment
  void finish();                             // all tensors written: flush and close (still FILE.tmp)
  void commit();                             // after finish(): rename FILE.tmp to FILE

  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return written_; }

 private:
  void raw(const void* p, size_t n);
  void kv_header(const std::string& key, uint32_t type);
  void str(const std::string& s);

  struct TensorInfo {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t type;
    uint64_t bytes, offset;
  };
  std::string path_, tmp_;
  uint32_t alignment_;
  std::FILE* f_ = nullptr;
  std::vector<uint8_t> kv_;  // serialised metadata
  uint64_t kv_count_ = 0;
  std::vector<TensorInfo> tensors_;
  size_t current_ = 0;       // tensor being written
  uint64_t current_bytes_ = 0;
  uint64_t written_ = 0;
  bool header_done_ = false, finished_ = false, committed_ = false;
};

// GGUF metadata value types.
enum GgufValueType : uint32_t {
  kGgufU8 = 0, kGgufI8 = 1, kGgufU16 = 2, kGgufI16 = 3, kGgufU32 = 4, kGgufI32 = 5, kGgufF32 = 6,
  kGgufBool = 7, kGgufString = 8, kGgufArray = 9, kGgufU64 = 10, kGgufI64 = 11, kGgufF64 = 12,
};

}  // namespace groak
