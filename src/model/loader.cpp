#include "model/loader.h"

#include <cstring>
#include <sstream>

#include "util/error.h"

namespace groak {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class XaiBinder {
 public:
  XaiBinder(const XaiCheckpoint& ck, Model& m) : ck_(ck), m_(m), origin_(ck.config_from_file
      ? ck.root + "/config.json" : std::string("the Grok-1 defaults (no config.json beside ckpt-0/)")) {}

  [[noreturn]] void mismatch(const XaiTensor& t, const std::string& what, const std::string& expected,
                             const std::string& found) const {
    throw Error(t.file + ": tensor " + t.path + ": " + what + " should be " + expected + " (from " + origin_ +
                "), found " + found + "; the file does not match the configuration — fix config.json or "
                "re-download the file");
  }

  // A float32 array of the given shape; returns a view of its payload.
  const uint8_t* f32(const std::string& path, const std::vector<int64_t>& shape) {
    const XaiTensor& t = ck_.find(path);
    if (t.t.kind != PickledTensor::Kind::Array) mismatch(t, "object", "a float32 ndarray", "a QuantizedWeight8bit");
    if (t.t.array.dtype != ArrayDType::F32) mismatch(t, "dtype", "float32", dtype_name(t.t.array.dtype));
    if (t.t.array.shape != shape) mismatch(t, "shape", shape_str(shape), t.t.array.shape_str());
    record(t);
    return t.base + t.t.array.offset;
  }

  std::vector<float> f32_vector(const std::string& path, int64_t n) {
    const uint8_t* p = f32(path, {n});
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), p, v.size() * 4);
    return v;
  }

  // A QuantizedWeight8bit with weight [lead..., in, out] and scales [lead..., blocks, out].
  Matrix qw8(const std::string& path, std::vector<int64_t> wshape, int64_t blocks, ExpertMatrices* experts) {
    const XaiTensor& t = ck_.find(path);
    if (t.t.kind != PickledTensor::Kind::QuantizedWeight8bit)
      mismatch(t, "object", "a QuantizedWeight8bit (int8 weight + bf16 scales)", "a plain ndarray");
    if (t.t.weight.shape != wshape) mismatch(t, "weight shape", shape_str(wshape), t.t.weight.shape_str());
    std::vector<int64_t> sshape = wshape;
    sshape[sshape.size() - 2] = blocks;
    if (t.t.scales.shape != sshape)
      mismatch(t, "scales shape (to fit weight " + shape_str(wshape) + ")", shape_str(sshape), t.t.scales.shape_str());
    const int64_t n_in = wshape[wshape.size() - 2], n_out = wshape.back();
    if (n_in % blocks != 0)
      mismatch(t, "input size", "a multiple of " + std::to_string(blocks) + " (row-parallel scale blocks)",
               std::to_string(n_in));
    Matrix w;
    w.format = WeightFormat::XaiInt8;
    w.layout = Layout::InOut;
    w.n_in = n_in;
    w.n_out = n_out;
    w.data = t.base + t.t.weight.offset;
    w.scales = t.base + t.t.scales.offset;
    w.scale_blocks = blocks;
    if (experts) {
      experts->first = w;
      experts->count = wshape[0];
      experts->data_stride = static_cast<size_t>(n_in * n_out);
      experts->scale_stride = static_cast<size_t>(blocks * n_out) * 2;
    }
    record(t);
    return w;
  }

  void record(const XaiTensor& t) {
    TensorRecord r;
    r.name = t.path;
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

 private:
  const XaiCheckpoint& ck_;
  Model& m_;
  std::string origin_;
};

}  // namespace

Model load_model(const std::string& path, const LoadProgress& progress) {
  auto ck = std::make_shared<XaiCheckpoint>(XaiCheckpoint::open(path, progress));
  Model m;
  m.config = ck->config;
  m.format = "xAI raw checkpoint (ckpt-0, int8 weights + bf16 scales)";
  m.location = ck->ckpt_dir;
  const Config& c = m.config;
  const int64_t d = c.emb_size, f = c.ffn_size(), E = c.num_experts;
  XaiBinder b(*ck, m);

  // Tied embedding table: [vocab, d] f32, one row per token.
  Matrix& emb = m.weights.in_out_embed;
  emb.format = WeightFormat::F32;
  emb.layout = Layout::OutIn;
  emb.n_in = d;
  emb.n_out = c.vocab_size;
  emb.data = b.f32("language_model/in_out_embed/embeddings", {c.vocab_size, d});
  m.weights.rms_norm = b.f32_vector("language_model/rms_norm/scale", d);

  m.weights.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = m.weights.layers[static_cast<size_t>(l)];
    const std::string p = "transformer/decoder_layer_" + std::to_string(l) + "/";
    // Column scales ([1, out]) for the projections that shard their output; 8 row blocks for the two
    // that shard their input (attention output, expert down projection): spec §7.1.
    L.moe_linear.first = b.qw8(p + "moe/linear/w", {E, d, f}, 1, &L.moe_linear);
    b.qw8(p + "moe/linear_1/w", {E, f, d}, 8, &L.moe_linear_1);
    b.qw8(p + "moe/linear_v/w", {E, d, f}, 1, &L.moe_linear_v);
    L.key = b.qw8(p + "multi_head_attention/key/w", {d, c.kv_size()}, 1, nullptr);
    L.linear = b.qw8(p + "multi_head_attention/linear/w", {c.q_size(), d}, 8, nullptr);
    L.query = b.qw8(p + "multi_head_attention/query/w", {d, c.q_size()}, 1, nullptr);
    L.value = b.qw8(p + "multi_head_attention/value/w", {d, c.kv_size()}, 1, nullptr);
    L.rms_norm = b.f32_vector(p + "rms_norm/scale", d);
    L.rms_norm_1 = b.f32_vector(p + "rms_norm_1/scale", d);
    L.rms_norm_2 = b.f32_vector(p + "rms_norm_2/scale", d);
    L.rms_norm_3 = b.f32_vector(p + "rms_norm_3/scale", d);
    L.router.format = WeightFormat::F32;
    L.router.layout = Layout::InOut;
    L.router.n_in = d;
    L.router.n_out = E;
    L.router.data = b.f32(p + "router/w", {d, E});
  }
  m.storage = ck;
  return m;
}

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
  uint64_t total = bytes(weights.in_out_embed) + weights.rms_norm.size() * 4;  // LM head reads the whole table
  for (const auto& L : weights.layers) {
    total += bytes(L.query) + bytes(L.key) + bytes(L.value) + bytes(L.linear) + bytes(L.router);
    total += 4 * 4 * static_cast<uint64_t>(c.emb_size);
    const uint64_t per_expert = bytes(L.moe_linear.first) + bytes(L.moe_linear_v.first) + bytes(L.moe_linear_1.first);
    total += per_expert * static_cast<uint64_t>(c.num_selected_experts);
  }
  return total;
}

uint64_t Model::kv_bytes_per_token() const {
  return static_cast<uint64_t>(config.num_layers) * 2 * static_cast<uint64_t>(config.kv_size()) * sizeof(float);
}

}  // namespace groak
