// GGUF reader. Format facts from llama.cpp's ggml/src/gguf.cpp and docs (gguf.md); split-set naming and
// keys (split.no is 0-based, file names 1-based, "%s-%05d-of-%05d.gguf") from llama.cpp's gguf-split.
// This file: a GGUF file or split set as one GgufFile, and typed access to its metadata and tensors.
#include "io/gguf.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <utility>

#include "io/gguf_detail.h"
#include "util/error.h"

namespace groak {

using namespace gguf_detail;

namespace {

// The split-set naming convention: <prefix>-NNNNN-of-MMMMM.gguf, NNNNN 1-based.
struct SplitName {
  std::string prefix;
  int no = 0;
  int count = 0;
};

std::optional<SplitName> parse_split_name(const std::string& path) {
  constexpr std::string_view kOf = "-of-", kExt = ".gguf";
  constexpr size_t kDigits = 5;
  constexpr size_t kSuffix = 1 + kDigits + 4 + kDigits + 5;  // "-00001-of-00003.gguf"
  if (path.size() <= kSuffix) return std::nullopt;
  const std::string_view tail = std::string_view(path).substr(path.size() - kSuffix);
  auto digits = [](std::string_view s) {
    int v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  if (tail[0] != '-' || tail.substr(1 + kDigits, 4) != kOf || tail.substr(kSuffix - 5) != kExt) return std::nullopt;
  const int no = digits(tail.substr(1, kDigits));
  const int count = digits(tail.substr(1 + kDigits + 4, kDigits));
  if (no < 1 || count < 1 || no > count) return std::nullopt;
  return SplitName{path.substr(0, path.size() - kSuffix), no, count};
}

std::string split_path(const SplitName& s, int no) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05d-of-%05d.gguf", no, s.count);
  return s.prefix + buf;
}

}  // namespace

GgufFile::GgufFile() = default;
GgufFile::~GgufFile() = default;
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;

GgufFile GgufFile::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  std::vector<Part> parts(1);
  Part& p = parts[0];
  p.path = name;
  p.bytes = std::move(bytes);
  p.data = p.bytes.data();
  p.size = p.bytes.size();
  parse_part(p);
  return assemble(std::move(parts), name);
}

GgufFile GgufFile::open(const std::string& path) {
  auto parse_file = [](const std::string& file) {
    Part p;
    p.path = file;
    p.map = MappedFile(file);
    p.data = p.map.data();
    p.size = p.map.size();
    parse_part(p);
    return p;
  };
  const std::optional<SplitName> split = parse_split_name(path);
  std::vector<Part> parts;
  if (!split) {
    parts.push_back(parse_file(path));
    return assemble(std::move(parts), path);
  }
  for (int no = 1; no <= split->count; ++no) {
    const std::string file = no == split->no ? path : split_path(*split, no);
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      throw Error(path + ": part " + std::to_string(no) + " of " + std::to_string(split->count) +
                  " of this split GGUF is missing: expected " + file +
                  " (download every part into the same folder; parts are named <name>-NNNNN-of-" +
                  std::to_string(split->count) + ".gguf)");
    }
    Part p = parse_file(file);
    const std::optional<uint64_t> count = split_key(p, "split.count");
    const std::optional<uint64_t> index = split_key(p, "split.no");
    if (split->count > 1 && (!count || !index)) {
      throw Error(file + ": its name says part " + std::to_string(no) + " of " + std::to_string(split->count) +
                  ", but it has no split.count/split.no metadata; it was not written by gguf-split (rename it, or "
                  "re-split the model)");
    }
    if (count && *count != static_cast<uint64_t>(split->count)) {
      throw Error(file + ": metadata split.count = " + std::to_string(*count) + " but the file name says " +
                  std::to_string(split->count) + " parts; the parts come from different splits (re-download them)");
    }
    if (index && *index != static_cast<uint64_t>(no - 1)) {
      throw Error(file + ": metadata split.no = " + std::to_string(*index) + " (0-based) but the file name says part " +
                  std::to_string(no) + "; a part was renamed or comes from another split (re-download it)");
    }
    parts.push_back(std::move(p));
  }
  return assemble(std::move(parts), path);
}

GgufFile GgufFile::assemble(std::vector<Part> parts, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  f.version_ = parts[0].version;
  f.alignment_ = parts[0].alignment;
  if (parts.size() == 1) {
    // A lone file that belongs to a larger split set cannot give the whole model.
    const std::optional<uint64_t> count = split_key(parts[0], "split.count");
    if (count && *count > 1) {
      throw Error(parts[0].path + ": this file is one part of a " + std::to_string(*count) +
                  "-part split GGUF (metadata split.count), but its name does not follow <name>-NNNNN-of-MMMMM.gguf, "
                  "so the other parts cannot be found; restore the original file names");
    }
  }
  f.kvs_ = std::move(parts[0].kvs);
  size_t total = 0;
  for (const Part& p : parts) total += p.tensors.size();
  f.tensors_.reserve(total);
  for (size_t k = 0; k < parts.size(); ++k) {
    for (GgufTensor& t : parts[k].tensors) {
      t.part = static_cast<uint32_t>(k);
      f.tensors_.push_back(std::move(t));
    }
    parts[k].tensors.clear();
  }
  f.parts_ = std::move(parts);
  // Indexes last: their keys view strings that no longer move.
  for (size_t k = 0; k < f.kvs_.size(); ++k) f.kv_index_.emplace(f.kvs_[k].key, k);
  for (size_t k = 0; k < f.tensors_.size(); ++k) {
    const GgufTensor& t = f.tensors_[k];
    if (!f.tensor_index_.emplace(t.name, k).second) {
      const GgufTensor& first = f.tensors_[f.tensor_index_.at(t.name)];
      throw Error(name + ": duplicate tensor name '" + t.name + "' in " + f.parts_[first.part].path + " and " +
                  f.parts_[t.part].path + "; the parts come from different splits (re-download them)");
    }
  }
  if (const GgufValue* v = f.find("split.tensors.count")) {
    const std::optional<WideInt> w = integer_of(v->type, v->u, v->i);
    if (!w || w->negative || w->magnitude != f.tensors_.size()) {
      throw Error(name + ": metadata split.tensors.count = " + v->describe() + " but the " + std::to_string(f.parts_.size()) +
                  " part(s) hold " + std::to_string(f.tensors_.size()) + " tensors; a part is damaged or from another "
                  "split (re-download it)");
    }
  }
  return f;
}

std::vector<std::string> GgufFile::part_paths() const {
  std::vector<std::string> r;
  for (const Part& p : parts_) r.push_back(p.path);
  return r;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufValue& GgufFile::require(std::string_view key, const char* wanted) const {
  const GgufValue* v = find(key);
  if (!v) {
    throw Error(name_ + ": metadata key '" + std::string(key) + "' is missing (expected " + wanted +
                "); the converter that wrote this file did not set it (re-convert with a current llama.cpp)");
  }
  return *v;
}

void GgufFile::wrong_type(std::string_view key, const GgufValue& v, const char* wanted) const {
  throw Error(name_ + ": metadata key '" + std::string(key) + "' is " + v.describe() + ", expected " + wanted +
              "; the file was written by an incompatible converter");
}

namespace {
// The value as a signed integer in [lo, hi], or nullopt.
std::optional<int64_t> int_in(const GgufValue& v, int64_t lo, uint64_t hi) {
  const std::optional<WideInt> w = integer_of(v.type, v.u, v.i);
  if (!w) return std::nullopt;
  if (w->negative) {
    if (lo >= 0 || w->magnitude > static_cast<uint64_t>(-(lo + 1)) + 1) return std::nullopt;
    return -static_cast<int64_t>(w->magnitude - 1) - 1;
  }
  if (w->magnitude > hi) return std::nullopt;
  return static_cast<int64_t>(w->magnitude);
}
}  // namespace

uint32_t GgufFile::get_u32(std::string_view key) const {
  const char* wanted = "an integer in the u32 range";
  const GgufValue& v = require(key, wanted);
  const std::optional<int64_t> r = int_in(v, 0, std::numeric_limits<uint32_t>::max());
  if (!r) wrong_type(key, v, wanted);
  return static_cast<uint32_t>(*r);
}

uint32_t GgufFile::get_u32(std::string_view key, uint32_t fallback) const { return has(key) ? get_u32(key) : fallback; }

int32_t GgufFile::get_i32(std::string_view key) const {
  const char* wanted = "an integer in the i32 range";
  const GgufValue& v = require(key, wanted);
  const std::optional<int64_t> r = int_in(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  if (!r) wrong_type(key, v, wanted);
  return static_cast<int32_t>(*r);
}

uint64_t GgufFile::get_u64(std::string_view key) const {
  const char* wanted = "a non-negative integer";
  const GgufValue& v = require(key, wanted);
  const std::optional<WideInt> w = integer_of(v.type, v.u, v.i);
  if (!w || w->negative) wrong_type(key, v, wanted);
  return w->magnitude;
}

int64_t GgufFile::get_i64(std::string_view key) const {
  const char* wanted = "an integer in the i64 range";
  const GgufValue& v = require(key, wanted);
  const std::optional<int64_t> r = int_in(v, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  if (!r) wrong_type(key, v, wanted);
  return *r;
}

double GgufFile::get_f64(std::string_view key) const {
  const char* wanted = "a float (f32 or f64)";
  const GgufValue& v = require(key, wanted);
  if (!v.is_float()) wrong_type(key, v, wanted);
  return v.f;
}

float GgufFile::get_f32(std::string_view key) const { return static_cast<float>(get_f64(key)); }
float GgufFile::get_f32(std::string_view key, float fallback) const { return has(key) ? get_f32(key) : fallback; }

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = require(key, "a bool");
  if (v.type != GgufType::Bool) wrong_type(key, v, "a bool");
  return v.u != 0;
}

bool GgufFile::get_bool(std::string_view key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(key, "a string");
  if (v.type != GgufType::String) wrong_type(key, v, "a string");
  return std::string(v.str);
}

uint64_t GgufFile::get_array_size(std::string_view key) const {
  const GgufValue& v = require(key, "an array");
  if (v.type != GgufType::Array) wrong_type(key, v, "an array");
  return v.count;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require(key, "an array of strings");
  if (v.type != GgufType::Array || v.elem_type != GgufType::String) wrong_type(key, v, "an array of strings");
  return {v.strings.begin(), v.strings.end()};
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const char* wanted = "an array of f32 or f64";
  const GgufValue& v = require(key, wanted);
  if (v.type != GgufType::Array || (v.elem_type != GgufType::F32 && v.elem_type != GgufType::F64)) wrong_type(key, v, wanted);
  std::vector<float> r(static_cast<size_t>(v.count));
  for (size_t k = 0; k < r.size(); ++k) {
    r[k] = v.elem_type == GgufType::F32 ? load<float>(v.elems + 4 * k) : static_cast<float>(load<double>(v.elems + 8 * k));
  }
  return r;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const char* wanted = "an array of integers";
  const GgufValue& v = require(key, wanted);
  if (v.type != GgufType::Array || !integer_of(v.elem_type, 0, 0)) wrong_type(key, v, wanted);
  const size_t es = elem_size(v.elem_type);
  std::vector<int64_t> r(static_cast<size_t>(v.count));
  for (size_t k = 0; k < r.size(); ++k) {
    const uint8_t* p = v.elems + es * k;
    switch (v.elem_type) {
      case GgufType::U8: r[k] = load<uint8_t>(p); break;
      case GgufType::I8: r[k] = load<int8_t>(p); break;
      case GgufType::U16: r[k] = load<uint16_t>(p); break;
      case GgufType::I16: r[k] = load<int16_t>(p); break;
      case GgufType::U32: r[k] = load<uint32_t>(p); break;
      case GgufType::I32: r[k] = load<int32_t>(p); break;
      case GgufType::I64: r[k] = load<int64_t>(p); break;
      case GgufType::U64: {
        const uint64_t u = load<uint64_t>(p);
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          throw Error(name_ + ": metadata array '" + std::string(key) + "' element " + std::to_string(k) + " = " +
                      std::to_string(u) + " does not fit in i64");
        }
        r[k] = static_cast<int64_t>(u);
        break;
      }
      default: break;
    }
  }
  return r;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
  if (const GgufTensor* t = find_tensor(name)) return *t;
  throw Error(name_ + ": tensor '" + std::string(name) + "' is missing (the file has " + std::to_string(tensors_.size()) +
              " tensors); the model was converted for a different architecture or an incompatible llama.cpp version");
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char m[4] = {};
  const bool ok = std::fread(m, 1, 4, f) == 4 && std::memcmp(m, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

}  // namespace groak
