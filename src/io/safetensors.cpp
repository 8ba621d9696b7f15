#include "io/safetensors.h"

#include <algorithm>
#include <limits>

#include "io/json_text.h"
#include "util/error.h"

namespace groak {

using json = nlohmann::json;

namespace {

// The reference implementation (huggingface/safetensors) refuses headers above 100 MB. A real header is a
// few hundred KB (about 150 bytes per tensor), and the JSON DOM of one costs several times its size, so
// groak stops at 16 MB (over 100,000 tensors): anything bigger is a damaged length field, not a model.
constexpr uint64_t kMaxHeaderBytes = 16'000'000;
constexpr size_t kMaxRank = 16;
constexpr size_t kHeaderLenBytes = 8;

const char* const kDamagedHint =
    "the file is damaged or was not written by a safetensors writer (re-download it, or re-export it with "
    "safetensors.torch.save_file)";

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& what,
                       const std::string& hint) {
  throw_tensor_error(file, tensor, what, hint);
}

struct DTypeInfo {
  const char* name;
  unsigned bits;  // sub-byte types (F4, F6_*) exist in the format
  TensorDType dtype;
};

// Every dtype of the safetensors format (v0.6); only the first three are computed with.
constexpr DTypeInfo kDTypes[] = {
    {"F32", 32, TensorDType::F32},      {"F16", 16, TensorDType::F16},      {"BF16", 16, TensorDType::BF16},
    {"F64", 64, TensorDType::Other},    {"I64", 64, TensorDType::Other},    {"U64", 64, TensorDType::Other},
    {"I32", 32, TensorDType::Other},    {"U32", 32, TensorDType::Other},    {"I16", 16, TensorDType::Other},
    {"U16", 16, TensorDType::Other},    {"I8", 8, TensorDType::Other},      {"U8", 8, TensorDType::Other},
    {"BOOL", 8, TensorDType::Other},    {"F8_E4M3", 8, TensorDType::Other}, {"F8_E5M2", 8, TensorDType::Other},
    {"F8_E8M0", 8, TensorDType::Other}, {"F6_E2M3", 6, TensorDType::Other}, {"F6_E3M2", 6, TensorDType::Other},
    {"F4", 4, TensorDType::Other},      {"C64", 64, TensorDType::Other},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string known_dtypes() {
  std::string s;
  for (const auto& d : kDTypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

TensorView parse_entry(const std::string& name, const json& e, const uint8_t* data, size_t size,
                       uint64_t data_start, const std::string& file) {
  if (!e.is_object())
    fail(file, name, "expected an object {dtype, shape, data_offsets}, found " + json_type_of(e), kDamagedHint);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) fail(file, name, std::string("the field \"") + key + "\" is missing", kDamagedHint);

  TensorView t;
  t.name = name;
  t.file = file;

  const json& jd = e["dtype"];
  if (!jd.is_string()) fail(file, name, "\"dtype\" should be a string, found " + json_type_of(jd), kDamagedHint);
  t.dtype_name = jd.get<std::string>();
  const DTypeInfo* dt = find_dtype(t.dtype_name);
  if (!dt) {
    fail(file, name, "unknown dtype \"" + t.dtype_name + "\" (expected one of " + known_dtypes() + ")",
         "the file was written by a newer or non-standard writer; convert this tensor to BF16, F16 or F32");
  }
  t.dtype = dt->dtype;

  const json& js = e["shape"];
  if (!js.is_array()) fail(file, name, "\"shape\" should be an array, found " + json_type_of(js), kDamagedHint);
  if (js.size() > kMaxRank)
    fail(file, name, "rank " + std::to_string(js.size()) + " above the limit " + std::to_string(kMaxRank),
         kDamagedHint);
  uint64_t count = 1;
  bool overflow = false;
  for (const json& d : js) {
    if (!d.is_number_unsigned())
      fail(file, name, "a shape dimension should be a non-negative integer, found " + json_type_of(d), kDamagedHint);
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(file, name, "shape dimension " + std::to_string(v) + " does not fit int64", kDamagedHint);
    t.shape.push_back(static_cast<int64_t>(v));
    if (v != 0 && count > std::numeric_limits<uint64_t>::max() / v) overflow = true;
    count *= v;  // wraps only when overflow is set, and then count is not used
  }
  // The element count times the element size must fit 64 bits, as the reference writer checks.
  unsigned __int128 bits = static_cast<unsigned __int128>(count) * dt->bits;
  if (overflow || bits / 8 > std::numeric_limits<uint64_t>::max()) {
    fail(file, name, "the byte size of shape " + dims_str(t.shape) + " x " + t.dtype_name + " overflows 64 bits",
         kDamagedHint);
  }
  if (bits % 8 != 0) {
    fail(file, name,
         std::to_string(count) + " elements of " + t.dtype_name + " do not fill a whole number of bytes",
         kDamagedHint);
  }
  uint64_t want = static_cast<uint64_t>(bits / 8);

  const json& jo = e["data_offsets"];
  if (!jo.is_array() || jo.size() != 2)
    fail(file, name, "\"data_offsets\" should be [begin, end], found " + jo.dump(), kDamagedHint);
  for (const json& o : jo)
    if (!o.is_number_unsigned())
      fail(file, name, "a data offset should be a non-negative integer, found " + json_type_of(o), kDamagedHint);
  uint64_t begin = jo[0].get<uint64_t>();
  uint64_t end = jo[1].get<uint64_t>();
  uint64_t data_bytes = size - data_start;
  if (begin > end)
    fail(file, name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] run backwards",
         kDamagedHint);
  if (end > data_bytes) {
    fail(file, name,
         "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end past the data section (" +
             std::to_string(data_bytes) + " bytes)",
         "the file is truncated or its header damaged (re-download it)");
  }
  if (end - begin != want) {
    fail(file, name,
         t.dtype_name + " " + dims_str(t.shape) + " needs " + std::to_string(want) +
             " bytes, data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] hold " +
             std::to_string(end - begin),
         kDamagedHint);
  }
  t.offset = data_start + begin;
  t.nbytes = want;
  t.data = data + t.offset;
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& file) {
  if (size < kHeaderLenBytes) {
    fail(file, "", std::to_string(size) + " bytes, too short for a safetensors file (at least 8 expected)",
         "the file is empty or truncated (re-download it)");
  }
  uint64_t n = 0;
  for (size_t b = kHeaderLenBytes; b-- > 0;) n = (n << 8) | data[b];  // little-endian
  if (std::equal(data, data + 4, "GGUF"))
    fail(file, "", "this is a GGUF file, not safetensors", "open it with the GGUF loader");
  if (n > kMaxHeaderBytes) {
    fail(file, "", "header length " + std::to_string(n) + " above the 16 MB a real model's header needs (100 MB is the format's own limit)", kDamagedHint);
  }
  if (n > size - kHeaderLenBytes) {
    fail(file, "",
         "header length " + std::to_string(n) + " but only " + std::to_string(size - kHeaderLenBytes) +
             " bytes follow the length field",
         "the file is truncated (re-download it)");
  }
  const char* hb = reinterpret_cast<const char*>(data + kHeaderLenBytes);
  if (n == 0 || hb[0] != '{')
    fail(file, "", "the JSON header does not start with '{'", kDamagedHint);

  json h = parse_json_text(hb, hb + n, file, "header", TopKeys::Unique, kDamagedHint);
  if (!h.is_object()) fail(file, "", "the JSON header is " + json_type_of(h) + ", expected an object", kDamagedHint);

  SafetensorsHeader out;
  out.data_start = kHeaderLenBytes + n;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      if (!e.is_object())
        fail(file, "", "\"__metadata__\" should be an object of strings, found " + json_type_of(e), kDamagedHint);
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string())
          fail(file, "", "__metadata__[\"" + k + "\"] should be a string, found " + json_type_of(v), kDamagedHint);
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(name, e, data, size, out.data_start, file));
  }
  return out;
}

TensorFile open_safetensors_file(const std::string& path) {
  TensorFile f;
  f.map = MappedFile(path);
  f.tensors = parse_safetensors_header(f.map.data(), f.map.size(), path).tensors;
  return f;
}

const ShardedFormat kSafetensorsFormat = {"safetensors", "model.safetensors", "model.safetensors.index.json",
                                          ".safetensors", &open_safetensors_file};

}  // namespace groak
