// Hugging Face ports of Grok-1 (spec §9.1) with config.json, as safetensors or as the torch.save .bin archives
// they are published in, single file or sharded: torch layout [out, in] (OutIn rows), f32/f16/bf16. Both
// ports' tensor names are accepted.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "model/binder.h"
#include "model/loader.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace groak {

namespace {

Config hf_config(const std::string& path, std::vector<std::string>& warnings) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": missing; a Hugging Face model folder needs its config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": config.json must hold a JSON object");
  auto num = [&](std::initializer_list<const char*> keys, bool required, double fallback) -> double {
    for (const char* k : keys) {
      auto it = j.find(k);
      if (it == j.end() || it->is_null()) continue;
      if (!it->is_number()) throw Error(path + ": \"" + k + "\" should be a number, found " + it->dump());
      return it->get<double>();
    }
    if (required) throw Error(path + ": missing \"" + std::string(*keys.begin()) + "\"; is this a Grok-1 config.json?");
    return fallback;
  };
  // Integer settings: whole numbers in a sane range (validate() then checks them against each other).
  auto whole = [&](std::initializer_list<const char*> keys, bool required, double fallback) -> int64_t {
    const double v = num(keys, required, fallback);
    if (v != std::floor(v) || v < 0 || v > 1e12)
      throw Error(path + ": \"" + std::string(*keys.begin()) + "\" should be a non-negative whole number, found " +
                  std::to_string(v));
    return static_cast<int64_t>(v);
  };
  Config c;
  c.vocab_size = whole({"vocab_size"}, true, 0);
  c.emb_size = whole({"hidden_size"}, true, 0);
  c.ffn_size_override = whole({"intermediate_size"}, true, 0);
  if (c.ffn_size_override == 0) throw Error(path + ": \"intermediate_size\" is 0; fix config.json");
  c.num_layers = whole({"num_hidden_layers"}, true, 0);
  c.num_q_heads = whole({"num_attention_heads"}, true, 0);
  c.num_kv_heads = whole({"num_key_value_heads"}, false, static_cast<double>(c.num_q_heads));
  c.key_size = whole({"head_dim"}, false, c.num_q_heads ? static_cast<double>(c.emb_size / c.num_q_heads) : 0);
  c.num_experts = whole({"num_local_experts", "num_experts"}, true, 0);
  c.num_selected_experts = whole({"num_experts_per_tok"}, false, 2);
  c.sequence_len = whole({"max_position_embeddings"}, false, 8192);
  c.rms_norm_eps = num({"rms_norm_eps"}, false, 1e-5);
  c.attn_output_multiplier = num({"attn_output_multiplier"}, false, c.attn_output_multiplier);
  c.embedding_multiplier_scale = num({"embedding_multiplier_scale"}, false, c.embedding_multiplier_scale);
  c.output_multiplier_scale = num({"output_multiplier_scale"}, false, c.output_multiplier_scale);
  c.pad_token = whole({"pad_token_id"}, false, 0);
  c.bos_token = whole({"bos_token_id"}, false, 1);
  c.eos_token = whole({"eos_token_id"}, false, 2);
  // Known defects of the first keyfan upload (spec §9.1): Grok-1's RoPE base is 10000, its GELU the tanh form.
  const double theta = num({"rope_theta"}, false, 10000);
  if (theta != 10000)
    warnings.push_back(path + ": rope_theta " + std::to_string(theta) +
                       " ignored: Grok-1 uses 10000 (the first keyfan upload carried a wrong value)");
  if (auto it = j.find("hidden_act"); it != j.end() && it->is_string() && *it != "gelu_new" && *it != "gelu_pytorch_tanh")
    warnings.push_back(path + ": hidden_act \"" + it->get<std::string>() +
                       "\" ignored: Grok-1 (model.py) uses the tanh GELU, which groak always computes");
  c.validate(path, "fix config.json (Hugging Face field names)");
  return c;
}

GgmlType float_type(const TensorView& t) {
  switch (t.dtype) {
    case TensorDType::F32: return GgmlType::F32;
    case TensorDType::F16: return GgmlType::F16;
    case TensorDType::BF16: return GgmlType::BF16;
    case TensorDType::Other: break;
  }
  throw Error(t.file + ": tensor " + t.name + ": dtype " + t.dtype_name + " is not supported (F32, F16, BF16)");
}

class HfBinder final : public WeightBinder {
 public:
  HfBinder(const TensorSet& st, HfPort port, Model& m) : st_(st), port_(port), m_(m) {}

  Matrix matrix(Role r, int64_t layer, int64_t n_in, int64_t n_out) override {
    return view(st_.get(hf_name(port_, r, layer)), n_in, n_out);
  }
  ExpertMatrices experts(Role r, int64_t layer, int64_t E, int64_t n_in, int64_t n_out) override {
    ExpertMatrices e;
    for (int64_t i = 0; i < E; ++i) e.list.push_back(view(st_.get(hf_name(port_, r, layer, i)), n_in, n_out));
    return e;
  }
  std::vector<float> vector(Role r, int64_t layer, int64_t n) override {
    const TensorView& t = st_.get(hf_name(port_, r, layer));
    check(t, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(float_type(t), t.data, v.data(), n);
    return v;
  }
  Matrix lm_head(const Matrix& tied) override {
    const TensorView* t = st_.find("lm_head.weight");
    return t ? view(*t, tied.n_in, tied.n_out) : tied;
  }

 private:
  void check(const TensorView& t, const std::vector<int64_t>& shape) {
    if (t.shape != shape)
      throw Error(t.file + ": tensor " + t.name + ": shape should be " + shape_str(shape) +
                  " (torch [out, in], from config.json), found " + t.shape_str() + "; the file does not match config.json");
    m_.tensors.push_back({t.name, t.dtype_name, t.shape, t.nbytes});
  }
  Matrix view(const TensorView& t, int64_t n_in, int64_t n_out) {
    check(t, {n_out, n_in});
    Matrix m;
    m.format = WeightFormat::Ggml;
    m.ggml = float_type(t);
    m.layout = Layout::OutIn;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = t.data;
    return m;
  }
  const TensorSet& st_;
  HfPort port_;
  Model& m_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The container of a Hugging Face file by its name, or of a folder by what it holds (safetensors first, as
// transformers prefers them). nullptr: neither.
const ShardedFormat* hf_format(const std::string& path) {
  std::error_code ec;
  const bool dir = fs::is_directory(path, ec);
  for (const ShardedFormat* f : {&kSafetensorsFormat, &kTorchBinFormat}) {
    const std::string index_suffix = std::string(f->extension) + ".index.json";
    if (dir ? folder_holds(path, *f) : ends_with(path, f->extension) || ends_with(path, index_suffix)) return f;
  }
  return nullptr;
}

}  // namespace

bool is_hf_model(const std::string& path) { return hf_format(path) != nullptr; }

Model load_hf(const std::string& path, const LoadProgress& progress) {
  const ShardedFormat* format = hf_format(path);
  if (!format)
    throw Error(path + ": neither safetensors nor PyTorch .bin files; a Hugging Face model is a folder with config.json "
                "and model*.safetensors or pytorch_model*.bin (+ their index JSON)");
  std::error_code ec;
  std::string dir = fs::is_directory(path, ec) ? path : fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  Model m;
  m.config = hf_config((fs::path(dir) / "config.json").string(), m.warnings);
  auto st = std::make_shared<TensorSet>(TensorSet::open(dir, *format));
  HfPort port;
  if (st->find(hf_name(HfPort::Keyfan, Role::InOutEmbed, -1)))
    port = HfPort::Keyfan;
  else if (st->find(hf_name(HfPort::HpcaiTech, Role::InOutEmbed, -1)))
    port = HfPort::HpcaiTech;
  else
    throw Error(st->source() + ": neither " + hf_name(HfPort::Keyfan, Role::InOutEmbed, -1) + " nor " +
                hf_name(HfPort::HpcaiTech, Role::InOutEmbed, -1) +
                " found; groak reads the keyfan and hpcai-tech Grok-1 ports (spec §9.1)");
  m.format = std::string("Hugging Face ") + format->name + ", " + hf_port_name(port);
  m.location = dir;
  HfBinder b(*st, port, m);
  m.weights = bind_weights(m.config, b);
  if (progress) progress(1, 1, 1, 1);
  for (const TensorFile& f : st->files()) m.files.push_back(f.path());
  m.files.push_back(st->source());
  m.files.push_back((fs::path(dir) / "config.json").string());
  m.storage = st;
  return m;
}

}  // namespace groak
