// GGUF reader: files built here by a small writer, every bad-input case with its specific error, split
// sets, the tiny-a fixture, and a mutation fuzz loop (must parse or throw groak::Error, never crash; the
// sanitizer build runs it too).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "kernels/quant.h"
#include "test_util.h"
#include "util/error.h"

namespace groak {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------------------
// A minimal GGUF writer (test-local). Values are appended as raw encodings so tests can also write
// malformed ones.

class GgufBuilder {
 public:
  struct Tensor {
    Tensor(std::string name_, std::vector<uint64_t> ne_, uint32_t type_, std::vector<uint8_t> data_,
           std::optional<uint64_t> offset_ = std::nullopt)
        : name(std::move(name_)), ne(std::move(ne_)), type(type_), data(std::move(data_)), offset(offset_) {}
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type = 0;               // ggml type number
    std::vector<uint8_t> data;       // written at its offset
    std::optional<uint64_t> offset;  // default: next aligned position; an override skips writing data
  };

  uint32_t version = 3;
  uint32_t alignment = 32;  // layout only; add general.alignment yourself to declare it

  GgufBuilder& raw_kv(const std::string& key, uint32_t type, const std::vector<uint8_t>& value) {
    std::vector<uint8_t> b;
    str(b, key);
    pod(b, type);
    b.insert(b.end(), value.begin(), value.end());
    kvs_.push_back(std::move(b));
    return *this;
  }
  template <class T>
  GgufBuilder& kv(const std::string& key, GgufType type, T v) {
    std::vector<uint8_t> b;
    pod(b, v);
    return raw_kv(key, static_cast<uint32_t>(type), b);
  }
  GgufBuilder& kv_string(const std::string& key, const std::string& v) {
    std::vector<uint8_t> b;
    str(b, v);
    return raw_kv(key, static_cast<uint32_t>(GgufType::String), b);
  }
  GgufBuilder& kv_strings(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    pod(b, static_cast<uint32_t>(GgufType::String));
    pod(b, static_cast<uint64_t>(v.size()));
    for (const std::string& s : v) str(b, s);
    return raw_kv(key, static_cast<uint32_t>(GgufType::Array), b);
  }
  template <class T>
  GgufBuilder& kv_array(const std::string& key, GgufType elem, const std::vector<T>& v) {
    std::vector<uint8_t> b;
    pod(b, static_cast<uint32_t>(elem));
    pod(b, static_cast<uint64_t>(v.size()));
    for (const T& x : v) pod(b, x);
    return raw_kv(key, static_cast<uint32_t>(GgufType::Array), b);
  }
  GgufBuilder& tensor(Tensor t) {
    tensors_.push_back(std::move(t));
    return *this;
  }
  // An F32 tensor holding 0, 1, 2 … (ne0·ne1 values).
  GgufBuilder& f32_tensor(const std::string& name, std::vector<uint64_t> ne, float first = 0.f) {
    uint64_t n = 1;
    for (uint64_t e : ne) n *= e;
    std::vector<uint8_t> d(n * 4);
    for (uint64_t i = 0; i < n; ++i) {
      const float f = first + static_cast<float>(i);
      std::memcpy(d.data() + 4 * i, &f, 4);
    }
    return tensor({name, std::move(ne), 0, std::move(d)});
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
    pod(b, version);
    pod(b, static_cast<uint64_t>(tensors_.size()));
    pod(b, static_cast<uint64_t>(kvs_.size()));
    for (const auto& kv : kvs_) b.insert(b.end(), kv.begin(), kv.end());
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors_) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      if (!t.offset) next = (off + t.data.size() + alignment - 1) / alignment * alignment;
      str(b, t.name);
      pod(b, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t e : t.ne) pod(b, e);
      pod(b, t.type);
      pod(b, off);
    }
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    const size_t data_start = b.size();
    for (size_t k = 0; k < tensors_.size(); ++k) {
      if (tensors_[k].offset) continue;
      const Tensor& t = tensors_[k];
      b.resize(std::max(b.size(), data_start + offsets[k] + t.data.size()), 0);
      std::copy(t.data.begin(), t.data.end(), b.begin() + static_cast<long>(data_start + offsets[k]));
    }
    return b;
  }

 private:
  template <class T>
  static void pod(std::vector<uint8_t>& b, T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
  }
  static void str(std::vector<uint8_t>& b, const std::string& s) {
    pod(b, static_cast<uint64_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }

  std::vector<std::vector<uint8_t>> kvs_;
  std::vector<Tensor> tensors_;
};

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

GgufFile parse(const std::vector<uint8_t>& bytes) { return GgufFile::from_bytes(bytes, "test.gguf"); }

// The message of the groak::Error that parsing `bytes` throws ("" when it parses).
std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    parse(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(msg, needle) \
  EXPECT_NE((msg).find(needle), std::string::npos) << "error: '" << (msg) << "' lacks '" << (needle) << "'"

// A small valid file with every metadata value type and four tensor types.
GgufBuilder sample() {
  GgufBuilder g;
  g.kv_string("general.architecture", "toy")
      .kv("toy.u8", GgufType::U8, uint8_t{200})
      .kv("toy.i8", GgufType::I8, int8_t{-5})
      .kv("toy.u16", GgufType::U16, uint16_t{60000})
      .kv("toy.i16", GgufType::I16, int16_t{-30000})
      .kv("toy.u32", GgufType::U32, uint32_t{4000000000u})
      .kv("toy.i32", GgufType::I32, int32_t{-7})
      .kv("toy.f32", GgufType::F32, 1e-5f)
      .kv("toy.bool", GgufType::Bool, uint8_t{1})
      .kv("toy.u64", GgufType::U64, uint64_t{1} << 40)
      .kv("toy.i64", GgufType::I64, int64_t{-1} << 40)
      .kv("toy.f64", GgufType::F64, 0.125)
      .kv_strings("toy.tokens", {"<pad>", "a", "", "ünïcode"})
      .kv_array<float>("toy.scores", GgufType::F32, {0.5f, -1.f, 2.f})
      .kv_array<int32_t>("toy.types", GgufType::I32, {1, -2, 3})
      .kv_array<double>("toy.f64s", GgufType::F64, {0.25})
      .kv_array<uint8_t>("toy.empty", GgufType::U8, {});
  g.f32_tensor("w.f32", {4, 2});
  std::vector<uint8_t> q8(row_bytes(GgmlType::Q8_0, 32) * 3);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  for (size_t blk = 0; blk < q8.size(); blk += 34) q8[blk] = 0, q8[blk + 1] = 0x38;  // d = 0.5
  g.tensor({"w.q8", {32, 3}, 8, q8});
  g.tensor({"w.q4k", {256, 1, 2}, 12, std::vector<uint8_t>(2 * 144, 0)});
  g.tensor({"w.f16", {8}, 1, std::vector<uint8_t>(16, 0x3c)});
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// Valid files

TEST(GgufRead, HeaderMetadataAndTensors) {
  const std::vector<uint8_t> bytes = sample().build();
  const GgufFile f = parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.architecture(), "toy");
  EXPECT_EQ(f.get_u32("toy.u8"), 200u);
  EXPECT_EQ(f.get_i32("toy.i8"), -5);
  EXPECT_EQ(f.get_u32("toy.u16"), 60000u);
  EXPECT_EQ(f.get_i32("toy.i16"), -30000);
  EXPECT_EQ(f.get_u32("toy.u32"), 4000000000u);
  EXPECT_EQ(f.get_i64("toy.i32"), -7);
  EXPECT_EQ(f.get_f32("toy.f32"), 1e-5f);
  EXPECT_TRUE(f.get_bool("toy.bool"));
  EXPECT_EQ(f.get_u64("toy.u64"), uint64_t{1} << 40);
  EXPECT_EQ(f.get_i64("toy.i64"), int64_t{-1} << 40);
  EXPECT_EQ(f.get_f64("toy.f64"), 0.125);
  EXPECT_EQ(f.get_string_array("toy.tokens"), (std::vector<std::string>{"<pad>", "a", "", "ünïcode"}));
  EXPECT_EQ(f.get_array_size("toy.tokens"), 4u);
  EXPECT_EQ(f.get_f32_array("toy.scores"), (std::vector<float>{0.5f, -1.f, 2.f}));
  EXPECT_EQ(f.get_f32_array("toy.f64s"), (std::vector<float>{0.25f}));
  EXPECT_EQ(f.get_int_array("toy.types"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_int_array("toy.empty"), (std::vector<int64_t>{}));
  EXPECT_EQ(f.find("toy.tokens")->describe(), "[4 × string] (array)");

  ASSERT_EQ(f.tensors().size(), 4u);
  const GgufTensor& a = f.tensor("w.f32");
  EXPECT_EQ(a.type, GgmlType::F32);
  EXPECT_EQ(a.ne, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a.n_elements(), 8);
  EXPECT_EQ(a.n_rows(), 2);
  EXPECT_EQ(a.nbytes, 32u);
  EXPECT_EQ(a.shape_str(), "[4, 2]");
  EXPECT_EQ(a.file_offset % 32, 0u);
  std::vector<float> v(8);
  dequantize_row(a.type, a.data, v.data(), 8);
  EXPECT_EQ(v, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));

  const GgufTensor& q = f.tensor("w.q8");
  EXPECT_EQ(q.type, GgmlType::Q8_0);
  EXPECT_EQ(q.nbytes, 3u * 34);
  EXPECT_EQ(q.file_offset % 32, 0u);
  std::vector<float> row(32);
  dequantize_row(q.type, q.data + 34, row.data(), 32);  // row 1
  EXPECT_EQ(row[0], 0.5f * static_cast<int8_t>(static_cast<uint8_t>((34 + 2) * 7)));

  EXPECT_EQ(f.tensor("w.q4k").nbytes, 288u);
  EXPECT_EQ(f.tensor("w.q4k").ne, (std::vector<int64_t>{256, 1, 2}));
  EXPECT_EQ(f.tensor("w.f16").nbytes, 16u);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  try {
    f.tensor("blk.9.nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_ERROR_HAS(std::string(e.what()), "blk.9.nope");
  }
}

TEST(GgufRead, Version2AndCustomAlignment) {
  GgufBuilder g;
  g.version = 2;
  g.alignment = 64;
  g.kv("general.alignment", GgufType::U32, uint32_t{64});
  g.f32_tensor("a", {3});
  g.f32_tensor("b", {5}, 10.f);
  const GgufFile f = parse(g.build());
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  for (const GgufTensor& t : f.tensors()) EXPECT_EQ(t.file_offset % 64, 0u) << t.name;
  EXPECT_EQ(f.tensor("b").file_offset - f.tensor("a").file_offset, 64u);
  float first;
  std::memcpy(&first, f.tensor("b").data, 4);
  EXPECT_EQ(first, 10.f);
}

TEST(GgufRead, EmptyFileWithoutTensors) {
  GgufBuilder g;
  const GgufFile f = parse(g.build());
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(GgufRead, TypedGettersCheckTypesAndRanges) {
  const GgufFile f = parse(sample().build());
  auto err = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string m = err([&] { f.get_string("toy.u32"); });
  EXPECT_ERROR_HAS(m, "toy.u32");
  EXPECT_ERROR_HAS(m, "4000000000 (u32)");
  EXPECT_ERROR_HAS(m, "expected a string");
  m = err([&] { f.get_u32("toy.missing"); });
  EXPECT_ERROR_HAS(m, "'toy.missing' is missing");
  EXPECT_ERROR_HAS(m, "test.gguf");
  EXPECT_ERROR_HAS(err([&] { f.get_u32("toy.i8"); }), "u32 range");        // negative
  EXPECT_ERROR_HAS(err([&] { f.get_i32("toy.u32"); }), "i32 range");       // too large
  EXPECT_ERROR_HAS(err([&] { f.get_u32("toy.u64"); }), "u32 range");
  EXPECT_ERROR_HAS(err([&] { f.get_f32("toy.u32"); }), "float");
  EXPECT_ERROR_HAS(err([&] { f.get_bool("toy.u8"); }), "bool");
  EXPECT_ERROR_HAS(err([&] { f.get_string_array("toy.scores"); }), "array of strings");
  EXPECT_ERROR_HAS(err([&] { f.get_f32_array("toy.tokens"); }), "array of f32");
  EXPECT_ERROR_HAS(err([&] { f.get_int_array("toy.scores"); }), "array of integers");
  EXPECT_EQ(f.get_u32("toy.absent", 7u), 7u);
  EXPECT_EQ(f.get_f32("toy.absent", 2.5f), 2.5f);
  EXPECT_FALSE(f.get_bool("toy.absent", false));
  EXPECT_EQ(f.get_u32("toy.u8", 7u), 200u);
  EXPECT_THROW(f.get_u32("toy.f32", 7u), Error);  // present with a wrong type still throws
}

// ---------------------------------------------------------------------------------------------------------
// Bad inputs, each with its own message

TEST(GgufBad, MagicVersionAndTruncatedHeader) {
  std::vector<uint8_t> b = sample().build();
  b[3] = 'X';
  EXPECT_ERROR_HAS(error_of(b), "not a GGUF file");
  EXPECT_ERROR_HAS(error_of({}), "empty file");

  GgufBuilder g = sample();
  g.version = 1;
  EXPECT_ERROR_HAS(error_of(g.build()), "version 1");
  g.version = 4;
  EXPECT_ERROR_HAS(error_of(g.build()), "version 4");
  g.version = 0x03000000;
  EXPECT_ERROR_HAS(error_of(g.build()), "big-endian");

  const std::vector<uint8_t> full = sample().build();
  EXPECT_ERROR_HAS(error_of(std::vector<uint8_t>(full.begin(), full.begin() + 10)), "truncated");
  EXPECT_ERROR_HAS(error_of(std::vector<uint8_t>(full.begin(), full.begin() + 60)), "truncated");
}

TEST(GgufBad, CountsLargerThanTheFile) {
  std::vector<uint8_t> b = sample().build();
  // Below the sane limits (those have their own test), so the bytes left are what refuses them.
  const uint64_t keys = 60000, tensors = 1000000;
  std::vector<uint8_t> c = b;
  std::memcpy(c.data() + 16, &keys, 8);  // n_kv
  EXPECT_ERROR_HAS(error_of(c), "metadata count 60000 cannot fit");
  c = b;
  std::memcpy(c.data() + 8, &tensors, 8);  // n_tensors
  EXPECT_ERROR_HAS(error_of(c), "tensor count 1000000 cannot fit");
}

TEST(GgufBad, StringAndArrayLengthsLargerThanTheFile) {
  const uint64_t huge = uint64_t{1} << 40;
  {
    std::vector<uint8_t> v(8);
    std::memcpy(v.data(), &huge, 8);  // string length, no bytes follow
    GgufBuilder g;
    g.raw_kv("general.name", static_cast<uint32_t>(GgufType::String), v);
    const std::string m = error_of(g.build());
    EXPECT_ERROR_HAS(m, "has length 1099511627776");
    EXPECT_ERROR_HAS(m, "general.name");
  }
  for (GgufType elem : {GgufType::String, GgufType::F32, GgufType::U64}) {
    std::vector<uint8_t> v(12);
    const uint32_t et = static_cast<uint32_t>(elem);
    std::memcpy(v.data(), &et, 4);
    std::memcpy(v.data() + 4, &huge, 8);
    GgufBuilder g;
    g.raw_kv("tokenizer.ggml.tokens", static_cast<uint32_t>(GgufType::Array), v);
    const std::string m = error_of(g.build());
    EXPECT_ERROR_HAS(m, "claims 1099511627776");
    EXPECT_ERROR_HAS(m, "tokenizer.ggml.tokens");
  }
  {
    // A key whose length runs past the end.
    std::vector<uint8_t> b = GgufBuilder().kv_string("k", "v").build();
    std::memcpy(b.data() + 24, &huge, 8);
    EXPECT_ERROR_HAS(error_of(b), "metadata key #0 has length");
  }
}

// Counts are bounded by what a model can have, not only by the file size: a sparse 200 GB file "holds"
// 10^10 keys, and reserving them used to end as "out of memory" (issue 9).
TEST(GgufBad, CountsBoundedBySaneLimitsEvenInAHugeSparseFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "groak-sparse-test.gguf").string();
  auto sparse_error = [&](std::vector<uint8_t> header) {
    write_file(path, header);
    std::filesystem::resize_file(path, uint64_t{200} << 30);  // sparse: no blocks are written
    std::string msg;
    try {
      GgufFile::open(path);
    } catch (const Error& e) {
      msg = e.what();
    }
    std::filesystem::remove(path);
    return msg;
  };
  std::vector<uint8_t> b = sample().build();
  const uint64_t keys = 10'000'000'000ull, tensors = 100'000'000ull;
  std::vector<uint8_t> c(b.begin(), b.begin() + 24);
  std::memcpy(c.data() + 16, &keys, 8);  // n_kv
  std::string msg = sparse_error(c);
  EXPECT_ERROR_HAS(msg, "10000000000 metadata keys");
  EXPECT_ERROR_HAS(msg, "the header is damaged");
  c.assign(b.begin(), b.begin() + 24);
  std::memcpy(c.data() + 8, &tensors, 8);  // n_tensors
  msg = sparse_error(c);
  EXPECT_ERROR_HAS(msg, "100000000 tensors");
  EXPECT_ERROR_HAS(msg, "the header is damaged");
  // An array of 2^40 u8 elements: the sparse file has the bytes, no vocabulary is that long.
  std::vector<uint8_t> arr(4 + 8);
  const uint32_t u8 = static_cast<uint32_t>(GgufType::U8);
  const uint64_t len = uint64_t{1} << 40;
  std::memcpy(arr.data(), &u8, 4);
  std::memcpy(arr.data() + 4, &len, 8);
  msg = sparse_error(GgufBuilder().raw_kv("big", static_cast<uint32_t>(GgufType::Array), arr).build());
  EXPECT_ERROR_HAS(msg, "array \"big\" claims 1099511627776 elements");
  EXPECT_ERROR_HAS(msg, "the header is damaged");
}

// Names are shown with control bytes escaped, so a damaged name cannot garble the terminal.
TEST(GgufBad, ControlBytesInNamesAreEscaped) {
  const std::string key = std::string("bad\x01key\0x", 9);
  const std::string msg = error_of(GgufBuilder().raw_kv(key, 13, {0, 0, 0, 0}).build());
  EXPECT_ERROR_HAS(msg, "bad\\x01key\\x00x");
  EXPECT_EQ(msg.find('\x01'), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\0'), std::string::npos) << "a NUL in the message";
}

TEST(GgufBad, MetadataStructure) {
  EXPECT_ERROR_HAS(error_of(GgufBuilder().kv("a", GgufType::U8, uint8_t{1}).kv("a", GgufType::U8, uint8_t{2}).build()),
                   "duplicate metadata key \"a\"");
  EXPECT_ERROR_HAS(error_of(GgufBuilder().raw_kv("a", 13, {0, 0, 0, 0}).build()), "value type 13");
  std::vector<uint8_t> nested(12, 0);
  nested[0] = static_cast<uint8_t>(GgufType::Array);
  EXPECT_ERROR_HAS(error_of(GgufBuilder().raw_kv("a", static_cast<uint32_t>(GgufType::Array), nested).build()), "nested");
  std::vector<uint8_t> badelem(12, 0);
  badelem[0] = 77;
  EXPECT_ERROR_HAS(error_of(GgufBuilder().raw_kv("a", static_cast<uint32_t>(GgufType::Array), badelem).build()),
                   "element type 77");
  GgufBuilder g;
  g.kv("general.alignment", GgufType::U32, uint32_t{48});
  EXPECT_ERROR_HAS(error_of(g.build()), "general.alignment = 48 (u32) is not a power of two");
  GgufBuilder g0;
  g0.kv("general.alignment", GgufType::U32, uint32_t{0});
  EXPECT_ERROR_HAS(error_of(g0.build()), "general.alignment");
  GgufBuilder gs;
  gs.kv_string("general.alignment", "32");
  EXPECT_ERROR_HAS(error_of(gs.build()), "general.alignment");
}

TEST(GgufBad, TensorInfos) {
  auto with = [](GgufBuilder::Tensor t) {
    GgufBuilder g;
    g.f32_tensor("ok", {4});
    g.tensor(std::move(t));
    return error_of(g.build());
  };
  std::string m = with({"blk.0.attn_q.weight", {4}, 0, std::vector<uint8_t>(16), uint64_t{1} << 20});
  EXPECT_ERROR_HAS(m, "tensor 'blk.0.attn_q.weight'");
  EXPECT_ERROR_HAS(m, "past the end of the file");

  m = with({"t.overflow", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, {}});
  EXPECT_ERROR_HAS(m, "t.overflow");
  EXPECT_ERROR_HAS(m, "overflows");
  m = with({"t.neg", {uint64_t{1} << 63}, 0, {}});
  EXPECT_ERROR_HAS(m, "beyond int64");
  m = with({"t.bytes", {uint64_t{1} << 62}, 0, {}});  // elements fit int64, bytes (×4) do not fit the file
  EXPECT_ERROR_HAS(m, "t.bytes");

  m = with({"ok", {4}, 0, std::vector<uint8_t>(16)});
  EXPECT_ERROR_HAS(m, "duplicate tensor name 'ok'");

  m = with({"t.unknown", {32}, 99, std::vector<uint8_t>(32)});
  EXPECT_ERROR_HAS(m, "tensor 't.unknown'");
  EXPECT_ERROR_HAS(m, "ggml type 99 (unknown)");
  // Numbers ggml defines that groak does not read: the number, ggml's name and the tensor, and what is read.
  m = with({"t.q8k", {256}, 15, std::vector<uint8_t>(292)});
  EXPECT_ERROR_HAS(m, "tensor 't.q8k' [256] has ggml type 15 (Q8_K), which groak cannot read");
  EXPECT_ERROR_HAS(m, "IQ2_XXS");  // the supported list names the i-quants
  m = with({"t.removed", {256}, 31, std::vector<uint8_t>(256)});
  EXPECT_ERROR_HAS(m, "ggml type 31 (Q4_0_4_4 (removed))");
  EXPECT_ERROR_HAS(m, "t.removed");
  // i-quants are read: an IQ2_XXS tensor parses, and a row that is not whole 256-blocks is refused by name.
  EXPECT_EQ(with({"t.iq", {256}, 16, std::vector<uint8_t>(66)}), "");
  m = with({"t.iq", {96}, 16, std::vector<uint8_t>(66)});
  EXPECT_ERROR_HAS(m, "t.iq");
  EXPECT_ERROR_HAS(m, "not a multiple of the IQ2_XXS block size 256");

  m = with({"t.misaligned", {4}, 0, std::vector<uint8_t>(16), uint64_t{40}});
  EXPECT_ERROR_HAS(m, "t.misaligned");
  EXPECT_ERROR_HAS(m, "not a multiple of the alignment 32");

  m = with({"t.5d", {1, 1, 1, 1, 1}, 0, std::vector<uint8_t>(4)});
  EXPECT_ERROR_HAS(m, "has 5 dimensions");
  m = with({"t.0d", {}, 0, {}});
  EXPECT_ERROR_HAS(m, "has 0 dimensions");

  m = with({"t.partial", {40}, 8, std::vector<uint8_t>(68)});
  EXPECT_ERROR_HAS(m, "ne[0] = 40 is not a multiple of the Q8_0 block size 32");

  m = with({"t.overlap", {4}, 0, {}, uint64_t{0}});  // same bytes as "ok"
  EXPECT_ERROR_HAS(m, "overlaps tensor 'ok'");
}

TEST(GgufBad, TruncatedDataSection) {
  const std::vector<uint8_t> b = sample().build();
  const std::string m = error_of(std::vector<uint8_t>(b.begin(), b.end() - 1));
  EXPECT_ERROR_HAS(m, "tensor 'w.f16'");
  EXPECT_ERROR_HAS(m, "past the end of the file");
}

TEST(GgufBad, MissingFile) {
  try {
    GgufFile::open("/nonexistent/dir/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_ERROR_HAS(std::string(e.what()), "/nonexistent/dir/model.gguf");
  }
}

// ---------------------------------------------------------------------------------------------------------
// Split sets

struct SplitSet {
  test::TempDir dir;
  std::vector<std::string> paths;
};

// Three parts: metadata + a, b | c | d; split.no/split.count as u16 and split.tensors.count as i32 (what
// gguf-split writes).
std::vector<GgufBuilder> split_parts(int count = 3) {
  std::vector<GgufBuilder> parts(static_cast<size_t>(count));
  for (int k = 0; k < count; ++k) {
    GgufBuilder& g = parts[static_cast<size_t>(k)];
    if (k == 0) g.kv_string("general.architecture", "toy");
    g.kv("split.no", GgufType::U16, static_cast<uint16_t>(k));
    g.kv("split.count", GgufType::U16, static_cast<uint16_t>(count));
    if (k == 0) g.kv("split.tensors.count", GgufType::I32, int32_t{count + 1});
  }
  parts[0].f32_tensor("a", {4}, 0.f).f32_tensor("b", {2, 2}, 100.f);
  for (int k = 1; k < count; ++k) parts[static_cast<size_t>(k)].f32_tensor(std::string(1, static_cast<char>('b' + k)), {3}, 1000.f * k);
  return parts;
}

void write_split(SplitSet& s, const std::vector<GgufBuilder>& parts, const std::string& stem = "model") {
  char name[64];
  for (size_t k = 0; k < parts.size(); ++k) {
    std::snprintf(name, sizeof name, "-%05zu-of-%05zu.gguf", k + 1, parts.size());
    s.paths.push_back(s.dir / (stem + name));
    write_file(s.paths.back(), parts[k].build());
  }
}

std::string open_error(const std::string& path) {
  try {
    GgufFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufSplit, AnyPartOpensAllParts) {
  SplitSet s;
  write_split(s, split_parts());
  for (const std::string& given : s.paths) {
    const GgufFile f = GgufFile::open(given);
    EXPECT_EQ(f.path(), given);
    EXPECT_EQ(f.part_paths(), s.paths);
    EXPECT_EQ(f.architecture(), "toy");
    ASSERT_EQ(f.tensors().size(), 4u);
    EXPECT_EQ(f.tensors()[0].name, "a");
    EXPECT_EQ(f.tensors()[3].name, "d");
    EXPECT_EQ(f.tensor("c").part, 1u);
    EXPECT_EQ(f.tensor("d").part, 2u);
    float v;
    std::memcpy(&v, f.tensor("d").data + 4, 4);
    EXPECT_EQ(v, 2001.f);
    std::memcpy(&v, f.tensor("b").data + 12, 4);
    EXPECT_EQ(v, 103.f);
  }
  // The same files also open one by one when not named as a split.
  const std::string lone = s.dir / "lone.gguf";
  write_file(lone, split_parts(1)[0].build());
  EXPECT_EQ(GgufFile::open(lone).tensors().size(), 2u);
}

TEST(GgufSplit, MissingPartIsNamed) {
  SplitSet s;
  write_split(s, split_parts());
  fs::remove(s.paths[2]);
  const std::string m = open_error(s.paths[0]);
  EXPECT_ERROR_HAS(m, "part 3 of 3");
  EXPECT_ERROR_HAS(m, s.paths[2]);
}

TEST(GgufSplit, MismatchedPartsAreRejected) {
  {
    SplitSet s;
    std::vector<GgufBuilder> parts = split_parts();
    parts[1] = GgufBuilder();  // split.no says 5
    parts[1].kv("split.no", GgufType::U16, uint16_t{5}).kv("split.count", GgufType::U16, uint16_t{3}).f32_tensor("c", {3});
    write_split(s, parts);
    EXPECT_ERROR_HAS(open_error(s.paths[0]), "split.no = 5");
  }
  {
    SplitSet s;
    std::vector<GgufBuilder> parts = split_parts();
    parts[2] = GgufBuilder();
    parts[2].kv("split.no", GgufType::U16, uint16_t{2}).kv("split.count", GgufType::U16, uint16_t{4}).f32_tensor("d", {3});
    write_split(s, parts);
    EXPECT_ERROR_HAS(open_error(s.paths[1]), "split.count = 4");
  }
  {
    SplitSet s;
    std::vector<GgufBuilder> parts = split_parts();
    parts[2] = GgufBuilder();
    parts[2].f32_tensor("d", {3});  // no split metadata at all
    write_split(s, parts);
    EXPECT_ERROR_HAS(open_error(s.paths[0]), "no split.count/split.no");
  }
  {
    SplitSet s;
    std::vector<GgufBuilder> parts = split_parts();
    parts[2] = GgufBuilder();
    parts[2].kv("split.no", GgufType::U16, uint16_t{2}).kv("split.count", GgufType::U16, uint16_t{3}).f32_tensor("a", {3});
    write_split(s, parts);
    EXPECT_ERROR_HAS(open_error(s.paths[0]), "duplicate tensor name 'a'");
  }
  {
    SplitSet s;
    std::vector<GgufBuilder> parts = split_parts();
    parts[2] = GgufBuilder();
    parts[2].kv("split.no", GgufType::U16, uint16_t{2}).kv("split.count", GgufType::U16, uint16_t{3});  // tensor d lost
    write_split(s, parts);
    EXPECT_ERROR_HAS(open_error(s.paths[0]), "split.tensors.count = 4 (i32)");
  }
  {
    // A part renamed to a plain name cannot find its siblings.
    SplitSet s;
    write_split(s, split_parts());
    const std::string renamed = s.dir / "model.gguf";
    fs::rename(s.paths[0], renamed);
    EXPECT_ERROR_HAS(open_error(renamed), "restore the original file names");
  }
}

// ---------------------------------------------------------------------------------------------------------
// The tiny-a fixture (llama.cpp's converter output for the synthetic Grok-1 model), spec §9.2

TEST(GgufFixture, TinyAParses) {
  const std::string xz_path = test::fixture_dir() + "/model-f32.gguf.xz";
  GROAK_REQUIRE_SHARED(xz_path);
  if (test::run_command("xz --version") != 0) GTEST_SKIP() << "needs the xz tool to decompress " << xz_path;
  test::TempDir dir;
  const std::string path = dir / "model-f32.gguf";
  ASSERT_EQ(test::run_command("xz -dkc '" + xz_path + "' > '" + path + "'"), 0);

  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.architecture(), "grok");
  EXPECT_EQ(f.get_u32("grok.block_count"), 2u);
  EXPECT_EQ(f.get_u32("grok.embedding_length"), 64u);
  EXPECT_EQ(f.get_u32("grok.feed_forward_length"), 344u);
  EXPECT_EQ(f.get_u32("grok.expert_count"), 8u);
  EXPECT_EQ(f.get_u32("grok.expert_used_count"), 2u);
  EXPECT_EQ(f.get_f32("grok.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "[BOS]");
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 512u);

  EXPECT_EQ(f.tensors().size(), 2u + 2u * 12u);
  const struct { const char* name; std::vector<int64_t> ne; } want[] = {
      {"token_embd.weight", {64, 512}},
      {"output_norm.weight", {64}},
      {"blk.0.attn_norm.weight", {64}},
      {"blk.0.attn_q.weight", {64, 64}},
      {"blk.0.attn_k.weight", {64, 32}},
      {"blk.0.attn_v.weight", {64, 32}},
      {"blk.0.attn_output.weight", {64, 64}},
      {"blk.0.attn_output_norm.weight", {64}},
      {"blk.0.ffn_norm.weight", {64}},
      {"blk.0.ffn_gate_inp.weight", {64, 8}},
      {"blk.0.ffn_gate_exps.weight", {64, 344, 8}},
      {"blk.0.ffn_up_exps.weight", {64, 344, 8}},
      {"blk.1.ffn_down_exps.weight", {344, 64, 8}},
      {"blk.1.layer_output_norm.weight", {64}},
  };
  for (const auto& w : want) {
    const GgufTensor& t = f.tensor(w.name);
    EXPECT_EQ(t.ne, w.ne) << w.name;
    EXPECT_EQ(t.type, GgmlType::F32) << w.name;
    EXPECT_EQ(t.nbytes, static_cast<uint64_t>(t.n_elements()) * 4) << w.name;
  }
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied to token_embd
  // The data is where the header says: the norm scales read as finite numbers.
  const GgufTensor& norm = f.tensor("output_norm.weight");
  std::vector<float> s(64);
  dequantize_row(norm.type, norm.data, s.data(), 64);
  for (float v : s) EXPECT_TRUE(std::isfinite(v));
}

// ---------------------------------------------------------------------------------------------------------
// Fuzz: mutations and truncations of a valid file must parse or throw groak::Error. Anything else (a
// crash, std::bad_alloc, a sanitizer report) fails.

TEST(GgufFuzz, MutationsParseOrThrowGroakError) {
  const std::vector<uint8_t> base = sample().build();
  std::mt19937_64 rng(20240317);
  auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  const uint64_t interesting[] = {0, 1, 31, 32, 33, 0x7f, 0xff, 0xffff, 0x7fffffff, 0xffffffff,
                                  uint64_t{1} << 32, uint64_t{1} << 62, uint64_t{1} << 63, ~uint64_t{0}};
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = base;
    const int kind = iter % 5;
    if (kind == 0) {  // flip a few random bytes
      for (int k = 0, n = 1 + static_cast<int>(pick(8)); k < n; ++k) b[pick(b.size())] = static_cast<uint8_t>(rng());
    } else if (kind == 1) {  // truncate
      b.resize(pick(b.size()));
    } else if (kind == 2) {  // an interesting 8- or 4-byte value at a random place (lengths, counts, offsets)
      const uint64_t v = interesting[pick(std::size(interesting))];
      const size_t w = (rng() & 1) ? 8 : 4;
      const size_t at = pick(b.size() - w);
      std::memcpy(b.data() + at, &v, w);
    } else if (kind == 3) {  // duplicate or delete a slice
      const size_t at = pick(b.size()), len = 1 + pick(64);
      if (rng() & 1) {
        const std::vector<uint8_t> slice(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(std::min(b.size(), at + len)));
        b.insert(b.begin() + static_cast<long>(at), slice.begin(), slice.end());
      } else {
        b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(std::min(b.size(), at + len)));
      }
    } else {  // mutate inside the header + metadata, where lengths live
      const size_t limit = std::min<size_t>(b.size(), 400);
      for (int k = 0; k < 3; ++k) b[pick(limit)] ^= static_cast<uint8_t>(1u << pick(8));
    }
    try {
      const GgufFile f = GgufFile::from_bytes(b, "fuzz.gguf");
      // Touch everything the reader promised is inside the file.
      uint64_t sum = 0;
      for (const GgufTensor& t : f.tensors())
        for (uint64_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      for (const GgufKV& kv : f.metadata()) {
        sum += kv.value.describe().size();
        for (std::string_view s : kv.value.strings) sum += s.size();
      }
      (void)sum;
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  std::printf("fuzz: %d parsed, %d rejected with groak::Error\n", parsed, rejected);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace groak
