#include "model/loader.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "io/gguf.h"
#include "model/binder.h"
#include "model/check.h"
#include "model/name_map.h"
#include "model/parts.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace groak {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Every parameter of Grok-1, in model.py's terms; the binder maps each to its format's tensor.
// Shapes are logical [in, out]: d = emb_size, f = ffn_size, E = num_experts.
Weights bind_weights(const Config& c, WeightBinder& b) {
  const int64_t d = c.emb_size, f = c.ffn_size(), E = c.num_experts;
  Weights w;
  w.in_out_embed = b.matrix(Role::InOutEmbed, -1, d, c.vocab_size);  // one row per token
  w.lm_head = b.lm_head(w.in_out_embed);                              // tied unless the file has its own
  w.rms_norm = b.vector(Role::FinalNorm, -1, d);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    L.query = b.matrix(Role::Query, l, d, c.q_size());
    L.key = b.matrix(Role::Key, l, d, c.kv_size());
    L.value = b.matrix(Role::Value, l, d, c.kv_size());
    L.linear = b.matrix(Role::AttnLinear, l, c.q_size(), d);
    L.rms_norm = b.vector(Role::RmsNorm, l, d);
    L.rms_norm_1 = b.vector(Role::RmsNorm1, l, d);
    L.rms_norm_2 = b.vector(Role::RmsNorm2, l, d);
    L.rms_norm_3 = b.vector(Role::RmsNorm3, l, d);
    L.router = b.matrix(Role::Router, l, d, E);
    L.moe_linear = b.experts(Role::MoeLinear, l, E, d, f);
    L.moe_linear_v = b.experts(Role::MoeLinearV, l, E, d, f);
    L.moe_linear_1 = b.experts(Role::MoeLinear1, l, E, f, d);
  }
  return w;
}

namespace {

// xAI raw checkpoint: [in, out] arrays; int8 weights with bf16 scales per output column, or per
// output column and input block for the two row-parallel projections (spec §7.1).
class XaiBinder final : public WeightBinder {
 public:
  // names[i]: the Haiku path of file i (xai_file_order).
  XaiBinder(const XaiCheckpoint& ck, std::vector<std::string> names, std::string origin, Model& m)
      : ck_(ck), names_(std::move(names)), m_(m), origin_(std::move(origin)) {
    for (size_t i = 0; i < names_.size(); ++i) index_[names_[i]] = i;
  }

  Matrix matrix(Role r, int64_t layer, int64_t n_in, int64_t n_out) override {
    if (r == Role::InOutEmbed || r == Role::Router) {
      Matrix m;
      m.format = WeightFormat::F32;
      m.layout = r == Role::InOutEmbed ? Layout::OutIn : Layout::InOut;  // embeddings are [vocab, d]
      m.n_in = n_in;
      m.n_out = n_out;
      m.data = f32(xai_name(r, layer), r == Role::InOutEmbed ? std::vector<int64_t>{n_out, n_in}
                                                            : std::vector<int64_t>{n_in, n_out});
      return m;
    }
    return qw8(xai_name(r, layer), {n_in, n_out}, scale_blocks(r)).list[0];
  }

  ExpertMatrices experts(Role r, int64_t layer, int64_t E, int64_t n_in, int64_t n_out) override {
    return qw8(xai_name(r, layer), {E, n_in, n_out}, scale_blocks(r));
  }

  std::vector<float> vector(Role r, int64_t layer, int64_t n) override {
    const uint8_t* p = f32(xai_name(r, layer), {n});
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), p, v.size() * 4);
    return v;
  }

 private:
  // The projections that shard their input over 8 devices carry 8 row blocks of scales.
  static int64_t scale_blocks(Role r) { return r == Role::AttnLinear || r == Role::MoeLinear1 ? 8 : 1; }

  struct Found {
    const XaiTensor& t;
    const std::string& path;  // Haiku path
  };
  Found find(const std::string& path) const {
    auto it = index_.find(path);
    if (it == index_.end()) throw Error(ck_.ckpt_dir + ": no tensor " + path);
    return {ck_.tensors[it->second], names_[it->second]};
  }

  [[noreturn]] void mismatch(const Found& f, const std::string& what, const std::string& expected,
                             const std::string& found) const {
    throw Error(f.t.file + ": tensor " + f.path + ": " + what + " should be " + expected + " (from " + origin_ +
                "), found " + found + "; the file does not match the configuration — fix config.json or "
                "re-download the file");
  }

  const uint8_t* f32(const std::string& path, const std::vector<int64_t>& shape) {
    const Found f = find(path);
    const XaiTensor& t = f.t;
    if (t.t.kind != PickledTensor::Kind::Array) mismatch(f, "object", "a float32 ndarray", "a QuantizedWeight8bit");
    if (t.t.array.dtype != ArrayDType::F32) mismatch(f, "dtype", "float32", dtype_name(t.t.array.dtype));
    if (t.t.array.shape != shape) mismatch(f, "shape", shape_str(shape), t.t.array.shape_str());
    record(f);
    return t.base + t.t.array.offset;
  }

  // weight [lead..., in, out] int8 with scales [lead..., blocks, out] bf16; one matrix per leading index.
  ExpertMatrices qw8(const std::string& path, const std::vector<int64_t>& wshape, int64_t blocks) {
    const Found f = find(path);
    const XaiTensor& t = f.t;
    if (t.t.kind != PickledTensor::Kind::QuantizedWeight8bit)
      mismatch(f, "object", "a QuantizedWeight8bit (int8 weight + bf16 scales)", "a plain ndarray");
    if (t.t.weight.shape != wshape) mismatch(f, "weight shape", shape_str(wshape), t.t.weight.shape_str());
    std::vector<int64_t> sshape = wshape;
    sshape[sshape.size() - 2] = blocks;
    if (t.t.scales.shape != sshape)
      mismatch(f, "scales shape (to fit weight " + shape_str(wshape) + ")", shape_str(sshape), t.t.scales.shape_str());
    const int64_t n_in = wshape[wshape.size() - 2], n_out = wshape.back();
    if (n_in % blocks != 0)
      mismatch(f, "input size", "a multiple of " + std::to_string(blocks) + " (row-parallel scale blocks)",
               std::to_string(n_in));
    const int64_t count = wshape.size() == 3 ? wshape[0] : 1;
    ExpertMatrices e;
    for (int64_t i = 0; i < count; ++i) {
      Matrix w;
      w.format = WeightFormat::XaiInt8;
      w.layout = Layout::InOut;
      w.n_in = n_in;
      w.n_out = n_out;
      w.data = t.base + t.t.weight.offset + static_cast<size_t>(i * n_in * n_out);
      w.scales = t.base + t.t.scales.offset + static_cast<size_t>(i * blocks * n_out) * 2;
      w.scale_blocks = blocks;
      e.list.push_back(w);
    }
    record(f);
    return e;
  }

  void record(const Found& f) {
    const XaiTensor& t = f.t;
    TensorRecord r;
    r.name = f.path;
    if (t.t.kind == PickledTensor::Kind::Array) {
      r.dtype = dtype_name(t.t.array.dtype);
      r.shape = t.t.array.shape;
      r.bytes = t.t.array.nbytes;
    } else {
      r.dtype = "int8, bf16 scales " + t.t.scales.shape_str();
      r.shape = t.t.weight.shape;
      r.bytes = t.t.weight.nbytes + t.t.scales.nbytes;
    }
    m_.tensors.push_back(std::move(r));
  }

  const XaiCheckpoint& ck_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> index_;  // Haiku path → file index
  Model& m_;
  std::string origin_;
};

// Which parameter each file holds, and how many files there are, follows from the config: 2 + 12 per
// layer, in xai_file_order. Checked against the folder before anything is mapped.
Model load_xai(const std::string& path, const LoadProgress& progress) {
  auto ck = std::make_shared<XaiCheckpoint>(XaiCheckpoint::locate(path));
  Model m;
  std::error_code ec;
  const fs::path cfg_path = fs::path(ck->root) / "config.json";
  const bool from_file = fs::exists(cfg_path, ec);
  if (from_file) m.config = load_config_json(cfg_path.string());  // else Grok-1's defaults, checked below
  const std::string origin =
      from_file ? cfg_path.string() : std::string("the Grok-1 defaults (no config.json beside ckpt-0/)");

  // The expected count, computed before any list of names: a config.json claiming millions of layers
  // must not make us allocate for them.
  const size_t n_layers = static_cast<size_t>(m.config.num_layers);
  const size_t expected = 2 + layer_roles().size() * n_layers;
  const auto role_of = [&](size_t i) {
    if (expected > (1u << 20)) return i < 2 ? xai_name(i == 0 ? Role::InOutEmbed : Role::FinalNorm, -1)
                                            : std::string("a tensor of the layers");
    const RoleAt at = xai_file_order(m.config.num_layers)[i];
    return xai_name(at.role, at.layer);
  };
  if (!ck->present.empty() && ck->present.rbegin()->first >= expected)
    throw Error(ck->present.rbegin()->second + ": extra file — " + origin + " gives " +
                std::to_string(m.config.num_layers) + " layers, i.e. " + std::to_string(expected) +
                " files (tensor00000_000 … " + xai_tensor_file_name(expected - 1) +
                "); fix num_layers in config.json or remove the file");
  if (ck->present.size() < expected) {  // name the first missing file (its index is at most present.size())
    size_t i = 0;
    while (ck->present.count(i)) ++i;
    throw Error(ck->file_path(i) + ": missing (it should hold " + role_of(i) + "; " + origin + " needs " +
                std::to_string(expected) + " files); re-download the checkpoint or fix num_layers in config.json");
  }
  ck->map(expected, progress);

  std::vector<std::string> names;
  for (const RoleAt& at : xai_file_order(m.config.num_layers)) names.push_back(xai_name(at.role, at.layer));
  m.format = "xAI raw checkpoint (ckpt-0, int8 weights + bf16 scales)";
  m.location = ck->ckpt_dir;
  XaiBinder b(*ck, names, origin, m);
  m.weights = bind_weights(m.config, b);
  // `groak info` lists tensors in file order.
  std::vector<TensorRecord> ordered;
  for (const auto& name : names)
    for (const auto& r : m.tensors)
      if (r.name == name) ordered.push_back(r);
  m.tensors = std::move(ordered);
  for (const MappedFile& f : ck->maps) m.files.push_back(f.path());
  fs::path ckpt = fs::path(ck->ckpt_dir).lexically_normal();
  if (!ckpt.has_filename()) ckpt = ckpt.parent_path();  // "…/ckpt-0/"
  m.files.push_back((ckpt.parent_path() / "config.json").string());
  m.storage = ck;
  return m;
}

}  // namespace


namespace {
Model load_any(const std::string& path, const LoadProgress& progress);
}  // namespace

// Every loader's result gets the cheap NaN/Inf scan (norms, routers) as warnings naming the tensor.
Model load_model(const std::string& path, const LoadProgress& progress) {
  Model m = load_any(path, progress);
  cut_into_parts(m);
  for (const std::string& bad : nonfinite_weights(m, /*all=*/false))
    m.warnings.push_back(m.location + ": " + bad + " (the model will produce NaN; the file is damaged)");
  return m;
}

namespace {
Model load_any(const std::string& path, const LoadProgress& progress) {
  std::error_code ec;
  const char* accepted = "pass --model an xAI checkpoint (the folder holding ckpt-0/, or ckpt-0/ itself), a .gguf "
                         "file (any part of a split set) or a Hugging Face folder (config.json + *.safetensors or "
                         "pytorch_model*.bin)";
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or folder; " + accepted);
  if (fs::is_regular_file(path, ec)) {
    if (is_gguf_file(path)) return load_gguf(path, progress);
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0)
      throw Error(path + ": not a GGUF file (no GGUF magic at the start); the file is damaged or not GGUF");
    if (is_hf_model(path)) return load_hf(path, progress);
    throw Error(path + ": not a model file groak knows; " + accepted);
  }
  if (XaiCheckpoint::detect(path)) return load_xai(path, progress);
  if (is_hf_model(path)) return load_hf(path, progress);
  throw Error(path + ": no ckpt-0/ folder, no tensor00000_000 file and no model.safetensors or pytorch_model.bin "
              "here; " + accepted);
}
}  // namespace

uint64_t Model::parameter_count() const {
  uint64_t n = 0;
  for (const auto& t : tensors) {
    uint64_t k = 1;
    for (int64_t s : t.shape) k *= static_cast<uint64_t>(s);
    n += k;
  }
  return n;
}

uint64_t Model::weight_bytes_per_token() const {
  const Config& c = config;
  auto bytes = [](const Matrix& m) { return static_cast<uint64_t>(m.data_bytes() + m.scale_bytes()); };
  uint64_t total = bytes(weights.lm_head) + weights.rms_norm.size() * 4;  // the LM head reads the whole table
  for (const auto& L : weights.layers) {
    total += bytes(L.query) + bytes(L.key) + bytes(L.value) + bytes(L.linear) + bytes(L.router);
    total += 4 * 4 * static_cast<uint64_t>(c.emb_size);
    const uint64_t per_expert =
        bytes(L.moe_linear.expert(0)) + bytes(L.moe_linear_v.expert(0)) + bytes(L.moe_linear_1.expert(0));
    total += per_expert * static_cast<uint64_t>(c.num_selected_experts);
  }
  return total;
}

uint64_t Model::kv_bytes_per_token() const {
  return static_cast<uint64_t>(config.num_layers) * 2 * static_cast<uint64_t>(config.kv_size()) * sizeof(float);
}

}  // namespace groak
