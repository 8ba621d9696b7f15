// A restricted reader for the pickles of xAI's raw Grok-1 checkpoint (spec §8). It interprets the
// opcode stream (io/pickle_vm.h) without executing or importing anything: only whitelisted globals, REDUCE/NEWOBJ/BUILD
// only in the forms numpy and QuantizedWeight8bit use, every length bounds-checked against the file.
// Array payloads are returned as byte ranges of the (mapped) file: zero copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace groak {

enum class ArrayDType : uint8_t { F32, I8, BF16 };
const char* dtype_name(ArrayDType t);
size_t dtype_size(ArrayDType t);

struct PickledArray {
  ArrayDType dtype = ArrayDType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // payload position in the file (unaligned in general)
  uint64_t nbytes = 0;  // = prod(shape) * dtype_size, checked
  std::string shape_str() const;
};

struct PickledTensor {
  enum class Kind : uint8_t { Array, QuantizedWeight8bit };
  Kind kind = Kind::Array;
  PickledArray array;    // Kind::Array
  PickledArray weight;   // Kind::QuantizedWeight8bit: int8
  PickledArray scales;   // Kind::QuantizedWeight8bit: bf16
};

// Parses one pickle held in data[0, size). `file` is used in error messages. Throws groak::Error.
PickledTensor parse_xai_pickle(const uint8_t* data, size_t size, const std::string& file);

}  // namespace groak
