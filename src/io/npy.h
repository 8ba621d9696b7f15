// numpy's .npy format, version 1.0, write only (numpy/lib/format.py): the magic "\x93NUMPY", the version,
// a little-endian uint16 header length, a Python dict literal {'descr', 'fortran_order', 'shape'} padded
// with spaces and a newline so that the data starts on a 64-byte boundary, then the C-order data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace groak {

// The whole file for `count` elements of shape `shape` (their product must equal count; throws
// groak::Error otherwise). descr: "<f4", "<i4" or "<i8".
std::string npy_bytes(const char* descr, const std::vector<int64_t>& shape, const void* data, size_t count,
                      size_t element_bytes);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data,
               const std::vector<std::string>& inputs);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<int32_t>& data,
               const std::vector<std::string>& inputs);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<int64_t>& data,
               const std::vector<std::string>& inputs);

}  // namespace groak
