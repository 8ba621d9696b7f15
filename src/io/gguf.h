// A reader for GGUF v2/v3 files (llama.cpp's model format), single files and split sets
// (`name-00001-of-00003.gguf` …). It maps each file and returns tensors as views into the mapping: zero
// copy. Every count, length, offset and size is checked against the file before use, so a damaged or
// hostile file gives a groak::Error naming the file, the key or tensor, and what was wrong — never a crash.
// Generic: it knows nothing about any model architecture.
//
// File layout (little-endian; ggml's gguf.cpp and docs/gguf.md):
//   "GGUF" u32 version u64 n_tensors u64 n_kv
//   n_kv × { string key, u32 value_type, value }          string = u64 length + bytes (no NUL)
//   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to `general.alignment` (default 32), then the data section; offsets are relative to it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"
#include "kernels/quant.h"

namespace groak {

namespace detail {
struct GgufPart;  // one parsed file of a GgufFile (defined in gguf.cpp)
}

// Metadata value types (gguf.h `enum gguf_type`).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Strings are views into the mapping (valid while the GgufFile lives).
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;         // U8, U16, U32, U64, Bool (0/1)
  int64_t i = 0;          // I8, I16, I32, I64
  double f = 0;           // F32, F64
  std::string_view str;   // String
  // Array (never nested): element type and count; numeric elements stay in the file, little-endian,
  // unaligned, elem_size(elem_type) bytes each; string elements are listed.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;
  std::vector<std::string_view> strings;

  bool is_integer() const;  // a scalar integer type (not Bool)
  bool is_float() const;    // F32 or F64
  // A short human-readable rendering ("42", "\"grok\"", "[512 × string]") for messages and tools.
  std::string describe() const;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;      // [ne0, ne1, …], ne0 innermost (contiguous), 1 to 4 entries
  const uint8_t* data = nullptr;  // into the mapping of its part; `nbytes` bytes
  uint64_t nbytes = 0;
  uint64_t file_offset = 0;     // absolute position of the data in its part (for messages)
  uint32_t part = 0;            // index into GgufFile::part_paths()

  int64_t n_elements() const;
  int64_t n_rows() const { return ne.empty() || ne[0] == 0 ? 0 : n_elements() / ne[0]; }
  std::string shape_str() const;  // "[64, 344, 8]"
};

// True when `path` is a regular file that starts with the GGUF magic (how --model recognises GGUF).
bool is_gguf_file(const std::string& path);

class GgufFile {
 public:
  // Opens a GGUF file. A name of the form <prefix>-NNNNN-of-MMMMM.gguf (any part) opens all M parts from
  // the same folder; their split.no/split.count metadata are checked and their tensors merged.
  // Throws groak::Error.
  static GgufFile open(const std::string& path);
  // Parses a GGUF image held in memory (one file, no split handling); `name` is used in messages. For
  // tests and fuzzing.
  static GgufFile from_bytes(std::vector<uint8_t> bytes, const std::string& name);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  const std::string& path() const { return name_; }  // as given to open()
  std::vector<std::string> part_paths() const;
  uint32_t version() const { return version_; }      // of the first part
  uint32_t alignment() const { return alignment_; }  // of the first part

  // Metadata of the first part (split tools put all model metadata there; later parts hold split.* only).
  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed lookups. Integer getters accept any integer type whose value fits; float getters F32 or F64.
  // A missing key or wrong type throws an Error naming the file and key; the overloads with a fallback
  // return it when the key is absent (but still throw on a wrong type).
  uint32_t get_u32(std::string_view key) const;
  uint32_t get_u32(std::string_view key, uint32_t fallback) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  float get_f32(std::string_view key, float fallback) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::string get_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;    // F32 or F64 elements
  std::vector<int64_t> get_int_array(std::string_view key) const;  // any integer elements
  uint64_t get_array_size(std::string_view key) const;
  std::string architecture() const { return get_string("general.architecture"); }

  // Tensors of all parts, in file order (part 0 first).
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;  // nullptr when absent
  const GgufTensor& tensor(std::string_view name) const;       // throws, naming the file and tensor

 private:
  using Part = detail::GgufPart;
  GgufFile();
  static GgufFile assemble(std::vector<Part> parts, const std::string& name);
  const GgufValue& require(std::string_view key, const char* wanted) const;
  [[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, const char* wanted) const;

  std::string name_;
  std::vector<Part> parts_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  std::vector<GgufKV> kvs_;
  std::unordered_map<std::string_view, size_t> kv_index_;  // keys view kvs_[i].key
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;  // keys view tensors_[i].name
};

}  // namespace groak
