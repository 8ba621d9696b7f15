// torch.save archives (the format of Grok-1's Hugging Face ports): archives from groak's own writer in every
// zip layout, every kind of damage and every forbidden construct named in the error (and nothing run), random
// mutations never escaping the buffer, and, where Debian's python3-torch is installed, files torch itself
// wrote (and groak's files loaded by torch).
#include "io/torch_bin.h"

#include <cstring>

#include "io/zip_reader.h"
#include "kernels/quant.h"
#include "kernels/tensor.h"
#include "synth/torch_zip_writer.h"
#include "test_util.h"

namespace groak::test {

namespace {

using pickle::StateDictType;
using pickle::VectorSink;

// Byte i of storage k.
uint8_t pattern(size_t k, uint64_t i) { return static_cast<uint8_t>(k * 50 + 7 * i + 3); }

TorchStorage storage(size_t k, const char* type, uint64_t element_size, uint64_t numel) {
  TorchStorage s;
  s.type = type;
  s.element_size = element_size;
  s.numel = numel;
  s.fill = [k](uint8_t* buf, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; ++i) buf[i] = pattern(k, off + i);
  };
  return s;
}

std::vector<uint8_t> archive(const std::vector<TorchStorage>& storages, const std::vector<TorchTensorSpec>& tensors,
                             const TorchSaveOptions& opt = {}) {
  VectorSink out;
  write_torch_zip(out, storages, tensors, opt);
  return out.bytes;
}

std::vector<TensorView> parse(const std::vector<uint8_t>& b, PickleCrc crc = PickleCrc::Verify) {
  return parse_torch_zip(b.data(), b.size(), "x.bin", crc);
}

std::string torch_parse_error(const std::vector<uint8_t>& b, std::initializer_list<const char*> needles) {
  return error_of([&] { parse(b); }, needles);
}



// Position of the n-th occurrence of `what` in b (npos if absent).
size_t find_nth(const std::vector<uint8_t>& b, const std::string& what, int n = 0) {
  auto it = b.begin();
  for (int k = 0;; ++k) {
    it = std::search(it, b.end(), what.begin(), what.end());
    if (it == b.end() || k == n) break;
    ++it;
  }
  return it == b.end() ? std::string::npos : static_cast<size_t>(it - b.begin());
}

void patch(std::vector<uint8_t>& b, const std::string& from, const std::string& to, int n = 0) {
  ASSERT_EQ(from.size(), to.size());
  const size_t at = find_nth(b, from, n);
  ASSERT_NE(at, std::string::npos) << from;
  std::copy(to.begin(), to.end(), b.begin() + static_cast<long>(at));
}

// A zip holding `pkl` as archive/data.pkl and storages[i] as archive/data/<i>.
std::vector<uint8_t> zip_with_pickle(const std::vector<uint8_t>& pkl, const std::vector<TorchStorage>& storages = {}) {
  VectorSink out;
  ZipWriter z(out, ZipStyle::Torch, 64);
  z.add("archive/data.pkl", pkl);
  for (size_t i = 0; i < storages.size(); ++i)
    z.add("archive/data/" + std::to_string(i), storages[i].numel * storages[i].element_size, storages[i].fill);
  z.add("archive/version", std::vector<uint8_t>{'3', '\n'});
  z.finish();
  return out.bytes;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// Pickle text pieces: BINUNICODE s, and raw bytes (which may hold NULs).
std::string X(const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return std::string{'X', static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 24)} + s;
}
std::string raw(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

// The views a test archive holds: bf16 [3, 4] and a [2, 2] window into the same storage, f32, f16, int64,
// an empty tensor, a scalar and a [1, 1] tensor with arbitrary strides (size-1 dimensions do not matter).
const std::vector<TorchStorage> kStorages = {storage(0, "BFloat16Storage", 2, 12), storage(1, "FloatStorage", 4, 6),
                                             storage(2, "HalfStorage", 2, 4), storage(3, "LongStorage", 8, 2)};
const std::vector<TorchTensorSpec> kTensors = {
    {"a.weight", 0, 0, {3, 4}, {}},  {"a.window", 0, 4, {2, 2}, {}}, {"b", 1, 0, {2, 3}, {}},
    {"c", 2, 0, {4}, {}},            {"d.ids", 3, 0, {2}, {}},       {"e.empty", 1, 0, {0, 3}, {}},
    {"f.scalar", 1, 5, {}, {}},      {"g.unit", 0, 11, {1, 1}, {7, 9}},
};

}  // namespace

TEST(TorchZip, ReadsViewsInEveryLayout) {
  for (ZipStyle zs : {ZipStyle::Classic, ZipStyle::Torch, ZipStyle::Zip64Everywhere})
    for (StateDictType dt : {StateDictType::Dict, StateDictType::OrderedDict})
      for (uint64_t align : {64u, 1u}) {
        SCOPED_TRACE("zip style " + std::to_string(static_cast<int>(zs)) + ", dict " +
                     std::to_string(static_cast<int>(dt)) + ", alignment " + std::to_string(align));
        TorchSaveOptions opt;
        opt.zip = zs;
        opt.dict = dt;
        opt.alignment = align;
        opt.archive = align == 1 ? "pytorch_model-00001-of-00002" : "archive";
        const auto b = archive(kStorages, kTensors, opt);
        const auto ts = parse(b);
        ASSERT_EQ(ts.size(), kTensors.size());
        std::map<std::string, const TensorView*> by;
        for (const TensorView& t : ts) by[t.name] = &t;
        for (size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i - 1].name, ts[i].name) << "sorted by name";
        for (const TorchTensorSpec& spec : kTensors) {
          const TensorView& t = *by.at(spec.name);
          const TorchStorage& s = kStorages[spec.storage];
          EXPECT_EQ(t.shape, spec.shape) << spec.name;
          EXPECT_EQ(t.file, "x.bin");
          EXPECT_EQ(t.data, b.data() + t.offset);
          EXPECT_EQ(static_cast<int64_t>(t.nbytes), t.numel() * static_cast<int64_t>(s.element_size)) << spec.name;
          for (uint64_t j = 0; j < t.nbytes; ++j)
            ASSERT_EQ(t.data[j], pattern(spec.storage, spec.storage_offset * s.element_size + j)) << spec.name << " byte " << j;
        }
        EXPECT_EQ(by.at("a.weight")->dtype, TensorDType::BF16);
        EXPECT_EQ(by.at("a.weight")->dtype_name, "BF16");
        EXPECT_EQ(by.at("b")->dtype, TensorDType::F32);
        EXPECT_EQ(by.at("c")->dtype, TensorDType::F16);
        EXPECT_EQ(by.at("d.ids")->dtype, TensorDType::Other);
        EXPECT_EQ(by.at("d.ids")->dtype_name, "I64");
        EXPECT_EQ(by.at("a.window")->data, by.at("a.weight")->data + 8) << "a view into the same storage, not a copy";
        EXPECT_EQ(by.at("f.scalar")->numel(), 1);
        EXPECT_EQ(by.at("e.empty")->nbytes, 0u);
        if (align == 64) {
          EXPECT_EQ(by.at("a.weight")->offset % 64, 0u) << "torch aligns storages to 64 bytes";
          EXPECT_EQ(by.at("d.ids")->offset % 64, 0u);
        }
        error_of([&] { by.at("d.ids")->require_float(); }, {"x.bin", "'d.ids'", "I64", "F32, F16 or BF16"});
      }
}

TEST(TorchZip, OpensFilesAndShardedFolders) {
  TempDir dir;
  write_bytes(dir / "pytorch_model.bin", archive(kStorages, kTensors));
  for (const std::string& path : {dir.path(), dir / "pytorch_model.bin"}) {
    TensorSet m = TensorSet::open(path, kTorchBinFormat);
    EXPECT_EQ(m.size(), kTensors.size());
    EXPECT_EQ(m.get("b").file, dir / "pytorch_model.bin");
    EXPECT_EQ(m.get("b").data[0], pattern(1, 0));
  }
  // Two shards and the index beside them, as transformers writes them.
  TempDir sharded;
  write_bytes(sharded / "pytorch_model-00001-of-00002.bin",
              archive({kStorages[0]}, {kTensors[0], kTensors[1]}, {"pytorch_model-00001-of-00002"}));
  write_bytes(sharded / "pytorch_model-00002-of-00002.bin", archive({kStorages[1]}, {{"b", 0, 0, {2, 3}, {}}}));
  nlohmann::json index = {{"metadata", {{"total_size", 48}}},
                          {"weight_map",
                           {{"a.weight", "pytorch_model-00001-of-00002.bin"},
                            {"a.window", "pytorch_model-00001-of-00002.bin"},
                            {"b", "pytorch_model-00002-of-00002.bin"}}}};
  std::ofstream(sharded / "pytorch_model.bin.index.json") << index.dump(2);
  for (const std::string& path : {sharded.path(), sharded / "pytorch_model.bin.index.json"}) {
    TensorSet m = TensorSet::open(path, kTorchBinFormat);
    EXPECT_EQ(m.size(), 3u);
    EXPECT_EQ(m.files().size(), 2u);
    EXPECT_EQ(m.get("b").file, sharded / "pytorch_model-00002-of-00002.bin");
    EXPECT_EQ(m.get("a.window").data[0], pattern(0, 8));
  }
  fs::remove(sharded / "pytorch_model-00002-of-00002.bin");
  error_of([&] { TensorSet::open(sharded.path(), kTorchBinFormat); },
           {"pytorch_model.bin.index.json", "'b'", "pytorch_model-00002-of-00002.bin is missing"});
  TempDir empty;
  error_of([&] { TensorSet::open(empty.path(), kTorchBinFormat); }, {"pytorch_model.bin.index.json", "pytorch_model.bin"});
}

// Pickles that would run a shell command in Python. groak names what it refuses and runs nothing: the
// command would create `pwned`.
TEST(TorchZip, RefusesCodeByNameAndRunsNothing) {
  TempDir dir;
  const std::string arg = X("touch " + (dir / "pwned"));
  struct Case {
    const char* what;
    std::string pickle;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"os.system", "\x80\x02" "cos\nsystem\n" + arg + "\x85R.", "global 'os.system' is not on the whitelist"},
      {"posix.system (what pickling os.system writes on Linux)", "\x80\x02" "cposix\nsystem\n" + arg + "\x85R.",
       "global 'posix.system' is not on the whitelist"},
      {"builtins.eval via STACK_GLOBAL",
       "\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93" + arg + "\x85R.", "global 'builtins.eval' is not on the whitelist"},
      {"__builtin__.eval", "\x80\x02" "c__builtin__\neval\n" + arg + "\x85R.",
       "global '__builtin__.eval' is not on the whitelist"},
      {"INST", "\x80\x02(" + arg + "ios\nsystem\n.", "opcode INST, which is not allowed"},
      {"OBJ of a whitelisted class", "\x80\x02(" "ccollections\nOrderedDict\no.", "opcode OBJ, which is not allowed"},
      {"text PERSID", "\x80\x02P0\n.", "opcode PERSID, which is not allowed"},
      {"calling a storage class", "\x80\x02" "ctorch\nFloatStorage\n)R.", "calling torch.FloatStorage is not allowed"},
      {"a persistent id that is not a storage tuple", "\x80\x02" + X("abc") + "Q.",
       "a persistent reference other than ('storage'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string msg = torch_parse_error(zip_with_pickle(bytes_of(c.pickle)), {"x.bin:archive/data.pkl", c.expect});
    if (std::string(c.expect).find("global") != std::string::npos) {
      EXPECT_NE(msg.find("never runs code from a pickle"), std::string::npos) << msg;
    }
  }
  // The same through the folder reader.
  write_bytes(dir / "pytorch_model.bin", zip_with_pickle(bytes_of(cases[0].pickle)));
  error_of([&] { TensorSet::open(dir.path(), kTorchBinFormat); }, {"pytorch_model.bin", "os.system"});
  EXPECT_FALSE(fs::exists(dir / "pwned")) << "a refused pickle ran a command";
}

TEST(TorchZip, RefusesTensorsItCannotMapInPlace) {
  // Not contiguous: a transposed [3, 4].
  torch_parse_error(archive(kStorages, {{"t", 0, 0, {3, 4}, {1, 3}}}),
              {"x.bin", "'t'", "not contiguous (size [3, 4], stride [1, 3])", ".contiguous()"});
  // Past the end of its storage (12 elements).
  torch_parse_error(archive(kStorages, {{"t", 0, 10, {2, 2}, {}}}),
              {"'t'", "size [2, 2] at storage offset 10 runs past the end of its storage archive/data/0 (12 elements)"});
  // The storage entry holds other than numel x element size bytes.
  auto wide = kStorages;
  wide[0].element_size = 4;
  torch_parse_error(archive(wide, {kTensors[0]}), {"'a.weight'", "should hold 12 BF16 elements (24 bytes), the entry has 48"});
  // A storage class that is not a state dict's is refused by name.
  auto complex = kStorages;
  complex[1].type = "ComplexFloatStorage";
  torch_parse_error(archive(complex, {{"b", 1, 0, {2, 3}, {}}}), {"global 'torch.ComplexFloatStorage' is not on the whitelist"});
  // The storage entry is missing.
  auto b = archive(kStorages, {kTensors[0]});
  patch(b, "archive/data/0", "archive/data/7", 0);
  patch(b, "archive/data/0", "archive/data/7", 0);
  torch_parse_error(b, {"'a.weight'", "archive/data/0 is not in the archive"});
  // Two references to one storage that disagree on its size.
  pickle::TorchTensorRef r1{"p", "FloatStorage", "0", 6, 0, {6}, {1}}, r2{"q", "FloatStorage", "0", 3, 0, {3}, {1}};
  VectorSink pkl;
  pickle::pickle_torch_state_dict(pkl, {r1, r2}, StateDictType::Dict);
  torch_parse_error(zip_with_pickle(pkl.bytes, {kStorages[1]}),
              {"'q'", "storage 0 is referenced as 3 FloatStorage elements and elsewhere as 6"});
  // The same name twice.
  VectorSink twice;
  pickle::pickle_torch_state_dict(twice, {r1, r1}, StateDictType::Dict);
  torch_parse_error(zip_with_pickle(twice.bytes, {kStorages[1]}), {"'p'", "appears twice in the state dict"});
  // Something other than a tensor in the state dict, and something other than a dict.
  torch_parse_error(zip_with_pickle(bytes_of("\x80\x02}" + X("a") + "K\x05s.")), {"state dict entry 'a' is a int, not a tensor"});
  torch_parse_error(zip_with_pickle(bytes_of("\x80\x02K\x05.")), {"the pickle holds a int, expected a state dict"});
  // Backward hooks (in Python they would be functions).
  const std::string hooked = "\x80\x02}" + X("a") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" + X("storage") +
                             "ctorch\nFloatStorage\n" + X("0") + X("cpu") + "K\x06tQ" + raw({'K', 0}) + "K\x06\x85" +
                             "K\x01\x85" + "\x89" + "}" + X("k") + X("v") + "s" + "tRs.";
  torch_parse_error(zip_with_pickle(bytes_of(hooked), {kStorages[1]}), {"a tensor with backward hooks"});
}

TEST(TorchZip, DamageIsNamed) {
  const auto good = archive(kStorages, kTensors);
  const size_t cd = find_nth(good, "PK\x01\x02");  // the first central header: archive/data.pkl
  ASSERT_NE(cd, std::string::npos);
  auto compressed = good;
  compressed[cd + 10] = 8;
  torch_parse_error(compressed, {"x.bin", "zip entry 'archive/data.pkl'", "compressed (deflate)", "zip -0"});
  auto encrypted = good;
  encrypted[cd + 8] = 1;
  torch_parse_error(encrypted, {"'archive/data.pkl'", "is encrypted"});
  auto truncated = good;
  truncated.resize(good.size() / 2);
  torch_parse_error(truncated, {"x.bin", "no end-of-central-directory record"});
  auto cut = good;
  cut.resize(30);
  torch_parse_error(cut, {"x.bin"});
  auto crc = good;
  patch(crc, "a.weight", "a.weighT");
  torch_parse_error(crc, {"archive/data.pkl does not match its CRC-32"});
  auto local = good;
  patch(local, "archive/data/1", "archive/data/X", 0);  // the local header only
  torch_parse_error(local, {"'archive/data/1'", "names another entry"});
  auto big_endian = good;
  patch(big_endian, "little", "bigend");
  torch_parse_error(big_endian, {"byte order \"bigend\"", "little-endian"});
  auto outside = good;  // the ZIP64 end record's directory offset
  const size_t end64 = find_nth(good, "PK\x06\x06");
  ASSERT_NE(end64, std::string::npos);
  outside[end64 + 48 + 5] = 0x7f;
  torch_parse_error(outside, {"the central directory", "lies outside the file"});
  TorchSaveOptions classic;
  classic.zip = ZipStyle::Classic;
  auto multi = archive(kStorages, kTensors, classic);
  multi[find_nth(multi, "PK\x05\x06") + 4] = 1;
  torch_parse_error(multi, {"a multi-part zip archive", "join the parts"});
  TorchSaveOptions everywhere;
  everywhere.zip = ZipStyle::Zip64Everywhere;
  auto no_extra = archive(kStorages, kTensors, everywhere);
  const size_t cd64 = find_nth(no_extra, "PK\x01\x02");
  no_extra[cd64 + 46 + std::string("archive/data.pkl").size()] = 9;  // the ZIP64 extra field's id
  torch_parse_error(no_extra, {"'archive/data.pkl'", "defers to a ZIP64 extra field that is missing"});
  {
    VectorSink out;
    ZipWriter z(out, ZipStyle::Torch, 64);
    z.add("archive/version", bytes_of("3\n"));
    z.add("archive/version", bytes_of("3\n"));
    z.finish();
    torch_parse_error(out.bytes, {"'archive/version'", "appears twice in the central directory"});
  }
  {
    VectorSink out;
    ZipWriter z(out, ZipStyle::Torch, 64);
    z.add("archive/version", bytes_of("3\n"));
    z.finish();
    torch_parse_error(out.bytes, {"a zip archive without data.pkl", "not a torch.save archive"});
  }
}

TEST(TorchZip, LegacyFormatAndOtherFilesAreNamed) {
  // What torch.save(obj, f, _use_new_zipfile_serialization=False) starts with: the magic number, pickled.
  const std::vector<uint8_t> legacy = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  torch_parse_error(legacy, {"x.bin", "legacy torch.save format", "PyTorch before 1.6", "re-save it"});
  torch_parse_error(bytes_of("GGUF\x03\x00\x00\x00"), {"neither a zip archive nor a pickle"});
  torch_parse_error({}, {"neither a zip archive nor a pickle"});
  TempDir dir;
  write_bytes(dir / "pytorch_model.bin", legacy);
  error_of([&] { TensorSet::open(dir.path(), kTorchBinFormat); }, {"pytorch_model.bin", "legacy"});
}

// Random mutations of a valid archive (the pickle's CRC not checked, so mutated pickles reach the reader):
// each must parse into views inside the buffer or throw groak::Error.
TEST(TorchZip, MiniFuzz) {
  TorchSaveOptions opt;
  opt.dict = StateDictType::OrderedDict;
  const auto valid = archive(kStorages, kTensors, opt);
  const size_t pkl_end = find_nth(valid, "PK\x03\x04", 1), cd = find_nth(valid, "PK\x01\x02");
  std::mt19937 rng(99);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::vector<uint8_t> b = valid;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && b.size() > cd; ++k) {
      // Mostly the pickle and the directory, where the structure is.
      const size_t at = rng() % 3 == 0 ? rng() % b.size() : rng() % 2 ? rng() % pkl_end : cd + rng() % (b.size() - cd);
      switch (rng() % 4) {
        case 0: b[at] = static_cast<uint8_t>(rng()); break;
        case 1: b[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 2: b[at] = static_cast<uint8_t>("(tQRbusq\x85\x86\x87}K\xff\x00"[rng() % 16]); break;
        case 3: b.resize(at + (b.size() - at) / 2); break;
      }
    }
    try {
      for (const TensorView& t : parse(b, PickleCrc::Skip)) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.nbytes, b.size());
        ASSERT_LE(t.data + t.nbytes, b.data() + b.size()) << t.name;
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

TEST(ZipReader, Crc32MatchesTheStandard) {
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xcbf43926u);  // the CRC-32 check value
  EXPECT_EQ(crc32(nullptr, 0), 0u);
  const std::string a = "hello ", b = "world";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(b.data()), b.size(),
                  crc32(reinterpret_cast<const uint8_t*>(a.data()), a.size())),
            crc32(reinterpret_cast<const uint8_t*>("hello world"), 11));
}

// ---- files written by torch itself (Debian's python3-torch) ------------------------------------------

namespace {

// Element i of a float tensor, whatever its type.
float element(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case TensorDType::F32: return load_f32(t.data + 4 * i);
    case TensorDType::BF16: return load_bf16(t.data + 2 * i);
    case TensorDType::F16: {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      return fp16_to_f32(h);
    }
    case TensorDType::Other: break;
  }
  ADD_FAILURE() << t.name << " is not a float tensor";
  return 0;
}

std::map<std::string, TensorView> parse_file(const std::vector<uint8_t>& b, const std::string& file) {
  std::map<std::string, TensorView> out;
  for (TensorView& t : parse_torch_zip(b.data(), b.size(), file)) out[t.name] = t;
  return out;
}

// The data.pkl entry of an archive.
std::vector<uint8_t> data_pkl(const std::vector<uint8_t>& b) {
  for (const ZipEntry& e : read_zip_directory(b.data(), b.size(), "archive"))
    if (e.name.size() >= 8 && e.name.compare(e.name.size() - 8, 8, "data.pkl") == 0)
      return std::vector<uint8_t>(b.begin() + static_cast<long>(e.offset), b.begin() + static_cast<long>(e.offset + e.size));
  ADD_FAILURE() << "no data.pkl";
  return {};
}

}  // namespace

TEST(TorchReal, ReadsWhatTorchSaves) {
  GROAK_REQUIRE_PYTHON_TORCH();
  TempDir dir;
  std::string out;
  ASSERT_EQ(run_command(torch_save_py() + " cases " + dir.path(), &out), 0) << out;

  auto dtypes_file = read_bytes(dir / "dtypes.bin");
  auto dtypes = parse_file(dtypes_file, "dtypes.bin");
  for (const char* name : {"bf16", "f16", "f32"}) {
    const TensorView& t = dtypes.at(name);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 4})) << name;
    for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(element(t, i), static_cast<float>(i) / 4) << name << "[" << i << "]";
  }
  EXPECT_EQ(dtypes.at("bf16").dtype_name, "BF16");
  EXPECT_EQ(dtypes.at("f16").dtype_name, "F16");
  EXPECT_EQ(dtypes.at("i64").dtype_name, "I64");
  EXPECT_EQ(dtypes.at("i64").nbytes, 40u);
  EXPECT_EQ(dtypes.at("bf16").offset % 64, 0u) << "torch aligns storages to 64 bytes";

  auto views_file = read_bytes(dir / "views.bin");
  auto views = parse_file(views_file, "views.bin");
  const TensorView &slice = views.at("slice"), &whole = views.at("whole");
  EXPECT_EQ(slice.shape, (std::vector<int64_t>{2, 3}));
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(element(slice, i), static_cast<float>(5 + i));
  EXPECT_EQ(slice.data, whole.data + 5 * 4) << "a slice is a view into the shared storage";

  auto module_file = read_bytes(dir / "module.bin");
  auto module = parse_file(module_file, "module.bin");
  ASSERT_EQ(module.size(), 2u) << "module.state_dict(): an OrderedDict with _metadata";
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(element(module.at("weight"), i), static_cast<float>(i));
  EXPECT_EQ(element(module.at("bias"), 0), -1.0f);
  EXPECT_EQ(element(module.at("bias"), 2), 2.0f);

  auto param_file = read_bytes(dir / "param.bin");
  EXPECT_EQ(element(parse_file(param_file, "param.bin").at("p"), 3), 3.0f) << "_rebuild_parameter";

  torch_parse_error(read_bytes(dir / "transposed.bin"), {"'t'", "not contiguous (size [3, 2], stride [1, 3])"});
  torch_parse_error(read_bytes(dir / "legacy.bin"), {"legacy torch.save format", "re-save"});
  // torch.save pickled os.system (as posix.system on Linux): refused by name, nothing run.
  const std::string msg = torch_parse_error(read_bytes(dir / "evil.bin"), {"system' is not on the whitelist", "never runs code"});
  EXPECT_TRUE(msg.find("posix.system") != std::string::npos || msg.find("os.system") != std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir / "pwned"));

  // groak's writer emulates CPython's pickler for state dicts: data.pkl byte for byte.
  const pickle::TorchTensorRef a{"w.a", "BFloat16Storage", "0", 12, 0, {3, 4}, {4, 1}},
      b{"w.b", "FloatStorage", "1", 2, 0, {2}, {1}};
  for (auto [file, type] : {std::pair{"plain_dict.bin", StateDictType::Dict}, {"ordered_dict.bin", StateDictType::OrderedDict}}) {
    VectorSink mine;
    pickle::pickle_torch_state_dict(mine, {a, b}, type);
    EXPECT_EQ(mine.bytes, data_pkl(read_bytes(dir / file))) << file << ": inspect with python3 -m pickletools";
  }
}

TEST(TorchReal, TorchLoadsWhatGroakWrites) {
  GROAK_REQUIRE_PYTHON_TORCH();
  // k/4 in bf16, f32 and f16 storages, a window into the first, an OrderedDict.
  auto quarters = [](const char* type, uint64_t es, uint64_t n) {
    TorchStorage s{type, es, n, {}};
    const bool half = std::string(type) == "HalfStorage";
    s.fill = [es, half](uint8_t* buf, uint64_t off, size_t k) {
      for (size_t i = 0; i < k; ++i) {
        const float v = static_cast<float>((off + i) / es) / 4;
        uint32_t bits;
        if (es == 4)
          std::memcpy(&bits, &v, 4);
        else
          bits = half ? f32_to_fp16(v) : f32_to_bf16(v);
        buf[i] = static_cast<uint8_t>(bits >> (8 * ((off + i) % es)));
      }
    };
    return s;
  };
  const std::vector<TorchStorage> storages = {quarters("BFloat16Storage", 2, 12), quarters("FloatStorage", 4, 6),
                                              quarters("HalfStorage", 2, 4)};
  const std::vector<TorchTensorSpec> tensors = {
      {"a", 0, 0, {3, 4}, {}}, {"a.window", 0, 4, {2, 2}, {}}, {"b", 1, 0, {2, 3}, {}}, {"c", 2, 0, {4}, {}}};
  for (ZipStyle zs : {ZipStyle::Classic, ZipStyle::Torch}) {
    TempDir dir;
    TorchSaveOptions opt;
    opt.zip = zs;
    opt.dict = StateDictType::OrderedDict;
    {
      pickle::FileSink f(dir / "groak.bin");
      write_torch_zip(f, storages, tensors, opt);
      f.close();
    }
    std::string out;
    ASSERT_EQ(run_command(torch_save_py() + " load " + (dir / "groak.bin") + " 2>/dev/null", &out), 0) << out;
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_EQ(j["a"][0], "bfloat16");
    EXPECT_EQ(j["b"][0], "float32");
    EXPECT_EQ(j["c"][0], "float16");
    EXPECT_EQ(j["a"][1], nlohmann::json({3, 4}));
    for (int i = 0; i < 12; ++i) EXPECT_EQ(j["a"][2][i].get<double>(), i / 4.0);
    EXPECT_EQ(j["a.window"][2], nlohmann::json({1.0, 1.25, 1.5, 1.75}));
    EXPECT_EQ(j["b"][2][5].get<double>(), 1.25);
    EXPECT_EQ(j["c"][2][3].get<double>(), 0.75);
  }
}

}  // namespace groak::test
