#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace groak {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The reference implementation (huggingface/safetensors) refuses headers above 100 MB; a real header is a
// few hundred KB, so anything bigger is a damaged length field, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr uint64_t kMaxIndexBytes = 100'000'000;
constexpr size_t kMaxRank = 16;
// Tensor entries nest 3 deep (header > entry > shape); the cap only stops hostile nesting early.
constexpr int kMaxJsonDepth = 32;
constexpr size_t kHeaderLenBytes = 8;

const char* const kDamagedHint =
    "the file is damaged or was not written by a safetensors writer (re-download it, or re-export it with "
    "safetensors.torch.save_file)";
const char* const kIndexHint =
    "the index does not match the shards beside it (re-download the whole set, index included)";

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& what,
                       const std::string& hint) {
  std::ostringstream o;
  o << file << ": ";
  if (!tensor.empty()) o << "tensor '" << tensor << "': ";
  o << what << "; " << hint;
  throw Error(o.str());
}

struct DTypeInfo {
  const char* name;
  unsigned bits;  // sub-byte types (F4, F6_*) exist in the format
  SafeDType dtype;
};

// Every dtype of the safetensors format (v0.6); only the first three are computed with.
constexpr DTypeInfo kDTypes[] = {
    {"F32", 32, SafeDType::F32},       {"F16", 16, SafeDType::F16},       {"BF16", 16, SafeDType::BF16},
    {"F64", 64, SafeDType::Other},     {"I64", 64, SafeDType::Other},     {"U64", 64, SafeDType::Other},
    {"I32", 32, SafeDType::Other},     {"U32", 32, SafeDType::Other},     {"I16", 16, SafeDType::Other},
    {"U16", 16, SafeDType::Other},     {"I8", 8, SafeDType::Other},       {"U8", 8, SafeDType::Other},
    {"BOOL", 8, SafeDType::Other},     {"F8_E4M3", 8, SafeDType::Other},  {"F8_E5M2", 8, SafeDType::Other},
    {"F8_E8M0", 8, SafeDType::Other},  {"F6_E2M3", 6, SafeDType::Other},  {"F6_E3M2", 6, SafeDType::Other},
    {"F4", 4, SafeDType::Other},       {"C64", 64, SafeDType::Other},
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

std::string dims_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A JSON value's type in words, for "expected X, found Y".
std::string type_of(const json& v) {
  if (v.is_number_float()) return "a number with a fraction or exponent (" + v.dump() + ")";
  if (v.is_number_integer() && !v.is_number_unsigned()) return "a negative number (" + v.dump() + ")";
  return v.type_name();
}

// Parses JSON text, capping nesting depth and refusing duplicate top-level keys (nlohmann would silently
// keep the last one, hiding a second tensor or shard of the same name).
enum class TopKeys : uint8_t { MayRepeat, Unique };

json parse_json(const char* begin, const char* end, const std::string& file, const char* what, TopKeys keys,
                const char* hint) {
  std::set<std::string> top_keys;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) &&
        depth > kMaxJsonDepth) {
      fail(file, "", "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", hint);
    }
    if (ev == json::parse_event_t::key && depth == 1 && keys == TopKeys::Unique) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!top_keys.insert(k).second) fail(file, k, std::string("appears twice in the ") + what, hint);
    }
    return true;
  };
  try {
    return json::parse(begin, end, cb);
  } catch (const json::exception& e) {
    fail(file, "", std::string("invalid JSON in the ") + what + ": " + e.what(), hint);
  }
}

SafeTensor parse_entry(const std::string& name, const json& e, const uint8_t* data, size_t size,
                       uint64_t data_start, const std::string& file) {
  if (!e.is_object())
    fail(file, name, "expected an object {dtype, shape, data_offsets}, found " + type_of(e), kDamagedHint);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) fail(file, name, std::string("the field \"") + key + "\" is missing", kDamagedHint);

  SafeTensor t;
  t.name = name;
  t.file = file;

  const json& jd = e["dtype"];
  if (!jd.is_string()) fail(file, name, "\"dtype\" should be a string, found " + type_of(jd), kDamagedHint);
  t.dtype_name = jd.get<std::string>();
  const DTypeInfo* dt = find_dtype(t.dtype_name);
  if (!dt) {
    fail(file, name, "unknown dtype \"" + t.dtype_name + "\" (expected one of " + known_dtypes() + ")",
         "the file was written by a newer or non-standard writer; convert this tensor to BF16, F16 or F32");
  }
  t.dtype = dt->dtype;

  const json& js = e["shape"];
  if (!js.is_array()) fail(file, name, "\"shape\" should be an array, found " + type_of(js), kDamagedHint);
  if (js.size() > kMaxRank)
    fail(file, name, "rank " + std::to_string(js.size()) + " above the limit " + std::to_string(kMaxRank),
         kDamagedHint);
  uint64_t count = 1;
  bool overflow = false;
  for (const json& d : js) {
    if (!d.is_number_unsigned())
      fail(file, name, "a shape dimension should be a non-negative integer, found " + type_of(d), kDamagedHint);
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
      fail(file, name, "a data offset should be a non-negative integer, found " + type_of(o), kDamagedHint);
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

int64_t SafeTensor::numel() const {
  // Unsigned, because a shape like [2^62, 3, 0] is valid (0 elements) but its partial products are not
  // int64; without a zero the product is bounded by the buffer size (checked at parse time).
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return static_cast<int64_t>(n);
}

std::string SafeTensor::shape_str() const { return dims_str(shape); }

void SafeTensor::require_float() const {
  if (dtype != SafeDType::Other) return;
  fail(file, name, "dtype " + dtype_name + " where F32, F16 or BF16 was expected",
       "groak computes with floating-point weights only; convert the checkpoint to bf16");
}

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
    fail(file, "", "header length " + std::to_string(n) + " above the 100 MB limit of the format", kDamagedHint);
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

  json h = parse_json(hb, hb + n, file, "header", TopKeys::Unique, kDamagedHint);
  if (!h.is_object()) fail(file, "", "the JSON header is " + type_of(h) + ", expected an object", kDamagedHint);

  SafetensorsHeader out;
  out.data_start = kHeaderLenBytes + n;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      if (!e.is_object())
        fail(file, "", "\"__metadata__\" should be an object of strings, found " + type_of(e), kDamagedHint);
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string())
          fail(file, "", "__metadata__[\"" + k + "\"] should be a string, found " + type_of(v), kDamagedHint);
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(name, e, data, size, out.data_start, file));
  }
  return out;
}

std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text, const std::string& file) {
  const char* b = json_text.data();
  json j = parse_json(b, b + json_text.size(), file, "index", TopKeys::MayRepeat, kIndexHint);
  if (!j.is_object()) fail(file, "", "expected a JSON object, found " + type_of(j), kIndexHint);
  if (!j.contains("weight_map")) fail(file, "", "the field \"weight_map\" is missing", kIndexHint);
  const json& wm = j["weight_map"];
  if (!wm.is_object())
    fail(file, "", "\"weight_map\" should be an object {tensor: shard}, found " + type_of(wm), kIndexHint);
  if (wm.empty()) fail(file, "", "\"weight_map\" lists no tensors", kIndexHint);
  std::map<std::string, std::string> out;
  for (const auto& [name, v] : wm.items()) {
    if (!v.is_string())
      fail(file, name, "the shard name should be a string, found " + type_of(v), kIndexHint);
    const std::string& shard = v.get_ref<const std::string&>();
    // Shards live beside the index; a path could point anywhere on the machine.
    bool plain = !shard.empty() && shard != "." && shard != ".." &&
                 shard.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
    if (!plain) fail(file, name, "shard \"" + shard + "\" is not a plain file name", kIndexHint);
    out[name] = shard;
  }
  return out;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.map_ = MappedFile(path);
  f.header_ = parse_safetensors_header(f.map_.data(), f.map_.size(), path);
  return f;
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), name,
                             [](const SafeTensor& t, const std::string& n) { return t.name < n; });
  return it != header_.tensors.end() && it->name == name ? &*it : nullptr;
}

namespace {

std::string read_small_file(const std::string& path, uint64_t cap) {
  std::error_code ec;
  uint64_t n = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read (" + ec.message() + ")");
  if (n > cap) fail(path, "", std::to_string(n) + " bytes, above the " + std::to_string(cap) + "-byte limit", kIndexHint);
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  if (!in.read(s.data(), static_cast<std::streamsize>(n))) throw Error(path + ": cannot read");
  return s;
}

constexpr const char* kSingleName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";
const char* const kWhatToPass =
    "pass a folder holding model.safetensors or model.safetensors.index.json, or one of those files "
    "(Grok-1's Hugging Face ports are PyTorch .bin files: convert them first, see GROK1.md §9.1)";

}  // namespace

SafetensorsModel SafetensorsModel::open(const std::string& dir_or_file) {
  SafetensorsModel m;
  fs::path p(dir_or_file);
  std::error_code ec;
  fs::file_status st = fs::status(p, ec);
  if (ec || !fs::exists(st)) throw Error(dir_or_file + ": does not exist; " + kWhatToPass);

  bool is_index = false;
  if (fs::is_directory(st)) {
    if (fs::exists(p / kIndexName, ec)) {
      p /= kIndexName;
      is_index = true;
    } else if (fs::exists(p / kSingleName, ec)) {
      p /= kSingleName;
    } else {
      // One unambiguous .safetensors file under another name is still a model.
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(p, ec))
        if (e.path().extension() == ".safetensors") found.push_back(e.path());
      if (found.size() != 1) {
        throw Error(dir_or_file + ": holds neither " + kIndexName + " nor " + kSingleName + " (and " +
                    std::to_string(found.size()) + " other .safetensors files, not exactly one); " + kWhatToPass);
      }
      p = found[0];
    }
  } else {
    is_index = p.extension() == ".json";
  }
  m.source_ = p.string();

  std::map<std::string, std::string> weight_map;  // tensor -> shard path
  if (!is_index) {
    m.files_.push_back(SafetensorsFile::open(m.source_));
  } else {
    fs::path dir = p.parent_path();
    for (auto& [name, shard] : parse_safetensors_index(read_small_file(m.source_, kMaxIndexBytes), m.source_))
      weight_map[name] = (dir / shard).string();
    std::map<std::string, std::vector<std::string>> by_shard;  // shard path -> tensors it should hold
    for (const auto& [name, shard] : weight_map) by_shard[shard].push_back(name);
    for (const auto& [shard, names] : by_shard) {
      if (!fs::exists(shard, ec)) {
        fail(m.source_, names.front(),
             "its shard " + shard + " is missing (the index names it for " + std::to_string(names.size()) +
                 " tensors)",
             "download that shard into the folder of the index");
      }
      m.files_.push_back(SafetensorsFile::open(shard));
    }
  }

  for (const SafetensorsFile& f : m.files_) {
    for (const SafeTensor& t : f.tensors()) {
      auto [it, fresh] = m.by_name_.emplace(t.name, &t);
      if (!fresh) {
        fail(t.file, t.name, "also present in " + it->second->file + " (a tensor may live in one shard only)",
             kIndexHint);
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = m.by_name_.find(name);
    if (it == m.by_name_.end() || it->second->file != shard) {
      std::string where = it == m.by_name_.end() ? "no shard holds it" : "it is in " + it->second->file;
      fail(m.source_, name, "the index puts it in " + shard + ", but that shard lacks it (" + where + ")",
           kIndexHint);
    }
  }
  return m;
}

const SafeTensor* SafetensorsModel::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const SafeTensor& SafetensorsModel::get(const std::string& name) const {
  const SafeTensor* t = find(name);
  if (!t) {
    fail(source_, name, "not found among " + std::to_string(by_name_.size()) + " tensors",
         "the checkpoint is incomplete or uses other tensor names (see GROK1.md §9.1 for the names of each port)");
  }
  return *t;
}

}  // namespace groak
