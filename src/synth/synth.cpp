#include "synth/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <thread>

#include "io/xai_checkpoint.h"
#include "kernels/tensor.h"
#include "model/name_map.h"
#include "synth/pickle_writer.h"
#include "util/error.h"

namespace groak {

namespace fs = std::filesystem;
using pickle::NpArray;
using pickle::NpDType;

namespace {

// ---------------------------------------------------------------------------------------------
// Presets (8 experts top-2 and Grok-1's multipliers come from Config's defaults).
// ---------------------------------------------------------------------------------------------
struct Preset {
  const char* name;
  int64_t vocab, d, key_size, q_heads, kv_heads, layers;
  double widening;
};
constexpr Preset kPresets[] = {
    // same shapes as shared/fixtures/tiny-a
    {"tiny", 512, 64, 16, 4, 2, 2, 8},
    // >= 11 layers: the lexicographic file order 0,1,10,11,2,... differs from the numeric one
    {"tiny-12l", 512, 64, 16, 4, 2, 12, 2},
    // the out-of-the-box demo: ~35 MB, synthesised in about a second
    {"demo", 2048, 256, 32, 8, 2, 4, 8},
    // every row a whole number of 256-element k-quant blocks (d 256, ffn 768): convert round trips
    {"small-k", 1024, 256, 32, 8, 2, 2, 4.5},
    // the real Grok-1 vocabulary (131072) on a narrow model, for tokenizer round trips through GGUF
    {"real-vocab", 131072, 128, 16, 8, 2, 2, 8},
    // Grok-1's full widths with 2 of its 64 layers (~13 GB)
    {"grok1-2l", 131072, 6144, 128, 48, 8, 2, 8},
};

// ---------------------------------------------------------------------------------------------
// Counter-based random numbers: value i of a stream is a pure function of (key, i), so the bytes
// do not depend on chunk sizes or thread counts.
// ---------------------------------------------------------------------------------------------
constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;  // SplitMix64 increment

// SplitMix64's output function (a bijective 64-bit mixer).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Output i of the SplitMix64 generator that starts at state `key`.
inline uint64_t draw(uint64_t key, uint64_t i) { return mix64(key + (i + 1) * kGamma); }

// Independent streams of one file.
enum class Stream : uint64_t { Values = 1, ScaleJitter = 2, Int8Redraw = 3 };

uint64_t stream_key(uint64_t seed, int64_t file_index, Stream s) {
  uint64_t k = mix64(seed + kGamma);
  k = mix64(k + (static_cast<uint64_t>(file_index) + 1) * kGamma);
  return mix64(k + static_cast<uint64_t>(s) * kGamma);
}

constexpr double kTwoPow53 = 9007199254740992.0;
constexpr double kTwoPow32 = 4294967296.0;
inline double uniform01(uint64_t h) { return static_cast<double>(h >> 11) / kTwoPow53; }  // [0, 1)

// Two standard normals from one 64-bit draw (Box-Muller on two 32-bit uniforms).
inline void normal_pair(uint64_t h, double& z0, double& z1) {
  const double u1 = (static_cast<double>(h >> 32) + 0.5) / kTwoPow32;  // (0, 1): log is finite
  const double u2 = static_cast<double>(h & 0xffffffffu) / kTwoPow32;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * std::numbers::pi * u2;
  z0 = r * std::cos(a);
  z1 = r * std::sin(a);
}

inline void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, 4); }  // payloads may be unaligned

// 8 int8 weights uniform in [-127, 127]: 8 bytes per draw; a byte 0x80 (-128) is redrawn from a
// per-byte side stream (rare: 1/256), which keeps the result a function of the position only.
inline uint64_t int8_word(uint64_t key, uint64_t redraw_key, uint64_t j) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  uint64_t w = draw(key, j);
  const uint64_t x = w ^ kHigh;  // zero byte where w has 0x80
  if (((x - kOnes) & ~x & kHigh) == 0) return w;
  for (int k = 0; k < 8; ++k) {
    if (((w >> (8 * k)) & 0xff) != 0x80) continue;
    const uint64_t base = draw(redraw_key, j * 8 + static_cast<uint64_t>(k));
    uint64_t b = 0x80;
    for (uint64_t a = 0; b == 0x80; ++a) b = mix64(base + a * kGamma) & 0xff;
    w = (w & ~(0xffull << (8 * k))) | (b << (8 * k));
  }
  return w;
}

void fill_int8(uint64_t key, uint64_t redraw_key, uint8_t* buf, uint64_t off, size_t n) {
  uint64_t j = off / 8;
  size_t pos = 0;
  if (off % 8 != 0) {
    const uint64_t w = int8_word(key, redraw_key, j++);
    const size_t k0 = off % 8, m = std::min<size_t>(8 - k0, n);
    std::memcpy(buf, reinterpret_cast<const uint8_t*>(&w) + k0, m);
    pos = m;
  }
  for (; pos + 8 <= n; pos += 8, ++j) {
    const uint64_t w = int8_word(key, redraw_key, j);
    std::memcpy(buf + pos, &w, 8);
  }
  if (pos < n) {
    const uint64_t w = int8_word(key, redraw_key, j);
    std::memcpy(buf + pos, &w, n - pos);
  }
}

// float32 N(0, sigma^2); element 2p and 2p+1 share draw p.
void fill_normal_f32(uint64_t key, double sigma, uint8_t* buf, uint64_t off, size_t n) {
  const uint64_t i0 = off / 4, i1 = i0 + n / 4;
  for (uint64_t i = i0; i < i1;) {
    double z0, z1;
    normal_pair(draw(key, i / 2), z0, z1);
    if (i % 2 == 0) {
      store_f32(buf + 4 * (i - i0), static_cast<float>(z0 * sigma));
      if (++i < i1) store_f32(buf + 4 * (i - i0), static_cast<float>(z1 * sigma));
      ++i;
    } else {
      store_f32(buf + 4 * (i - i0), static_cast<float>(z1 * sigma));
      ++i;
    }
  }
}

// float32 gain * U(lo, hi).
void fill_uniform_f32(uint64_t key, double lo, double hi, double gain, uint8_t* buf, uint64_t off, size_t n) {
  const uint64_t i0 = off / 4;
  for (size_t k = 0; k < n / 4; ++k)
    store_f32(buf + 4 * k, static_cast<float>(gain * (lo + (hi - lo) * uniform01(draw(key, i0 + k)))));
}

// Splits a large fill over threads in 8-byte-aligned pieces (every element size divides 8).
void parallel_fill(const pickle::PayloadFill& fill, uint8_t* buf, uint64_t off, size_t n) {
  constexpr size_t kMinParallel = size_t{1} << 20;
  constexpr unsigned kMaxThreads = 8;
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, kMaxThreads);
  if (threads == 1 || n < kMinParallel || off % 8 != 0) {
    fill(buf, off, n);
    return;
  }
  const size_t piece = (n / threads + 7) / 8 * 8;
  std::vector<std::thread> pool;
  for (size_t a = piece; a < n; a += piece)
    pool.emplace_back([&, a] { fill(buf + a, off + a, std::min(piece, n - a)); });
  fill(buf, off, std::min(piece, n));
  for (auto& t : pool) t.join();
}

pickle::PayloadFill parallel(pickle::PayloadFill f) {
  return [f = std::move(f)](uint8_t* buf, uint64_t off, size_t n) { parallel_fill(f, buf, off, n); };
}

// ---------------------------------------------------------------------------------------------
// The tensor plan (gen_grok.py build_plan) and how each tensor is initialised.
// ---------------------------------------------------------------------------------------------
enum class Init { Embedding, Norm, PostNorm, Router, Weight };
enum class Gain { Unit, Key, QueryHeads };

struct PlanEntry {
  SynthTensor t;
  Init init = Init::Weight;
  Gain gain = Gain::Unit;
};

std::vector<PlanEntry> build_plan(const Config& c) {
  c.validate("synthetic checkpoint config");
  const int64_t V = c.vocab_size, d = c.emb_size, E = c.num_experts, ff = c.ffn_size();
  const int64_t q = c.q_size(), kv = c.kv_size();
  constexpr int64_t kRowBlocks = 8;  // row-parallel weights: input split in 8 blocks (GROK1.md §7.1)
  if (ff % kRowBlocks != 0 || q % kRowBlocks != 0)
    throw Error("synthetic checkpoint: ffn_size (" + std::to_string(ff) + ") and num_q_heads*key_size (" +
                std::to_string(q) + ") must be multiples of 8 for the row-parallel scales");
  std::vector<PlanEntry> plan;
  auto add = [&](std::string path, std::vector<int64_t> shape, std::vector<int64_t> scales, Init init,
                 Gain gain = Gain::Unit) {
    PlanEntry e;
    e.t.index = static_cast<int64_t>(plan.size());
    e.t.path = std::move(path);
    e.t.shape = std::move(shape);
    e.t.scales_shape = std::move(scales);
    e.init = init;
    e.gain = gain;
    plan.push_back(std::move(e));
  };
  // Shapes are xAI's: [in, out] weights (experts leading), scales per output column or row block.
  for (const RoleAt& at : xai_file_order(c.num_layers)) {
    std::string path = xai_name(at.role, at.layer);
    switch (at.role) {
      case Role::InOutEmbed: add(path, {V, d}, {}, Init::Embedding); break;  // [vocab, d] f32
      case Role::FinalNorm: add(path, {d}, {}, Init::Norm); break;           // [d] f32
      case Role::MoeLinear: add(path, {E, d, ff}, {E, 1, ff}, Init::Weight); break;  // gate (gelu branch)
      case Role::MoeLinear1: add(path, {E, ff, d}, {E, kRowBlocks, d}, Init::Weight); break;  // down, row-parallel
      case Role::MoeLinearV: add(path, {E, d, ff}, {E, 1, ff}, Init::Weight); break;  // up
      case Role::Key: add(path, {d, kv}, {1, kv}, Init::Weight, Gain::Key); break;
      case Role::AttnLinear: add(path, {q, d}, {kRowBlocks, d}, Init::Weight); break;  // out, row-parallel
      case Role::Query: add(path, {d, q}, {1, q}, Init::Weight, Gain::QueryHeads); break;
      case Role::Value: add(path, {d, kv}, {1, kv}, Init::Weight); break;
      case Role::RmsNorm: add(path, {d}, {}, Init::Norm); break;        // pre-attention
      case Role::RmsNorm1: add(path, {d}, {}, Init::PostNorm); break;   // post-attention
      case Role::RmsNorm2: add(path, {d}, {}, Init::Norm); break;       // pre-MoE
      case Role::RmsNorm3: add(path, {d}, {}, Init::PostNorm); break;   // post-MoE
      case Role::Router: add(path, {d, E}, {}, Init::Router); break;    // [d, E] f32
    }
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Distributions (gen_grok.py gen_tensor)
// ---------------------------------------------------------------------------------------------
const double kInt8Std = std::sqrt((255.0 * 255.0 - 1.0) / 12.0);  // std of uniform ints in [-127, 127]
constexpr double kLogitStd = 1.5;     // target std of the output logits (tied embeddings)
constexpr double kSelfExcess = 1.5;   // target advantage of the input token's own logit, in stds
constexpr double kNormLo = 0.8, kNormHi = 1.2;
constexpr double kRouterStd = 2.0;    // times 1/sqrt(d): routing-logit std ~2
constexpr double kMaxQueryGainLog2 = 3.0;  // query head gains 1 .. 8 exercise the 30*tanh cap
constexpr double kKeyGain = 1.5;

double embed_std(const Config& c) {
  return kLogitStd / (c.output_multiplier_scale * std::sqrt(static_cast<double>(c.emb_size)));
}

// Gain of rms_norm_1 / rms_norm_3 so that the 2*num_layers branch outputs, not the scaled input
// embedding, dominate the residual stream (otherwise a few-layer model just echoes its input).
double post_norm_gain(const Config& c) {
  const double d = static_cast<double>(c.emb_size);
  const double h0 = c.embedding_multiplier_scale * embed_std(c);
  const double total = h0 * std::sqrt(std::max(d / (kSelfExcess * kSelfExcess) - 1.0, 1.0));
  return total / std::sqrt(2.0 * static_cast<double>(c.num_layers));
}

// bf16 scale of output column o: gain / (sqrt(fan_in) * 73.6) * exp(U(-0.5, 0.5)).
void fill_scales_bf16(const Config& c, const PlanEntry& e, uint64_t key, uint8_t* buf, uint64_t off, size_t n) {
  const int64_t n_out = e.t.shape.back();
  const double fan_in = static_cast<double>(e.t.shape[e.t.shape.size() - 2]);
  const double base = 1.0 / (std::sqrt(fan_in) * kInt8Std);
  const double heads_m1 = static_cast<double>(std::max<int64_t>(1, c.num_q_heads - 1));
  const uint64_t i0 = off / 2;
  for (size_t k = 0; k < n / 2; ++k) {
    const uint64_t i = i0 + k;
    const int64_t o = static_cast<int64_t>(i % static_cast<uint64_t>(n_out));
    double gain = 1.0;
    if (e.gain == Gain::Key) gain = kKeyGain;
    if (e.gain == Gain::QueryHeads)
      gain = std::exp2(kMaxQueryGainLog2 * static_cast<double>(o / c.key_size) / heads_m1);
    const double jitter = std::exp(uniform01(draw(key, i)) - 0.5);
    const uint16_t bits = f32_to_bf16(static_cast<float>(gain * base * jitter));  // RNE
    std::memcpy(buf + 2 * k, &bits, 2);
  }
}

// The arrays of one file: {f32 array} or {int8 weight, bf16 scales}.
std::vector<NpArray> arrays_for(const Config& c, const PlanEntry& e, uint64_t seed) {
  const uint64_t key = stream_key(seed, e.t.index, Stream::Values);
  const double d = static_cast<double>(c.emb_size);
  NpArray a;
  a.shape = e.t.shape;
  switch (e.init) {
    case Init::Embedding: {
      a.dtype = NpDType::F32;
      const double sigma = embed_std(c);
      a.fill = parallel([key, sigma](uint8_t* b, uint64_t o, size_t n) { fill_normal_f32(key, sigma, b, o, n); });
      return {a};
    }
    case Init::Router: {
      a.dtype = NpDType::F32;
      const double sigma = kRouterStd / std::sqrt(d);
      a.fill = [key, sigma](uint8_t* b, uint64_t o, size_t n) { fill_normal_f32(key, sigma, b, o, n); };
      return {a};
    }
    case Init::Norm:
    case Init::PostNorm: {
      a.dtype = NpDType::F32;
      const double g = e.init == Init::PostNorm ? post_norm_gain(c) : 1.0;
      a.fill = [key, g](uint8_t* b, uint64_t o, size_t n) { fill_uniform_f32(key, kNormLo, kNormHi, g, b, o, n); };
      return {a};
    }
    case Init::Weight: {
      a.dtype = NpDType::I8;
      const uint64_t redraw = stream_key(seed, e.t.index, Stream::Int8Redraw);
      a.fill = parallel([key, redraw](uint8_t* b, uint64_t o, size_t n) { fill_int8(key, redraw, b, o, n); });
      NpArray s;
      s.dtype = NpDType::BF16;
      s.shape = e.t.scales_shape;
      const uint64_t skey = stream_key(seed, e.t.index, Stream::ScaleJitter);
      s.fill = [&c, e, skey](uint8_t* b, uint64_t o, size_t n) { fill_scales_bf16(c, e, skey, b, o, n); };
      return {a, s};
    }
  }
  return {};
}

uint64_t pickled_size(const std::vector<NpArray>& arrays) {
  return arrays.size() == 1 ? pickle::pickled_size_ndarray(arrays[0])
                            : pickle::pickled_size_quantized_weight(arrays[0], arrays[1]);
}

}  // namespace

std::vector<std::string> synth_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

Config synth_preset(const std::string& name) {
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    Config c;  // Grok-1 defaults: 8 experts, top-2, multipliers, tokens, sequence_len
    c.vocab_size = p.vocab;
    c.emb_size = p.d;
    c.key_size = p.key_size;
    c.num_q_heads = p.q_heads;
    c.num_kv_heads = p.kv_heads;
    c.num_layers = p.layers;
    c.widening_factor = p.widening;
    return c;
  }
  std::string valid;
  for (const std::string& n : synth_preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Error("unknown synth preset \"" + name + "\"; valid presets: " + valid);
}

std::vector<SynthTensor> synth_plan(const Config& cfg) {
  std::vector<SynthTensor> out;
  for (PlanEntry& e : build_plan(cfg)) out.push_back(std::move(e.t));
  return out;
}

std::string synth_tensor_file_name(int64_t index) { return xai_tensor_file_name(static_cast<size_t>(index)); }

void write_synthetic_checkpoint(const Config& cfg, const std::string& preset_name, uint64_t seed,
                                const std::string& out_dir, const SynthProgress& progress) {
  const std::vector<PlanEntry> plan = build_plan(cfg);
  const fs::path ckpt = fs::path(out_dir) / "ckpt-0";
  std::error_code ec;
  fs::create_directories(ckpt, ec);
  if (ec) throw Error(ckpt.string() + ": cannot create directory: " + ec.message());

  uint64_t total = 0;
  for (const PlanEntry& e : plan) total += pickled_size(arrays_for(cfg, e, seed));
  uint64_t done = 0;
  std::vector<fs::path> written;  // removed again if the job ends early (an error, Ctrl-C)
  try {
    if (progress) progress(0, total);
    for (const PlanEntry& e : plan) {
      const std::vector<NpArray> arrays = arrays_for(cfg, e, seed);
      written.push_back(ckpt / synth_tensor_file_name(e.t.index));
      pickle::write_atomically(written.back().string(), [&](pickle::FileSink& f) {
        pickle::ProgressSink sink(f, done, total, progress);
        if (arrays.size() == 1)
          pickle::pickle_ndarray(sink, arrays[0]);
        else
          pickle::pickle_quantized_weight(sink, arrays[0], arrays[1]);
      });
      if (progress) progress(done, total);
    }
    const std::string json = config_to_json(cfg, preset_name, seed);
    written.push_back(fs::path(out_dir) / "config.json");
    pickle::write_atomically(written.back().string(), [&](pickle::FileSink& f) {
      f.write(reinterpret_cast<const uint8_t*>(json.data()), json.size());
    });
  } catch (...) {
    for (const fs::path& p : written) fs::remove(p, ec);
    throw;
  }
}

void prepare_synth_folder(const std::string& out_dir, bool force) {
  std::error_code ec;
  if (!fs::exists(out_dir, ec)) return;
  if (!fs::is_directory(out_dir, ec))
    throw Error(out_dir + " exists and is not a folder; pass --out a new or empty folder");
  if (fs::is_empty(out_dir, ec)) return;
  if (!force)
    throw Error(out_dir + " is not empty; pass --out a new or empty folder, or add --force to replace the checkpoint "
                "in it (ckpt-0/ and config.json are removed first; other files stay)");
  for (const char* name : {"ckpt-0", "config.json"}) {
    fs::remove_all(fs::path(out_dir) / name, ec);
    if (ec) throw Error((fs::path(out_dir) / name).string() + ": cannot remove (" + ec.message() + ")");
  }
}

}  // namespace groak
