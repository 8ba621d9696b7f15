// `groak synth`: the pickle writer against CPython's pickler (byte for byte) and against the tiny-a
// fixture's files, and the synthetic checkpoint against shared/tools/ref_grok.py.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "kernels/kernels.h"
#include "kernels/tensor.h"
#include "model/config.h"
#include "synth/pickle_writer.h"
#include "synth/synth.h"
#include "model_util.h"
#include "test_util.h"
#include "util/error.h"

// Own namespace, so that helpers added to test_util.h later cannot clash with the ones below.
namespace groak::synth_test {

namespace fs = std::filesystem;
using pickle::NpArray;
using pickle::NpDType;
using test::argmax_rows;
using test::fixture_dir;
using test::read_bytes;
using test::read_f32;
using test::run_command;
using test::shared_dir;
using test::TempDir;

namespace {

const char* kPython = "/usr/bin/python3";


// Skips unless /usr/bin/python3 with numpy is present.
#define REQUIRE_PYTHON_NUMPY()                                                                         \
  do {                                                                                                 \
    if (!fs::exists(kPython) || run_command(std::string(kPython) + " -c 'import numpy'") != 0)        \
      GTEST_SKIP() << "needs /usr/bin/python3 with numpy to compare against CPython's pickle; skipped"; \
  } while (0)

// Payload byte i = (31 i + 7) mod 256; the Python side builds the same bytes.
NpArray pattern_array(NpDType t, std::vector<int64_t> shape) {
  NpArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.fill = [](uint8_t* buf, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>((31 * (off + i) + 7) & 0xff);
  };
  return a;
}

std::string shape_py(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (int64_t d : s) r += std::to_string(d) + ",";
  return r + ")";
}
const char* dtype_py(NpDType t) { return t == NpDType::F32 ? "'f4'" : t == NpDType::I8 ? "'i1'" : "'bf16'"; }

// First offset where a and b differ (or the shorter length), for failure messages.
size_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

// Where the payload of `n` bytes starts, found by its BINBYTES header (the first match; a header
// pattern inside an earlier payload is astronomically unlikely for these files).
size_t payload_offset(const std::vector<uint8_t>& f, uint64_t n, size_t from) {
  std::vector<uint8_t> hdr;
  if (n < 256) {
    hdr = {'C', static_cast<uint8_t>(n)};
  } else {
    hdr = {'B'};
    for (int i = 0; i < 4; ++i) hdr.push_back(static_cast<uint8_t>(n >> (8 * i)));
  }
  auto it = std::search(f.begin() + static_cast<long>(from), f.end(), hdr.begin(), hdr.end());
  if (it == f.end()) throw std::runtime_error("payload header not found");
  return static_cast<size_t>(it - f.begin()) + hdr.size();
}

// A fill that copies bytes out of an existing file.
pickle::PayloadFill copy_from(const std::vector<uint8_t>& f, size_t at) {
  return [&f, at](uint8_t* buf, uint64_t off, size_t n) { std::memcpy(buf, f.data() + at + off, n); };
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pickle writer
// ---------------------------------------------------------------------------------------------

struct PickleCase {
  std::string name;
  std::vector<NpArray> arrays;  // 1: ndarray, 2: QuantizedWeight8bit(weight, scales)
};

TEST(SynthPickle, ByteIdenticalToCPython) {
  REQUIRE_PYTHON_NUMPY();
  const std::vector<PickleCase> cases = {
      {"f32_norm", {pattern_array(NpDType::F32, {64})}},
      {"f32_scalar", {pattern_array(NpDType::F32, {})}},
      {"i8_empty", {pattern_array(NpDType::I8, {0})}},
      {"f32_4d", {pattern_array(NpDType::F32, {2, 3, 4, 5})}},
      {"i8_bin2", {pattern_array(NpDType::I8, {300, 2})}},
      {"f32_64k_unframed", {pattern_array(NpDType::F32, {512, 64})}},
      {"i8_65535_framed", {pattern_array(NpDType::I8, {65535})}},
      {"i8_65536_unframed", {pattern_array(NpDType::I8, {65536})}},
      {"f32_binint_dim", {pattern_array(NpDType::F32, {70000})}},
      {"f32_5d", {pattern_array(NpDType::F32, {1, 2, 300, 1, 70000 / 1000})}},
      {"qw_small", {pattern_array(NpDType::I8, {3, 5}), pattern_array(NpDType::BF16, {1, 5})}},
      {"qw_fixture_like", {pattern_array(NpDType::I8, {8, 344, 64}), pattern_array(NpDType::BF16, {8, 8, 64})}},
      // weight stays inside the first frame, which then exceeds 64 KiB and is cut at 'scales'
      {"qw_big_frame", {pattern_array(NpDType::I8, {10, 6540}), pattern_array(NpDType::BF16, {8, 6540})}},
      {"qw_binint", {pattern_array(NpDType::I8, {2, 70000}), pattern_array(NpDType::BF16, {1, 70000})}},
      {"qw_2d_attn", {pattern_array(NpDType::I8, {256, 64}), pattern_array(NpDType::BF16, {8, 64})}},
  };
  TempDir dir;
  // The Python side: numpy arrays for f4/i1; gen_grok.py's emulation of an ml_dtypes bfloat16 array
  // (numpy 1.x reduce of a user-defined dtype, flags 0x50) and QuantizedWeight8bit in __main__.
  std::string py = R"PY(
import dataclasses, pickle, sys, types
import numpy as np
from numpy.core.multiarray import _reconstruct
ml = types.ModuleType('ml_dtypes')
class bfloat16: pass
bfloat16.__module__ = 'ml_dtypes'; bfloat16.__qualname__ = 'bfloat16'
ml.bfloat16 = bfloat16; sys.modules['ml_dtypes'] = ml
class BF16Descr:
    def __reduce__(self):
        return (np.dtype, (bfloat16, False, True), (3, '<', None, None, None, 2, 2, 0x50))
class RawArray:
    def __init__(self, raw, shape): self.raw, self.shape = raw, shape
    def __reduce__(self):
        return (_reconstruct, (np.ndarray, tuple([0]), b'b'), (1, self.shape, BF16Descr(), False, self.raw))
@dataclasses.dataclass
class QuantizedWeight8bit:
    weight: object
    scales: object
def arr(dt, shape):
    n = int(np.prod(shape, dtype=np.int64)) * {'f4': 4, 'i1': 1, 'bf16': 2}[dt]
    raw = ((np.arange(n, dtype=np.int64) * 31 + 7) & 0xff).astype(np.uint8).tobytes()
    if dt == 'bf16':
        return RawArray(raw, shape)
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()
out = sys.argv[1]
def dump(name, obj):
    with open(out + '/ref_' + name, 'wb') as f:
        pickle.dump(obj, f, protocol=4)
)PY";
  for (const PickleCase& c : cases) {
    const NpArray& a = c.arrays[0];
    if (c.arrays.size() == 1) {
      py += "dump('" + c.name + "', arr(" + dtype_py(a.dtype) + ", " + shape_py(a.shape) + "))\n";
    } else {
      const NpArray& s = c.arrays[1];
      py += "dump('" + c.name + "', QuantizedWeight8bit(weight=arr('i1', " + shape_py(a.shape) +
            "), scales=arr('bf16', " + shape_py(s.shape) + ")))\n";
    }
  }
  {
    std::ofstream f(dir / "ref.py");
    f << py;
  }
  std::string log;
  ASSERT_EQ(run_command(std::string(kPython) + " " + (dir / "ref.py") + " " + dir.path(), &log), 0) << log;

  for (const PickleCase& c : cases) {
    const std::string path = dir / ("mine_" + c.name);
    {
      pickle::FileSink f(path);
      if (c.arrays.size() == 1)
        pickle::pickle_ndarray(f, c.arrays[0]);
      else
        pickle::pickle_quantized_weight(f, c.arrays[0], c.arrays[1]);
      f.close();
    }
    const auto mine = read_bytes(path), ref = read_bytes(dir / ("ref_" + c.name));
    EXPECT_EQ(mine.size(), ref.size()) << c.name;
    EXPECT_TRUE(mine == ref) << c.name << ": first difference at byte " << first_difference(mine, ref)
                             << "; inspect with: /usr/bin/python3 -m pickletools on both files";
    const uint64_t predicted = c.arrays.size() == 1
                                   ? pickle::pickled_size_ndarray(c.arrays[0])
                                   : pickle::pickled_size_quantized_weight(c.arrays[0], c.arrays[1]);
    EXPECT_EQ(predicted, ref.size()) << c.name << ": pickled_size disagrees with the written size";
  }
}

TEST(SynthPickle, IntEncodingMatchesCPython) {
  REQUIRE_PYTHON_NUMPY();
  const std::vector<int64_t> values = {0, 1, 127, 128, 255, 256, 65535, 65536, 2147483647, 2147483648LL,
                                       -1, -128, -129, -256, -65536, -2147483647LL - 1, -2147483649LL,
                                       1LL << 40, -(1LL << 40), (1LL << 47) - 1, -(1LL << 47),
                                       INT64_MAX, INT64_MIN, -(1LL << 55), (1LL << 55)};
  std::string list;
  for (int64_t v : values) list += std::to_string(v) + ",";
  std::string out;
  ASSERT_EQ(run_command(std::string(kPython) + " -c 'import pickle\nfor v in [" + list +
                            "]: print(pickle.dumps(v, protocol=4).hex())'",
                        &out),
            0)
      << out;
  std::istringstream lines(out);
  for (int64_t v : values) {
    std::string want;
    ASSERT_TRUE(std::getline(lines, want));
    std::string got;
    char h[3];
    for (uint8_t b : pickle::pickle_dumps_int(v)) {
      std::snprintf(h, sizeof h, "%02x", b);
      got += h;
    }
    EXPECT_EQ(got, want) << "pickle.dumps(" << v << ", protocol=4)";
  }
}

// Without Python: re-pickling each tiny-a fixture file's own payloads must reproduce it exactly.
TEST(SynthPickle, ReproducesTheFixtureFiles) {
  GROAK_REQUIRE_SHARED(fixture_dir() + "/ckpt-0/tensor00025_000");
  const Config cfg = synth_preset("tiny");
  for (const SynthTensor& t : synth_plan(cfg)) {
    const std::string path = fixture_dir() + "/ckpt-0/" + synth_tensor_file_name(t.index);
    const auto ref = read_bytes(path);
    pickle::VectorSink sink;
    if (!t.quantized()) {
      NpArray a{NpDType::F32, t.shape, {}};
      a.fill = copy_from(ref, payload_offset(ref, a.nbytes(), 0));
      pickle::pickle_ndarray(sink, a);
    } else {
      NpArray w{NpDType::I8, t.shape, {}}, s{NpDType::BF16, t.scales_shape, {}};
      const size_t w_at = payload_offset(ref, w.nbytes(), 0);
      w.fill = copy_from(ref, w_at);
      s.fill = copy_from(ref, payload_offset(ref, s.nbytes(), w_at + w.nbytes()));
      pickle::pickle_quantized_weight(sink, w, s);
    }
    EXPECT_TRUE(sink.bytes == ref) << path << " (" << t.path << "): first difference at byte "
                                   << first_difference(sink.bytes, ref) << " of " << ref.size();
  }
}

// > 4 GiB payloads switch to BINBYTES8 (streamed to a counting sink: nothing is kept in memory).
TEST(SynthPickle, Binbytes8AboveFourGiB) {
  NpArray a{NpDType::I8, {1, (int64_t{1} << 32) + 3}, [](uint8_t*, uint64_t, size_t) {}};
  pickle::CountingSink sink(/*keep=*/256);
  pickle::pickle_ndarray(sink, a);
  EXPECT_EQ(sink.count, pickle::pickled_size_ndarray(a));
  std::vector<uint8_t> hdr = {0x8e};
  for (int i = 0; i < 8; ++i) hdr.push_back(static_cast<uint8_t>(a.nbytes() >> (8 * i)));
  const auto it = std::search(sink.head.begin(), sink.head.end(), hdr.begin(), hdr.end());
  ASSERT_NE(it, sink.head.end()) << "no BINBYTES8 header";
  // The dimension 2^32 + 3 needs LONG1 (5 bytes).
  const std::vector<uint8_t> long1 = {0x8a, 5, 3, 0, 0, 0, 1};
  EXPECT_NE(std::search(sink.head.begin(), sink.head.end(), long1.begin(), long1.end()), sink.head.end());
  // header immediately followed by the payload: the bytes after it are the last ones of the stream
  EXPECT_EQ(sink.count, static_cast<uint64_t>(it - sink.head.begin()) + hdr.size() + a.nbytes() + 14);  // FRAME 5: MEMOIZE TUPLE MEMOIZE BUILD STOP
}

TEST(SynthPickle, FileSinkNamesTheFileOnFailure) {
  try {
    pickle::FileSink f("/nonexistent-dir-groak/x");
    FAIL() << "expected groak::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-groak/x"), std::string::npos) << e.what();
  }
  if (fs::exists("/dev/full")) {
    pickle::FileSink f("/dev/full");
    std::vector<uint8_t> block(size_t{4} << 20, 1);
    try {
      f.write(block.data(), block.size());
      f.close();
      FAIL() << "writing to /dev/full should fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Presets and the checkpoint writer
// ---------------------------------------------------------------------------------------------

TEST(Synth, Presets) {
  EXPECT_EQ(synth_preset_names(), (std::vector<std::string>{"tiny", "tiny-12l", "demo", "small-k", "real-vocab", "grok1-2l"}));
  const Config tiny = synth_preset("tiny");
  EXPECT_EQ(tiny.ffn_size(), 344);
  const Config g = synth_preset("grok1-2l");
  EXPECT_EQ(g.emb_size, 6144);
  EXPECT_EQ(g.ffn_size(), 32768);
  EXPECT_EQ(g.num_layers, 2);
  try {
    synth_preset("huge");
    FAIL() << "expected groak::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny-12l"), std::string::npos) << e.what();
  }
  // Lexicographic layer order: file 2 + 12*2 = 26 belongs to layer 10.
  const auto plan = synth_plan(synth_preset("tiny-12l"));
  ASSERT_EQ(plan.size(), 2u + 12 * 12);
  EXPECT_EQ(plan[26].path, "transformer/decoder_layer_10/moe/linear/w");
  EXPECT_EQ(plan[2 + 12 * 4].path, "transformer/decoder_layer_2/moe/linear/w");
  EXPECT_EQ(plan[2 + 12 * 4 + 11].path, "transformer/decoder_layer_2/router/w");
}

TEST(Synth, TinyCheckpointIsDeterministicAndShapedLikeTheFixture) {
  TempDir dir;
  const Config cfg = synth_preset("tiny");
  uint64_t last_done = 0, last_total = 0;
  write_synthetic_checkpoint(cfg, "tiny", 7, dir / "a", [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
  });
  write_synthetic_checkpoint(cfg, "tiny", 7, dir / "b", {});
  write_synthetic_checkpoint(cfg, "tiny", 8, dir / "c", {});

  size_t n_files = 0;
  for (const auto& e : fs::directory_iterator(dir / "a/ckpt-0")) {
    (void)e;
    ++n_files;
  }
  EXPECT_EQ(n_files, 26u) << "26 tensor files and no leftover temporaries";
  ASSERT_TRUE(fs::exists(dir / "a/config.json"));
  const Config back = load_config_json(dir / "a/config.json");
  EXPECT_EQ(back.emb_size, cfg.emb_size);
  EXPECT_EQ(back.ffn_size(), cfg.ffn_size());

  uint64_t sum = 0;
  for (const SynthTensor& t : synth_plan(cfg)) {
    const std::string name = "/ckpt-0/" + synth_tensor_file_name(t.index);
    const auto a = read_bytes(dir / ("a" + name)), b = read_bytes(dir / ("b" + name)),
               c = read_bytes(dir / ("c" + name));
    sum += a.size();
    EXPECT_TRUE(a == b) << name << ": same seed, different bytes";
    EXPECT_FALSE(a == c) << name << ": different seed, same bytes";
    // Same shapes as tiny-a, so the same pickle sizes.
    const std::string fx = fixture_dir() + name;
    if (fs::exists(fx)) {
      EXPECT_EQ(a.size(), fs::file_size(fx)) << name;
    }
  }
  EXPECT_EQ(last_total, sum);
  EXPECT_EQ(last_done, sum);
}

// The weights follow gen_grok.py's distributions (checked on the synthesized tiny model's bytes).
TEST(Synth, WeightDistributions) {
  TempDir dir;
  const Config cfg = synth_preset("tiny");
  write_synthetic_checkpoint(cfg, "tiny", 3, dir.path(), {});
  const auto plan = synth_plan(cfg);
  auto f32_of = [&](int64_t index) {
    const auto f = read_bytes(dir / ("ckpt-0/" + synth_tensor_file_name(index)));
    uint64_t n = 4;
    for (int64_t d : plan[static_cast<size_t>(index)].shape) n *= static_cast<uint64_t>(d);
    std::vector<float> v(n / 4);
    std::memcpy(v.data(), f.data() + payload_offset(f, n, 0), n);
    return v;
  };
  auto mean_std = [](const std::vector<float>& v) {
    double s = 0, s2 = 0;
    for (float x : v) s += x, s2 += static_cast<double>(x) * x;
    const double m = s / static_cast<double>(v.size());
    return std::pair<double, double>{m, std::sqrt(s2 / static_cast<double>(v.size()) - m * m)};
  };
  // embedding N(0, s^2), s = 1.5 / (output_multiplier_scale * sqrt(d))
  const auto [em, es] = mean_std(f32_of(0));
  const double want_s = 1.5 / (cfg.output_multiplier_scale * std::sqrt(64.0));
  EXPECT_NEAR(em, 0.0, 0.01);
  EXPECT_NEAR(es / want_s, 1.0, 0.02);
  // final norm in U(0.8, 1.2); post-branch norms (rms_norm_1 = file 10) carry a gain of ~67
  for (float x : f32_of(1)) EXPECT_TRUE(x >= 0.8f && x <= 1.2f) << x;
  for (float x : f32_of(10)) EXPECT_TRUE(x > 40.f && x < 90.f) << x;
  // router N(0, (2/sqrt(d))^2)
  EXPECT_NEAR(mean_std(f32_of(13)).second / (2.0 / 8.0), 1.0, 0.15);

  // moe/linear of layer 0: int8 uniform in [-127, 127] (never -128), bf16 scales ~1/(sqrt(d)*73.6)
  const auto f = read_bytes(dir / "ckpt-0/tensor00002_000");
  const uint64_t nw = 8 * 64 * 344;
  const size_t w_at = payload_offset(f, nw, 0);
  std::map<int, int> hist;
  double s2 = 0;
  for (uint64_t i = 0; i < nw; ++i) {
    const int v = static_cast<int8_t>(f[w_at + i]);
    ++hist[v];
    s2 += v * v;
  }
  EXPECT_EQ(hist.count(-128), 0u);
  EXPECT_EQ(hist.size(), 255u);
  EXPECT_NEAR(std::sqrt(s2 / static_cast<double>(nw)) / 73.61, 1.0, 0.02);
  const size_t s_at = payload_offset(f, 8 * 344 * 2, w_at + nw);
  const double base = 1.0 / (8.0 * 73.61);
  for (size_t i = 0; i < 8 * 344; ++i) {
    uint16_t bits;
    std::memcpy(&bits, f.data() + s_at + 2 * i, 2);
    const float s = bf16_to_f32(bits);
    EXPECT_TRUE(s > base * 0.6 && s < base * 1.66) << s;
  }
}

// The synthesized checkpoints load and run in the independent numpy reference, and groak's logits match
// it: the only numeric check of the lexicographic layer order on a fresh synth (tiny-12l has layers 10, 11).
TEST(Synth, RefGrokRunsOnSynthesizedModels) {
  REQUIRE_PYTHON_NUMPY();
  const std::string ref = shared_dir() + "/tools/ref_grok.py";
  GROAK_REQUIRE_SHARED(ref);
  for (const std::string preset : {"tiny", "tiny-12l"}) {
    TempDir dir;
    const Config cfg = synth_preset(preset);
    write_synthetic_checkpoint(cfg, preset, 1, dir / "model", {});
    std::string log;
    const std::string out = dir / "logits.f32";
    ASSERT_EQ(run_command(std::string(kPython) + " " + ref + " --model " + (dir / "model") +
                              " --tokens 5,17,42 --out " + out,
                          &log),
              0)
        << preset << ": ref_grok.py failed:\n" << log;
    const auto logits = read_f32(out);
    ASSERT_EQ(logits.size(), static_cast<size_t>(3 * cfg.vocab_size)) << preset;
    bool all_equal = true;
    for (float x : logits) {
      ASSERT_TRUE(std::isfinite(x)) << preset;
      all_equal = all_equal && x == logits[0];
    }
    EXPECT_FALSE(all_equal) << preset;
    // A non-degenerate model: the three positions do not all pick the same token.
    const auto am = argmax_rows(logits, cfg.vocab_size);
    EXPECT_FALSE(am[0] == am[1] && am[1] == am[2]) << preset << ": argmax " << am[0];
    // groak on the same files, with the scalar oracle and with the fast kernels.
    for (const Kernels* k : {&reference_kernels(), &fast_kernels()}) {
      const auto got = test::logits_of(dir / "model", {5, 17, 42}, *k);
      const double err = test::max_rel_err(got, logits);
      std::printf("[%s, %s] max rel err vs ref_grok.py %.3g (bar 2e-05)\n", preset.c_str(), k->name, err);
      EXPECT_LT(err, 2e-5) << preset << ", " << k->name;
      EXPECT_EQ(argmax_rows(got, cfg.vocab_size), am) << preset << ", " << k->name;
    }
  }
}

}  // namespace groak::synth_test
