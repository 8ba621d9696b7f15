// The xAI checkpoint reader on deliberately broken copies of the tiny-a fixture: each breakage must give
// its own clear error (file, tensor, expected vs found), never a crash.
#include <cstring>

#include "io/xai_pickle.h"
#include "model/loader.h"
#include "synth/pickle_writer.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

// A writable copy of tiny-a in a temp folder.
class BrokenCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0");
    fs::create_directories(dir_ / "ckpt-0");
    for (const auto& e : fs::directory_iterator(fixture_dir() + "/ckpt-0"))
      fs::copy_file(e.path(), fs::path(dir_ / "ckpt-0") / e.path().filename());
    fs::copy_file(fixture_dir() + "/config.json", dir_ / "config.json");
    for (const auto& e : fs::recursive_directory_iterator(dir_.path()))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  std::string file(int index) const {
    char name[32];
    std::snprintf(name, sizeof name, "tensor%05d_000", index);
    return (fs::path(dir_ / "ckpt-0") / name).string();
  }
  std::vector<uint8_t> read(const std::string& f) const {
    std::ifstream in(f, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  void write(const std::string& f, const std::vector<uint8_t>& b) const {
    std::ofstream out(f, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  // Replaces the first occurrence of `from` by `to` (same length) in a file.
  void patch(const std::string& f, const std::string& from, const std::string& to) const {
    ASSERT_EQ(from.size(), to.size());
    auto b = read(f);
    auto it = std::search(b.begin(), b.end(), from.begin(), from.end());
    ASSERT_NE(it, b.end()) << from << " not in " << f;
    std::copy(to.begin(), to.end(), it);
    write(f, b);
  }
  // Loads and returns the error message (fails the test if loading succeeds).
  std::string load_error() const {
    try {
      load_model(dir_.path());
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "loading the broken copy succeeded";
    return "";
  }
  TempDir dir_;
};

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "error was: " << (msg)

}  // namespace

TEST_F(BrokenCopy, IntactCopyLoads) {
  Model m = load_model(dir_.path());
  EXPECT_EQ(m.config.num_layers, 2);
  EXPECT_EQ(m.tensors.size(), 26u);
  // ckpt-0 itself is accepted too.
  EXPECT_NO_THROW(load_model(dir_ / "ckpt-0"));
}

TEST_F(BrokenCopy, TruncatedFile) {
  auto b = read(file(3));
  b.resize(b.size() / 2);
  write(file(3), b);
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00003_000");
  EXPECT_HAS(msg, "runs past the end of the file");
}

TEST_F(BrokenCopy, FlippedOpcode) {
  auto b = read(file(1));
  b[11] = 'i';  // INST: the first opcode after FRAME becomes a code-executing one
  write(file(1), b);
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00001_000");
  // Damaged first (a flipped byte is the likely cause), then what the byte would mean.
  EXPECT_HAS(msg, "unexpected byte 0x69");
  EXPECT_HAS(msg, "INST, which is not allowed");
  EXPECT_LT(msg.find("damaged"), msg.find("INST, which is not allowed")) << msg;
}

TEST_F(BrokenCopy, ForeignGlobal) {
  patch(file(2), "__main__", "builtins");
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00002_000");
  EXPECT_HAS(msg, "global 'builtins.QuantizedWeight8bit' is not on the whitelist");
}

TEST_F(BrokenCopy, ForeignDtypeModule) {
  patch(file(2), "ml_dtypes", "evil_mods");
  EXPECT_HAS(load_error(), "global 'evil_mods.bfloat16' is not on the whitelist");
}

TEST_F(BrokenCopy, WrongShape) {
  // key [64, 32] where query [64, 64] belongs: a valid pickle with the wrong shape.
  fs::copy_file(file(5), file(7), fs::copy_options::overwrite_existing);
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00007_000");
  EXPECT_HAS(msg, "transformer/decoder_layer_0/multi_head_attention/query/w");
  EXPECT_HAS(msg, "should be [64, 64]");
  EXPECT_HAS(msg, "found [64, 32]");
}

TEST_F(BrokenCopy, ArrayWhereQuantizedWeightBelongs) {
  fs::copy_file(file(9), file(7), fs::copy_options::overwrite_existing);  // a norm [64] in query's place
  EXPECT_HAS(load_error(), "should be a QuantizedWeight8bit");
}

TEST_F(BrokenCopy, MissingFile) {
  fs::remove(file(10));
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00010_000: missing");
  EXPECT_HAS(msg, "needs 26 files");
}

TEST_F(BrokenCopy, ExtraFile) {
  fs::copy_file(file(1), file(26));
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00026_000: extra file");
}

TEST_F(BrokenCopy, PayloadLengthDisagreesWithShape) {
  // The final norm is [64]; claim [32] so that shape × itemsize no longer matches the payload.
  auto b = read(file(1));
  ASSERT_EQ(b[88], 64);
  b[88] = 32;
  write(file(1), b);
  EXPECT_HAS(load_error(), "needs 128 bytes of data, the payload has 256");
}

TEST_F(BrokenCopy, ScalesThatDoNotFitTheWeight) {
  // Attention output projection with per-column scales [1, 64] instead of 8 row blocks [8, 64].
  pickle::NpArray w{pickle::NpDType::I8, {64, 64}, [](uint8_t* p, uint64_t, size_t n) { std::memset(p, 1, n); }};
  pickle::NpArray s{pickle::NpDType::BF16, {1, 64}, [](uint8_t* p, uint64_t, size_t n) { std::memset(p, 0x3c, n); }};
  pickle::VectorSink sink;
  pickle::pickle_quantized_weight(sink, w, s);
  write(file(6), sink.bytes);
  std::string msg = load_error();
  EXPECT_HAS(msg, "tensor00006_000");
  EXPECT_HAS(msg, "scales shape");
  EXPECT_HAS(msg, "should be [8, 64]");
  EXPECT_HAS(msg, "found [1, 64]");
}

TEST_F(BrokenCopy, ConfigDisagreesWithFiles) {
  std::string cfg;
  {
    std::ifstream in(dir_ / "config.json");
    cfg.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  cfg.replace(cfg.find("\"num_layers\": 2"), 15, "\"num_layers\": 3");
  std::ofstream(dir_ / "config.json") << cfg;
  std::string msg = load_error();
  EXPECT_HAS(msg, "missing");
  EXPECT_HAS(msg, "needs 38 files");
}

TEST_F(BrokenCopy, MalformedConfigJson) {
  std::ofstream(dir_ / "config.json") << "{ \"vocab_size\": 512, ";
  EXPECT_HAS(load_error(), "config.json is not valid JSON");
}

TEST_F(BrokenCopy, NoConfigMeansGrok1Defaults) {
  fs::remove(dir_ / "config.json");
  std::string msg = load_error();
  EXPECT_HAS(msg, "Grok-1 defaults");
}

TEST(Loader, WrongPathSaysWhatToPass) {
  try {
    load_model("/nonexistent/groak/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "no such file or folder");
  }
  TempDir empty;
  try {
    load_model(empty.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "no ckpt-0/ folder");
  }
}

TEST(Pickle, RandomCorruptionNeverCrashes) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0/tensor00003_000");
  std::ifstream in(fixture_dir() + "/ckpt-0/tensor00003_000", std::ios::binary);
  std::vector<uint8_t> orig((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 g(1);
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = orig;
    // Corrupt the opcode region (first 200 and last 320 bytes) with 1-3 random byte flips.
    const int flips = 1 + static_cast<int>(g() % 3);
    for (int f = 0; f < flips; ++f) {
      size_t pos = g() % 2 ? g() % 200 : b.size() - 1 - g() % 320;
      b[pos] = static_cast<uint8_t>(g());
    }
    if (g() % 5 == 0) b.resize(g() % b.size());
    try {
      PickledTensor t = parse_xai_pickle(b.data(), b.size(), "fuzz");
      // If it parses, every payload must still lie inside the buffer.
      for (const PickledArray* a : {&t.array, &t.weight, &t.scales}) EXPECT_LE(a->offset + a->nbytes, b.size());
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 1000);
}

}  // namespace groak::test

namespace groak::test {

// Settings that would make the model compute garbage (or allocate without bound) are refused up front.
TEST_F(BrokenCopy, ConfigValuesAreValidated) {
  auto with = [&](const std::string& from, const std::string& to) {
    std::ifstream in(fixture_dir() + "/config.json");
    std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    cfg.replace(cfg.find(from), from.size(), to);
    std::ofstream(dir_ / "config.json") << cfg;
    return load_error();
  };
  EXPECT_HAS(with("\"num_layers\": 2", "\"num_layers\": 2.9"), "should be a whole number");
  EXPECT_HAS(with("\"num_q_heads\": 4", "\"num_q_heads\": 1e30"), "should be a whole number");
  EXPECT_HAS(with("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1"), "rms_norm_eps must be");
  EXPECT_HAS(with("\"widening_factor\": 8", "\"widening_factor\": 0.001"), "ffn_size");
  // Millions of layers: an immediate "missing file", not gigabytes of bookkeeping.
  EXPECT_HAS(with("\"num_layers\": 2", "\"num_layers\": 16777216"), "tensor00026_000: missing");
}

}  // namespace groak::test
