#include "io/npy.h"

#include <bit>
#include <cstring>

#include "io/output_file.h"
#include "util/error.h"

namespace groak {

static_assert(std::endian::native == std::endian::little, "the .npy descriptors below say little-endian");

std::string npy_bytes(const char* descr, const std::vector<int64_t>& shape, const void* data, size_t count,
                      size_t element_bytes) {
  constexpr size_t kAlign = 64;  // numpy aligns the data to 64 bytes since 1.14
  constexpr size_t kPrefix = 10; // magic (6) + version (2) + header length (2)
  size_t n = 1;
  std::string dims;
  for (int64_t s : shape) {
    if (s < 0) throw Error(".npy: negative dimension " + std::to_string(s));
    n *= static_cast<size_t>(s);
    dims += std::to_string(s) + ", ";
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // (3,) keeps its comma; (2, 3) does not end with one
  if (n != count)
    throw Error(".npy: shape holds " + std::to_string(n) + " elements but " + std::to_string(count) + " were given");
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t padded = (kPrefix + header.size() + 1 + kAlign - 1) / kAlign * kAlign;
  header.append(padded - kPrefix - header.size() - 1, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  const size_t at = out.size();
  out.resize(at + count * element_bytes);
  if (count) std::memcpy(out.data() + at, data, count * element_bytes);
  return out;
}

namespace {
template <class T>
void write(const std::string& path, const char* descr, const std::vector<int64_t>& shape, const std::vector<T>& v,
           const std::vector<std::string>& inputs) {
  const std::string bytes = npy_bytes(descr, shape, v.data(), v.size(), sizeof(T));
  write_file_atomic(path, bytes.data(), bytes.size(), inputs);
}
}  // namespace

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data,
               const std::vector<std::string>& inputs) {
  write(path, "<f4", shape, data, inputs);
}
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<int32_t>& data,
               const std::vector<std::string>& inputs) {
  write(path, "<i4", shape, data, inputs);
}
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<int64_t>& data,
               const std::vector<std::string>& inputs) {
  write(path, "<i8", shape, data, inputs);
}

}  // namespace groak
