// GGUF reader. Format facts from llama.cpp's ggml/src/gguf.cpp and docs (gguf.md); split-set naming and
// keys (split.no is 0-based, file names 1-based, "%s-%05d-of-%05d.gguf") from llama.cpp's gguf-split.
#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "util/error.h"
#include "util/text.h"

namespace groak {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMinVersion = 2;  // v1 used 32-bit counts and lengths; llama.cpp dropped it in 2023
constexpr uint32_t kMaxVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT
constexpr uint32_t kMaxAlignment = 1u << 30;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Counts far above any real model (Grok-1 has 770 tensors and ~40 keys; vocabularies are under a million
// pieces): a header claiming more is damaged, even when a sparse file is big enough to "hold" them.
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxKeys = 1u << 16;
constexpr uint64_t kMaxArrayLength = 1u << 26;
// Smallest possible encodings, to bound counts by the bytes left before reserving anything.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, one ne, type, offset
constexpr const char* kDamaged =
    "; the file is damaged, truncated or not a GGUF file (re-download it, or re-convert the model with a "
    "current llama.cpp)";

size_t elem_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::String: case GgufType::Array: return 0;  // variable length
  }
  return 0;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

std::string quoted(std::string_view s) { return "\"" + printable(s, 60) + "\""; }

std::string shape_of(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

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
std::optional<WideInt> integer_of(GgufType t, uint64_t u, int64_t i) {
  switch (t) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      return WideInt{false, u};
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      return i < 0 ? WideInt{true, static_cast<uint64_t>(-(i + 1)) + 1} : WideInt{false, static_cast<uint64_t>(i)};
    default:
      return std::nullopt;
  }
}

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

// One parsed file.
struct detail::GgufPart {
  std::string path;
  MappedFile map;              // open(): the mapping
  std::vector<uint8_t> bytes;  // from_bytes(): the image
  const uint8_t* data = nullptr;
  size_t size = 0;
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_start = 0;
  std::vector<GgufKV> kvs;
  std::vector<GgufTensor> tensors;

  const GgufValue* find(std::string_view key) const {
    for (const GgufKV& kv : kvs)
      if (kv.key == key) return &kv.value;
    return nullptr;
  }
};

namespace {

class Parser {
 public:
  explicit Parser(detail::GgufPart& p) : p_(p), d_(p.data), n_(p.size) {}

  void run() {
    header();
    metadata();
    tensor_infos();
    data_section();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(p_.path + ": byte " + std::to_string(at_) + ": " + what + kDamaged);
  }
  [[noreturn]] void fail_tensor(const GgufTensor& t, const std::string& what, const char* hint = kDamaged) const {
    throw Error(p_.path + ": tensor '" + printable(t.name) + "' " + shape_of(t.ne) + " " + type_name(t.type) + ": " + what + hint);
  }

  size_t left() const { return n_ - pos_; }
  const uint8_t* take(uint64_t k, const std::string& what) {
    at_ = pos_;
    if (k > left()) {
      fail("truncated while reading " + what + ": needs " + std::to_string(k) + " bytes, " + std::to_string(left()) +
           " left of " + std::to_string(n_));
    }
    const uint8_t* q = d_ + pos_;
    pos_ += k;
    return q;
  }
  template <class T>
  T read(const std::string& what) {
    return load<T>(take(sizeof(T), what));
  }
  std::string_view read_string(const std::string& what) {
    const uint64_t len = read<uint64_t>(what + " length");
    if (len > left()) {
      fail(what + " has length " + std::to_string(len) + " but only " + std::to_string(left()) +
           " bytes are left in the file");
    }
    const uint8_t* s = take(len, what);
    return {reinterpret_cast<const char*>(s), static_cast<size_t>(len)};
  }

  void header() {
    at_ = 0;
    if (n_ < 4 || std::memcmp(d_, "GGUF", 4) != 0) {
      std::ostringstream o;
      o << p_.path << ": not a GGUF file: it starts with";
      for (size_t i = 0; i < std::min<size_t>(n_, 4); ++i) o << ' ' << std::hex << static_cast<int>(d_[i]);
      if (n_ == 0) o << " nothing (empty file)";
      o << ", expected the magic bytes \"GGUF\" (47 47 55 46); check the path, or convert the model to GGUF";
      throw Error(o.str());
    }
    pos_ = 4;
    const uint32_t v = read<uint32_t>("version");
    if (v == 1) {
      throw Error(p_.path + ": GGUF version 1 (2023, 32-bit counts) is not supported; re-convert the model with a "
                  "current llama.cpp (groak reads versions 2 and 3)");
    }
    if (v < kMinVersion || v > kMaxVersion) {
      const bool swapped = (v & 0xffffu) == 0 && (v >> 24) >= kMinVersion && (v >> 24) <= kMaxVersion;
      throw Error(p_.path + ": GGUF version " + std::to_string(v) + " is not supported (groak reads versions 2 and 3)" +
                  (swapped ? "; this looks like a big-endian GGUF, which groak does not read" : "; it may be newer "
                   "than this reader, or the header is damaged"));
    }
    p_.version = v;
  }

  void metadata() {
    n_tensors_ = read<uint64_t>("tensor count");
    const uint64_t n_kv = read<uint64_t>("metadata count");
    if (n_tensors_ > kMaxTensors)
      fail("the header claims " + std::to_string(n_tensors_) + " tensors (no model has more than " +
           std::to_string(kMaxTensors) + "): the header is damaged");
    if (n_kv > kMaxKeys)
      fail("the header claims " + std::to_string(n_kv) + " metadata keys (no model has more than " +
           std::to_string(kMaxKeys) + "): the header is damaged");
    if (n_kv > left() / kMinKvBytes) {
      fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(left()) + " bytes left");
    }
    if (n_tensors_ > left() / kMinTensorInfoBytes) {
      fail("tensor count " + std::to_string(n_tensors_) + " cannot fit in the " + std::to_string(left()) +
           " bytes left");
    }
    std::unordered_set<std::string_view> seen;  // views into the file
    p_.kvs.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
      const std::string_view key = read_string("metadata key #" + std::to_string(k));
      if (!seen.insert(key).second) fail("duplicate metadata key " + quoted(key));
      const uint32_t type = read<uint32_t>("type of key " + quoted(key));
      if (!valid_type(type)) fail("key " + quoted(key) + " has value type " + std::to_string(type) + ", which GGUF does not define");
      GgufKV kv{std::string(key), value(static_cast<GgufType>(type), key)};
      p_.kvs.push_back(std::move(kv));
    }
    if (const GgufValue* a = p_.find("general.alignment")) {
      const std::optional<WideInt> w = integer_of(a->type, a->u, a->i);
      if (!w || w->negative || w->magnitude == 0 || w->magnitude > kMaxAlignment || !std::has_single_bit(w->magnitude)) {
        throw Error(p_.path + ": metadata general.alignment = " + a->describe() +
                    " is not a power of two between 1 and 2^30" + kDamaged);
      }
      p_.alignment = static_cast<uint32_t>(w->magnitude);
    }
  }

  GgufValue value(GgufType type, std::string_view key) {
    GgufValue v;
    v.type = type;
    const std::string what = "value of key " + quoted(key);
    switch (type) {
      case GgufType::U8: v.u = read<uint8_t>(what); break;
      case GgufType::Bool: v.u = read<uint8_t>(what) != 0; break;
      case GgufType::U16: v.u = read<uint16_t>(what); break;
      case GgufType::U32: v.u = read<uint32_t>(what); break;
      case GgufType::U64: v.u = read<uint64_t>(what); break;
      case GgufType::I8: v.i = read<int8_t>(what); break;
      case GgufType::I16: v.i = read<int16_t>(what); break;
      case GgufType::I32: v.i = read<int32_t>(what); break;
      case GgufType::I64: v.i = read<int64_t>(what); break;
      case GgufType::F32: v.f = read<float>(what); break;
      case GgufType::F64: v.f = read<double>(what); break;
      case GgufType::String: v.str = read_string(what); break;
      case GgufType::Array: {
        const uint32_t et = read<uint32_t>("element type of array " + quoted(key));
        if (et == static_cast<uint32_t>(GgufType::Array)) fail("key " + quoted(key) + " is an array of arrays; nested arrays are not supported");
        if (!valid_type(et)) fail("array " + quoted(key) + " has element type " + std::to_string(et) + ", which GGUF does not define");
        v.elem_type = static_cast<GgufType>(et);
        v.count = read<uint64_t>("length of array " + quoted(key));
        if (v.count > kMaxArrayLength)
          fail("array " + quoted(key) + " claims " + std::to_string(v.count) + " elements (more than " +
               std::to_string(kMaxArrayLength) + " is not a real model's): the header is damaged");
        if (v.elem_type == GgufType::String) {
          if (v.count > left() / 8) {
            fail("array " + quoted(key) + " claims " + std::to_string(v.count) + " strings, more than the " +
                 std::to_string(left()) + " bytes left can hold");
          }
          v.strings.reserve(static_cast<size_t>(v.count));
          for (uint64_t j = 0; j < v.count; ++j) v.strings.push_back(read_string("element " + std::to_string(j) + " of array " + quoted(key)));
        } else {
          const size_t es = elem_size(v.elem_type);
          if (v.count > left() / es) {
            fail("array " + quoted(key) + " claims " + std::to_string(v.count) + " elements of " + std::to_string(es) +
                 " bytes, more than the " + std::to_string(left()) + " bytes left");
          }
          v.elems = take(v.count * es, "array " + quoted(key));
        }
        break;
      }
    }
    return v;
  }

  void tensor_infos() {
    std::unordered_set<std::string> names;
    p_.tensors.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t k = 0; k < n_tensors_; ++k) {
      GgufTensor t;
      t.name = std::string(read_string("name of tensor #" + std::to_string(k)));
      const std::string what = "tensor '" + printable(t.name) + "'";
      if (!names.insert(t.name).second) fail("duplicate tensor name '" + printable(t.name) + "'");
      const uint32_t n_dims = read<uint32_t>("dimension count of " + what);
      if (n_dims < 1 || n_dims > kMaxDims) {
        fail(what + " has " + std::to_string(n_dims) + " dimensions; GGUF tensors have 1 to " + std::to_string(kMaxDims));
      }
      uint64_t elements = 1;
      bool overflow = false;
      for (uint32_t j = 0; j < n_dims; ++j) {
        const uint64_t e = read<uint64_t>("ne[" + std::to_string(j) + "] of " + what);
        if (e > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail(what + " has dimension ne[" + std::to_string(j) + "] = " + std::to_string(e) + ", beyond int64");
        }
        t.ne.push_back(static_cast<int64_t>(e));
        if (e != 0 && elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / e) overflow = true;
        elements *= e;  // only used when !overflow
      }
      if (overflow) fail(what + " has dimensions " + shape_of(t.ne) + " whose product overflows int64");
      const uint32_t type = read<uint32_t>("type of " + what);
      if (!ggml_type_supported(type)) {
        throw Error(p_.path + ": " + what + " " + shape_of(t.ne) + " has ggml type " + std::to_string(type) + " (" +
                    ggml_type_name(type) + "), which groak cannot read; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                    "Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (re-quantise the model to one of these with llama-quantize)");
      }
      t.type = static_cast<GgmlType>(type);
      const int64_t bs = block_size(t.type);
      if (t.ne[0] % bs != 0) {
        fail_tensor(t, "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + type_name(t.type) +
                    " block size " + std::to_string(bs));
      }
      // nbytes = blocks × bytes per block; 2^62 F32 elements already overflow 64 bits.
      const uint64_t blocks = elements / static_cast<uint64_t>(bs);
      if (blocks > std::numeric_limits<uint64_t>::max() / type_size(t.type)) fail_tensor(t, "byte size overflows 64 bits");
      t.nbytes = blocks * type_size(t.type);
      t.file_offset = read<uint64_t>("data offset of " + what);  // relative for now
      p_.tensors.push_back(std::move(t));
    }
  }

  void data_section() {
    const uint64_t end = pos_;
    const uint64_t a = p_.alignment;
    p_.data_start = (end + a - 1) / a * a;
    if (p_.tensors.empty()) return;
    if (p_.data_start > n_) {
      at_ = pos_;
      fail("the data section would start at byte " + std::to_string(p_.data_start) + " (alignment " +
           std::to_string(a) + "), past the end of the file (" + std::to_string(n_) + " bytes)");
    }
    const uint64_t avail = n_ - p_.data_start;
    for (GgufTensor& t : p_.tensors) {
      const uint64_t off = t.file_offset;
      if (off % a != 0) {
        fail_tensor(t, "data offset " + std::to_string(off) + " is not a multiple of the alignment " + std::to_string(a));
      }
      if (off > avail || t.nbytes > avail - off) {
        fail_tensor(t, "data at offset " + std::to_string(off) + " + " + std::to_string(t.nbytes) +
                    " bytes ends past the end of the file (the data section holds " + std::to_string(avail) + " bytes)");
      }
      t.file_offset = p_.data_start + off;
      t.data = d_ + t.file_offset;
    }
    // No two tensors may share bytes: a converter bug or a crafted file.
    std::vector<const GgufTensor*> order;
    for (const GgufTensor& t : p_.tensors) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const GgufTensor* x, const GgufTensor* y) { return x->file_offset < y->file_offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensor& prev = *order[k - 1];
      const GgufTensor& cur = *order[k];
      if (cur.file_offset < prev.file_offset + prev.nbytes) {
        fail_tensor(cur, "data at byte " + std::to_string(cur.file_offset) + " overlaps tensor '" + prev.name +
                    "' (bytes " + std::to_string(prev.file_offset) + " to " + std::to_string(prev.file_offset + prev.nbytes) + ")");
      }
    }
  }

  detail::GgufPart& p_;
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  size_t at_ = 0;  // start of the field being read, for messages
  uint64_t n_tensors_ = 0;
};

// Reads split.count / split.no of a part as an integer; nullopt when absent.
std::optional<uint64_t> split_key(const detail::GgufPart& p, const char* key) {
  const GgufValue* v = p.find(key);
  if (!v) return std::nullopt;
  const std::optional<WideInt> w = integer_of(v->type, v->u, v->i);
  if (!w || w->negative) throw Error(p.path + ": metadata " + key + " = " + v->describe() + " is not a non-negative integer" + kDamaged);
  return w->magnitude;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

bool GgufValue::is_integer() const { return integer_of(type, u, i).has_value(); }
bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }

std::string GgufValue::describe() const {
  switch (type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      return std::to_string(u) + " (" + gguf_type_name(type) + ")";
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      return std::to_string(i) + " (" + gguf_type_name(type) + ")";
    case GgufType::F32: case GgufType::F64: {
      std::ostringstream o;
      o.precision(9);
      o << f << " (" << gguf_type_name(type) << ")";
      return o.str();
    }
    case GgufType::Bool: return u ? "true" : "false";
    case GgufType::String: return quoted(str) + " (string)";
    case GgufType::Array: return "[" + std::to_string(count) + " × " + gguf_type_name(elem_type) + "] (array)";
  }
  return "?";
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t e : ne) n *= e;  // checked not to overflow at parse time
  return n;
}

std::string GgufTensor::shape_str() const { return shape_of(ne); }

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
  Parser(p).run();
  return assemble(std::move(parts), name);
}

GgufFile GgufFile::open(const std::string& path) {
  auto parse_file = [](const std::string& file) {
    Part p;
    p.path = file;
    p.map = MappedFile(file);
    p.data = p.map.data();
    p.size = p.map.size();
    Parser(p).run();
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
