// The safetensors reader on files written here: single files and sharded sets parse into the right views,
// every kind of damage gives its own error (file, tensor, expected vs found), and random mutations of a
// valid file either parse into in-bounds views or throw groak::Error — never anything else.
#include "io/safetensors.h"

#include <cstring>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

using json = nlohmann::json;

// One tensor for the test writer; bytes are its raw little-endian payload.
struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// A header and data section written back to back, as safetensors.torch.save_file does (header padded
// with spaces to a multiple of 8).
std::vector<uint8_t> image(const std::string& header_text, const std::vector<uint8_t>& data) {
  std::string h = header_text;
  while ((h.size() + 8) % 8 != 0) h += ' ';
  std::vector<uint8_t> out(8 + h.size() + data.size());
  uint64_t n = h.size();
  for (int b = 0; b < 8; ++b) out[b] = static_cast<uint8_t>(n >> (8 * b));
  std::copy(h.begin(), h.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<long>(h.size()));
  return out;
}

json header_of(const std::vector<Entry>& entries, std::vector<uint8_t>* data) {
  json h = json::object();
  for (const Entry& e : entries) {
    uint64_t begin = data->size();
    data->insert(data->end(), e.bytes.begin(), e.bytes.end());
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {begin, data->size()}}};
  }
  return h;
}

std::vector<uint8_t> make_file(const std::vector<Entry>& entries, const json& metadata = nullptr) {
  std::vector<uint8_t> data;
  json h = header_of(entries, &data);
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  return image(h.dump(), data);
}

std::vector<uint8_t> f32_bytes(std::initializer_list<float> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), std::data(v), b.size());
  return b;
}

std::vector<uint8_t> fill(size_t n, uint8_t start) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i);
  return b;
}


void write_text(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s;
}

std::string parse_error(const std::vector<uint8_t>& b, std::initializer_list<const char*> needles) {
  return error_of([&] { parse_safetensors_header(b.data(), b.size(), "x.safetensors"); }, needles);
}

// A header (as JSON) for one tensor, to be damaged by the test.
std::vector<uint8_t> one_tensor(const json& entry, size_t data_bytes) {
  json h = {{"w", entry}};
  return image(h.dump(), fill(data_bytes, 0));
}

const std::vector<Entry> kThree = {
    {"a.weight", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
    {"b.bias", "BF16", {4}, fill(8, 10)},
    {"c.scale", "F16", {}, fill(2, 20)},
};

}  // namespace

TEST(Safetensors, ParsesSingleBuffer) {
  auto b = make_file({kThree[0], kThree[1], kThree[2], {"d.ids", "I64", {2}, fill(16, 30)}},
                     json{{"format", "pt"}});
  SafetensorsHeader h = parse_safetensors_header(b.data(), b.size(), "mem");
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_start % 8, 0u);

  const TensorView& a = h.tensors[0];
  EXPECT_EQ(a.name, "a.weight");
  EXPECT_EQ(a.dtype, TensorDType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.numel(), 6);
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(a.shape_str(), "[2, 3]");
  EXPECT_EQ(a.file, "mem");
  float v[6];
  std::memcpy(v, a.data, sizeof v);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ(a.data, b.data() + a.offset);

  EXPECT_EQ(h.tensors[1].dtype, TensorDType::BF16);
  EXPECT_EQ(h.tensors[1].data[0], 10);
  EXPECT_EQ(h.tensors[2].dtype, TensorDType::F16);
  EXPECT_TRUE(h.tensors[2].shape.empty());
  EXPECT_EQ(h.tensors[2].numel(), 1);
  EXPECT_EQ(h.tensors[2].nbytes, 2u);

  const TensorView& d = h.tensors[3];
  EXPECT_EQ(d.dtype, TensorDType::Other);
  EXPECT_EQ(d.dtype_name, "I64");
  EXPECT_NO_THROW(a.require_float());
  error_of([&] { d.require_float(); }, {"mem", "d.ids", "I64", "F32, F16 or BF16"});
}

TEST(Safetensors, OverlappingAndOutOfOrderRangesAreAccepted) {
  // Two views of the same bytes, and the first tensor (by name) stored last.
  json h = {{"a", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {4, 8}}}},
            {"b", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {0, 4}}}},
            {"c", {{"dtype", "I32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}},
            {"empty", {{"dtype", "F32"}, {"shape", {0, 5}}, {"data_offsets", {8, 8}}}}};
  auto b = image(h.dump(), fill(8, 0));
  SafetensorsHeader p = parse_safetensors_header(b.data(), b.size(), "mem");
  ASSERT_EQ(p.tensors.size(), 4u);
  EXPECT_EQ(p.tensors[0].data[0], 4);
  EXPECT_EQ(p.tensors[1].data, p.tensors[2].data);
  EXPECT_EQ(p.tensors[3].nbytes, 0u);
  EXPECT_EQ(p.tensors[3].numel(), 0);

  // Zero elements even though the leading dimensions multiply past int64.
  json big = {{"z", {{"dtype", "BF16"}, {"shape", json::array({uint64_t{1} << 62, 3, 0})}, {"data_offsets", {0, 0}}}}};
  auto bz = image(big.dump(), {});
  SafetensorsHeader pz = parse_safetensors_header(bz.data(), bz.size(), "mem");
  EXPECT_EQ(pz.tensors[0].numel(), 0);
}

TEST(Safetensors, OpensSingleFileAndFolder) {
  TempDir dir;
  write_bytes(dir / "model.safetensors", make_file(kThree));
  for (const std::string& path : {dir.path(), dir / "model.safetensors"}) {
    TensorSet m = TensorSet::open(path, kSafetensorsFormat);
    EXPECT_EQ(m.size(), 3u);
    EXPECT_EQ(m.source(), dir / "model.safetensors");
    ASSERT_NE(m.find("b.bias"), nullptr);
    EXPECT_EQ(m.find("b.bias")->data[7], 17);
    EXPECT_EQ(m.find("b.bias")->file, dir / "model.safetensors");
    EXPECT_EQ(m.find("nope"), nullptr);
    error_of([&] { m.get("nope"); }, {"model.safetensors", "'nope'", "not found among 3 tensors"});
  }
  // The model stays usable after a move (views point into heap buffers, not the moved object).
  TensorSet m = TensorSet::open(dir.path(), kSafetensorsFormat);
  TensorSet moved = std::move(m);
  EXPECT_EQ(moved.get("a.weight").nbytes, 24u);

  TensorFile f = open_safetensors_file(dir / "model.safetensors");
  EXPECT_EQ(f.tensors.size(), 3u);
  ASSERT_NE(f.find("c.scale"), nullptr);
  EXPECT_EQ(f.find("c.scale")->data[1], 21);
  EXPECT_EQ(f.find("zz"), nullptr);
}

TEST(Safetensors, OpensOneOddlyNamedFileButNotAnEmptyFolder) {
  TempDir dir;
  error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"model.safetensors.index.json", "GROK1.md"});
  write_bytes(dir / "weights.safetensors", make_file(kThree));
  EXPECT_EQ(TensorSet::open(dir.path(), kSafetensorsFormat).size(), 3u);
  write_bytes(dir / "other.safetensors", make_file(kThree));
  error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"2 other .safetensors files"});
  error_of([&] { TensorSet::open(dir / "absent", kSafetensorsFormat); }, {"absent", "does not exist"});
}

namespace {

// Writes a two-shard set: shard 1 holds a.weight and b.bias, shard 2 holds c.scale.
void write_sharded(const TempDir& dir, const json& weight_map) {
  write_bytes(dir / "model-00001-of-00002.safetensors", make_file({kThree[0], kThree[1]}));
  write_bytes(dir / "model-00002-of-00002.safetensors", make_file({kThree[2]}));
  write_text(dir / "model.safetensors.index.json",
             json{{"metadata", {{"total_size", 34}}}, {"weight_map", weight_map}}.dump(2));
}

const json kMap = {{"a.weight", "model-00001-of-00002.safetensors"},
                   {"b.bias", "model-00001-of-00002.safetensors"},
                   {"c.scale", "model-00002-of-00002.safetensors"}};

}  // namespace

TEST(Safetensors, OpensShardedSet) {
  TempDir dir;
  write_sharded(dir, kMap);
  for (const std::string& path : {dir.path(), dir / "model.safetensors.index.json"}) {
    TensorSet m = TensorSet::open(path, kSafetensorsFormat);
    EXPECT_EQ(m.size(), 3u);
    EXPECT_EQ(m.files().size(), 2u);
    EXPECT_EQ(m.get("a.weight").file, dir / "model-00001-of-00002.safetensors");
    EXPECT_EQ(m.get("c.scale").file, dir / "model-00002-of-00002.safetensors");
    EXPECT_EQ(m.get("c.scale").data[0], 20);
  }
}

TEST(Safetensors, ShardedErrors) {
  {
    TempDir dir;  // a shard the index names is absent
    json map = kMap;
    map["c.scale"] = "model-00003-of-00003.safetensors";
    write_sharded(dir, map);
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); },
             {"model.safetensors.index.json", "model-00003-of-00003.safetensors", "missing", "c.scale"});
  }
  {
    TempDir dir;  // the index names a tensor its shard does not hold
    json map = kMap;
    map["d.extra"] = "model-00002-of-00002.safetensors";
    write_sharded(dir, map);
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); },
             {"'d.extra'", "model-00002-of-00002.safetensors", "lacks it", "no shard holds it"});
  }
  {
    TempDir dir;  // the index puts a tensor in the wrong shard
    json map = kMap;
    map["b.bias"] = "model-00002-of-00002.safetensors";
    write_sharded(dir, map);
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); },
             {"'b.bias'", "lacks it", "it is in", "model-00001-of-00002.safetensors"});
  }
  {
    TempDir dir;  // the same tensor in two shards
    write_sharded(dir, kMap);
    write_bytes(dir / "model-00002-of-00002.safetensors", make_file({kThree[2], kThree[0]}));
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); },
             {"'a.weight'", "also present in", "model-00001-of-00002.safetensors", "one shard only"});
  }
  {
    TempDir dir;  // a damaged shard names itself
    write_sharded(dir, kMap);
    write_bytes(dir / "model-00002-of-00002.safetensors", {1, 2, 3});
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"model-00002-of-00002.safetensors", "3 bytes"});
  }
  {
    TempDir dir;  // a shard path that escapes the folder
    json map = kMap;
    map["c.scale"] = "../model-00002-of-00002.safetensors";
    write_sharded(dir, map);
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"'c.scale'", "not a plain file name"});
  }
  {
    TempDir dir;
    write_sharded(dir, kMap);
    write_text(dir / "model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"model.safetensors.index.json", "invalid JSON"});
    write_text(dir / "model.safetensors.index.json", "{\"metadata\": {}}");
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"\"weight_map\" is missing"});
    write_text(dir / "model.safetensors.index.json", "{\"weight_map\": {}}");
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"lists no tensors"});
    write_text(dir / "model.safetensors.index.json", "{\"weight_map\": {\"a\": 3}}");
    error_of([&] { TensorSet::open(dir.path(), kSafetensorsFormat); }, {"'a'", "should be a string", "number"});
  }
}

TEST(Safetensors, FramingErrors) {
  parse_error({1, 2, 3, 4}, {"x.safetensors", "4 bytes", "too short", "truncated"});

  auto good = make_file(kThree);
  auto cut = good;
  cut.resize(20);
  parse_error(cut, {"header length", "only 12 bytes follow", "truncated"});

  auto absurd = good;
  absurd[5] = 0x01;  // 2^40 + ...
  parse_error(absurd, {"above the 16 MB a real model"});

  auto not_json = image("{\"w\": {\"dtype\": \"F32\",, }}", {});
  parse_error(not_json, {"x.safetensors", "invalid JSON", "parse error"});
  parse_error(image("[1, 2]", {}), {"does not start with '{'"});
  parse_error(image("", {}), {"does not start with '{'"});

  std::vector<uint8_t> gguf = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0};
  parse_error(gguf, {"GGUF file, not safetensors"});

  std::string deep = "{\"w\": " + std::string(100, '[') + std::string(100, ']') + "}";
  parse_error(image(deep, {}), {"nested deeper than"});

  parse_error(image("{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
                    " \"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
                    {0}),
              {"'w'", "appears twice"});
  parse_error(image("{\"__metadata__\": {\"k\": 1}}", {}), {"__metadata__[\"k\"]", "should be a string"});
  parse_error(image("{\"__metadata__\": []}", {}), {"\"__metadata__\" should be an object"});
}

TEST(Safetensors, EntryErrors) {
  const json ok = {{"dtype", "BF16"}, {"shape", {2, 3}}, {"data_offsets", {0, 12}}};
  EXPECT_NO_THROW({
    auto b = one_tensor(ok, 12);
    parse_safetensors_header(b.data(), b.size(), "x");
  });
  auto with = [&](const char* key, const json& v) {
    json e = ok;
    if (v.is_discarded()) {
      e.erase(key);
    } else {
      e[key] = v;
    }
    return one_tensor(e, 12);
  };
  const json missing = json(json::value_t::discarded);

  parse_error(one_tensor(3, 0), {"'w'", "expected an object", "number"});
  parse_error(with("dtype", missing), {"'w'", "\"dtype\" is missing"});
  parse_error(with("shape", missing), {"'w'", "\"shape\" is missing"});
  parse_error(with("data_offsets", missing), {"'w'", "\"data_offsets\" is missing"});

  parse_error(with("dtype", 5), {"'w'", "\"dtype\" should be a string"});
  parse_error(with("dtype", "Q4_K"), {"x.safetensors", "'w'", "unknown dtype \"Q4_K\"", "BF16"});

  parse_error(with("shape", "2x3"), {"'w'", "\"shape\" should be an array", "string"});
  parse_error(with("shape", {2, -3}), {"'w'", "non-negative integer", "negative number (-3)"});
  parse_error(with("shape", {2, 1.5}), {"'w'", "non-negative integer", "fraction"});
  parse_error(with("shape", json::array({1u << 31, 1u << 31, 1u << 31})), {"'w'", "overflows 64 bits"});
  parse_error(with("shape", json::array({uint64_t{1} << 62, 2})), {"'w'", "overflows 64 bits"});
  parse_error(with("shape", json::array({uint64_t{1} << 63})), {"'w'", "does not fit int64"});
  parse_error(with("shape", json(std::vector<int>(17, 1))), {"'w'", "rank 17"});

  parse_error(with("data_offsets", {0, 12, 24}), {"'w'", "[begin, end]"});
  parse_error(with("data_offsets", {0, -12}), {"'w'", "non-negative integer"});
  parse_error(with("data_offsets", {12, 0}), {"'w'", "run backwards"});
  parse_error(with("data_offsets", {0, 16}), {"'w'", "[0, 16]", "end past the data section (12 bytes)", "truncated"});
  parse_error(with("data_offsets", {0, 10}), {"'w'", "BF16 [2, 3] needs 12 bytes", "[0, 10] hold 10"});
  parse_error(with("data_offsets", {0, json::number_unsigned_t(-1)}), {"'w'", "end past the data section"});

  json f4 = {{"dtype", "F4"}, {"shape", {3}}, {"data_offsets", {0, 1}}};
  parse_error(one_tensor(f4, 2), {"'w'", "whole number of bytes"});
}

// Random mutations and truncations of a valid file: each must parse into views inside the buffer or throw
// groak::Error (the suite also runs under ASan+UBSan, which catches any stray read).
TEST(Safetensors, MiniFuzz) {
  json meta = {{"format", "pt"}};
  const auto valid = make_file({kThree[0], kThree[1], kThree[2], {"d", "F4", {4}, fill(2, 0)}}, meta);
  std::mt19937 rng(1234);
  const std::string interesting = "{}[]\",:-0123456789eE. \\u";
  const char* const tokens[] = {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"BF16\"", "\"__metadata__\"",
                                "18446744073709551615", "-1", "1e999", "[]", "{}", "null"};
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = valid;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !b.empty(); ++k) {
      size_t at = rng() % b.size();
      switch (rng() % 7) {
        case 0: b[at] = static_cast<uint8_t>(rng()); break;
        case 1: b[at] = static_cast<uint8_t>(interesting[rng() % interesting.size()]); break;
        case 2: b.resize(at); break;  // truncation
        case 3: b.erase(b.begin() + static_cast<long>(at)); break;
        case 4: b.insert(b.begin() + static_cast<long>(at), static_cast<uint8_t>(interesting[rng() % interesting.size()])); break;
        case 5: b[rng() % std::min<size_t>(8, b.size())] = static_cast<uint8_t>(rng()); break;  // length field
        case 6: {
          const char* t = tokens[rng() % std::size(tokens)];
          b.insert(b.begin() + static_cast<long>(at), t, t + std::strlen(t));
          break;
        }
      }
    }
    try {
      SafetensorsHeader h = parse_safetensors_header(b.data(), b.size(), "fuzz");
      for (const TensorView& t : h.tensors) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.nbytes, b.size());
        ASSERT_LE(t.data + t.nbytes, b.data() + b.size()) << t.name;
        ASSERT_LE(h.data_start, t.offset);
      }
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  std::printf("mini-fuzz: %d mutants parsed, %d rejected with groak::Error\n", parsed, rejected);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(parsed, 0);
}

}  // namespace groak::test
