// GGUF reader. Format facts from llama.cpp's ggml/src/gguf.cpp and docs (gguf.md); split-set naming and
// keys (split.no is 0-based, file names 1-based, "%s-%05d-of-%05d.gguf") from llama.cpp's gguf-split.
// This file: parsing and validating one file, every count and offset checked against the bytes left.
#include <algorithm>
#include <bit>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "io/gguf_detail.h"
#include "kernels/quant.h"
#include "util/error.h"
#include "util/text.h"

namespace groak::gguf_detail {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMinVersion = 2;  // v1 used 32-bit counts and lengths; llama.cpp dropped it in 2023
constexpr uint32_t kMaxVersion = 3;
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

// "F32, F16, …": the names of every ggml type number groak reads, in number order (for the refusal message).
std::string supported_type_list() {
  std::string s;
  for (uint32_t n = 0; n < 64; ++n)
    if (ggml_type_supported(n)) s += (s.empty() ? "" : ", ") + std::string(ggml_type_name(n));
  return s;
}

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
                    ggml_type_name(type) + "), which groak cannot read; supported: " + supported_type_list() +
                    " (re-quantise the model to one of these with llama-quantize)");
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

}  // namespace

void parse_part(detail::GgufPart& p) { Parser(p).run(); }

// Reads split.count / split.no of a part as an integer; nullopt when absent.
std::optional<uint64_t> split_key(const detail::GgufPart& p, const char* key) {
  const GgufValue* v = p.find(key);
  if (!v) return std::nullopt;
  const std::optional<WideInt> w = integer_of(v->type, v->u, v->i);
  if (!w || w->negative) throw Error(p.path + ": metadata " + key + " = " + v->describe() + " is not a non-negative integer" + kDamaged);
  return w->magnitude;
}

}  // namespace groak::gguf_detail
