// What the files of the GGUF reader share (internal to io/): the value types' sizes, integer widening,
// one parsed file (GgufPart) and its parser, and split-set naming.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf.h"
#include "io/mapped_file.h"

namespace groak {

namespace gguf_detail {

constexpr uint32_t kDefaultAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT
constexpr const char* kDamaged =
    "; the file is damaged, truncated or not a GGUF file (re-download it, or re-convert the model with a "
    "current llama.cpp)";

// Bytes of one element of a numeric type; 0 for String and Array (variable length).
size_t elem_size(GgufType t);
bool valid_type(uint32_t t);
std::string quoted(std::string_view s);
std::string shape_of(const std::vector<int64_t>& ne);

// Reads one element of a numeric array.
template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// An integer value of any GGUF integer type, widened; nullopt for a non-integer.
struct WideInt {
  bool negative = false;
  uint64_t magnitude = 0;  // |value|
};
std::optional<WideInt> integer_of(GgufType t, uint64_t u, int64_t i);

}  // namespace gguf_detail

// One parsed file.
struct detail::GgufPart {
  std::string path;
  MappedFile map;              // open(): the mapping
  std::vector<uint8_t> bytes;  // from_bytes(): the image
  const uint8_t* data = nullptr;
  size_t size = 0;
  uint32_t version = 0;
  uint32_t alignment = gguf_detail::kDefaultAlignment;
  uint64_t data_start = 0;
  std::vector<GgufKV> kvs;
  std::vector<GgufTensor> tensors;

  const GgufValue* find(std::string_view key) const {
    for (const GgufKV& kv : kvs)
      if (kv.key == key) return &kv.value;
    return nullptr;
  }
};

namespace gguf_detail {

// Parses and validates one file (data, size and path set): header, metadata, tensor infos, data section.
// Throws groak::Error naming the byte and the field.
void parse_part(detail::GgufPart& p);
// Reads split.count / split.no of a part as an integer; nullopt when absent.
std::optional<uint64_t> split_key(const detail::GgufPart& p, const char* key);

}  // namespace gguf_detail

}  // namespace groak
