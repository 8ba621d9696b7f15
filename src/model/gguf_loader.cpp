// GGUF files made for llama.cpp (architecture "grok", spec §9.2): the configuration comes from the
// grok.* metadata, tensors are OutIn rows (ne[0] = input dimension) in any ggml type groak supports.
#include <memory>

#include "io/gguf.h"
#include "model/binder.h"
#include "model/loader.h"
#include "model/shard.h"
#include "util/error.h"

namespace groak {

namespace {

std::string ne_str(const std::vector<int64_t>& ne) { return shape_str(ne); }

Config gguf_config(const GgufFile& g) {
  const std::string arch = g.architecture();
  if (arch != "grok")
    throw Error(g.path() + ": architecture '" + arch + "' — groak runs Grok-1 (general.architecture \"grok\"); "
                "this file holds another model");
  Config c;
  auto u32 = [&](const char* key) { return static_cast<int64_t>(g.get_u32(std::string("grok.") + key)); };
  auto opt_u32 = [&](const char* key, int64_t fallback) {
    return static_cast<int64_t>(g.get_u32(std::string("grok.") + key, static_cast<uint32_t>(fallback)));
  };
  c.emb_size = u32("embedding_length");
  c.num_layers = u32("block_count");
  c.ffn_size_override = u32("feed_forward_length");
  if (c.ffn_size_override <= 0) throw Error(g.path() + ": grok.feed_forward_length is 0; the file is damaged");
  c.num_q_heads = u32("attention.head_count");
  c.num_kv_heads = opt_u32("attention.head_count_kv", c.num_q_heads);
  if (c.num_q_heads <= 0) throw Error(g.path() + ": grok.attention.head_count is 0; the file is damaged");
  c.key_size = g.has("grok.attention.key_length")      ? u32("attention.key_length")
               : g.has("grok.rope.dimension_count")     ? u32("rope.dimension_count")
                                                        : c.emb_size / c.num_q_heads;
  c.num_experts = u32("expert_count");
  c.num_selected_experts = u32("expert_used_count");
  c.sequence_len = opt_u32("context_length", c.sequence_len);
  c.rms_norm_eps = g.get_f32("grok.attention.layer_norm_rms_epsilon");
  c.rope_base = g.get_f32("grok.rope.freq_base", 10000.f);
  // llama.cpp hard-codes Grok-1's three multipliers; groak's converter also records them.
  c.embedding_multiplier_scale = g.get_f32("grok.embedding_multiplier_scale", static_cast<float>(c.embedding_multiplier_scale));
  c.output_multiplier_scale = g.get_f32("grok.output_multiplier_scale", static_cast<float>(c.output_multiplier_scale));
  c.attn_output_multiplier = g.get_f32("grok.attn_output_multiplier", static_cast<float>(c.attn_output_multiplier));
  // Special ids: older converters omitted them; Grok-1's are pad 0, bos 1, eos 2.
  c.eos_token = g.get_u32("tokenizer.ggml.eos_token_id", 2);
  c.bos_token = g.get_u32("tokenizer.ggml.bos_token_id", 1);
  c.pad_token = g.get_u32("tokenizer.ggml.padding_token_id", 0);
  const GgufTensor& emb = g.tensor("token_embd.weight");
  if (emb.ne.size() != 2 || emb.ne[0] != c.emb_size)
    throw Error(g.path() + ": tensor token_embd.weight: shape should be [" + std::to_string(c.emb_size) +
                ", vocab], found " + emb.shape_str());
  c.vocab_size = emb.ne[1];
  if (g.has(kShardCountKey)) {  // a share (groak shard): its rows of the vocabulary, the whole vocabulary's size here
    const int64_t R = g.get_u32(kShardCountKey);
    c.vocab_size = g.get_u32(kShardVocabKey);
    if (R < 1 || emb.ne[1] * R != c.vocab_size)
      throw Error(g.path() + ": a share file whose " + std::string(kShardVocabKey) + " (" + std::to_string(c.vocab_size) +
                  ") is not its " + std::to_string(emb.ne[1]) + " embedding rows times " + std::to_string(R) +
                  " shares; the file is damaged: run groak shard again");
  }
  c.validate(g.path(), "the GGUF metadata (grok.*) is damaged or not Grok-1's; re-convert the model");
  return c;
}

class GgufBinder final : public WeightBinder {
 public:
  GgufBinder(const GgufFile& g, Model& m) : g_(g), m_(m) {}

  Matrix matrix(Role r, int64_t layer, int64_t n_in, int64_t n_out) override {
    if (r == Role::InOutEmbed) n_out /= m_.shard_count;  // a share holds its rows of the vocabulary
    return view(g_.tensor(gguf_name(r, layer)), {n_in, n_out}, 0);
  }

  ExpertMatrices experts(Role r, int64_t layer, int64_t E, int64_t n_in, int64_t n_out) override {
    ExpertMatrices e;
    if (const GgufTensor* t = g_.find_tensor(gguf_name(r, layer))) {  // merged: ne = [in, out, E]
      for (int64_t i = 0; i < E; ++i) e.list.push_back(view(*t, {n_in, n_out, E}, i));
    } else {  // early files: one tensor per expert
      if (!g_.find_tensor(gguf_expert_name(r, layer, 0)))
        throw Error(g_.path() + ": missing tensor " + gguf_name(r, layer) + " (nor the per-expert form " +
                    gguf_expert_name(r, layer, 0) + "); the file is incomplete or not a Grok-1 GGUF");
      for (int64_t i = 0; i < E; ++i) e.list.push_back(view(g_.tensor(gguf_expert_name(r, layer, i)), {n_in, n_out}, 0));
    }
    return e;
  }

  std::vector<float> vector(Role r, int64_t layer, int64_t n) override {
    const GgufTensor& t = g_.tensor(gguf_name(r, layer));
    check_shape(t, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, v.data(), n);
    return v;
  }

  Matrix lm_head(const Matrix& tied) override {
    const GgufTensor* t = g_.find_tensor("output.weight");
    if (!t) return tied;  // no output.weight: tied embeddings (Grok-1)
    return view(*t, {tied.n_in, tied.n_out}, 0);
  }

 private:
  void check_shape(const GgufTensor& t, const std::vector<int64_t>& ne) {
    if (t.ne != ne)
      throw Error(g_.path() + ": tensor " + t.name + ": shape (ne) should be " + ne_str(ne) +
                  " from the grok.* metadata, found " + t.shape_str() + "; the file is inconsistent");
    for (const auto& r : m_.tensors)
      if (r.name == t.name) return;
    m_.tensors.push_back({t.name, type_name(t.type), t.ne, t.nbytes});
  }

  // Matrix `index` of a tensor with ne = [n_in, n_out, …]: rows of n_in inputs, one per output.
  Matrix view(const GgufTensor& t, const std::vector<int64_t>& ne, int64_t index) {
    check_shape(t, ne);
    Matrix m;
    m.format = WeightFormat::Ggml;
    m.ggml = t.type;
    m.layout = Layout::OutIn;
    m.n_in = ne[0];
    m.n_out = ne[1];
    m.data = t.data + static_cast<size_t>(index) * m.data_bytes();
    return m;
  }

  const GgufFile& g_;
  Model& m_;
};

}  // namespace

Model load_gguf(const std::string& path, const LoadProgress& progress) {
  auto g = std::make_shared<GgufFile>(GgufFile::open(path));
  Model m;
  m.config = gguf_config(*g);
  if (g->has(kShardCountKey)) {  // written by groak shard: the config holds this share's sizes already
    m.shard_count = static_cast<int>(g->get_u32(kShardCountKey));
    m.shard_rank = static_cast<int>(g->get_u32(kShardRankKey));
    m.source_fingerprint = g->get_string(kShardSourceKey);
    if (m.shard_rank < 0 || m.shard_rank >= m.shard_count || m.source_fingerprint.empty())
      throw Error(path + ": damaged share metadata (rank " + std::to_string(m.shard_rank) + " of " +
                  std::to_string(m.shard_count) + "); run groak shard again");
    m.weights.vocab_begin = m.config.vocab_size / m.shard_count * m.shard_rank;
  }
  m.format = "GGUF v" + std::to_string(g->version()) + " (llama.cpp, architecture grok" +
             (g->part_paths().size() > 1 ? ", " + std::to_string(g->part_paths().size()) + " parts" : "") + ")";
  m.location = path;
  GgufBinder b(*g, m);
  const int64_t vocab_begin = m.weights.vocab_begin;
  m.weights = bind_weights(m.config, b);
  m.weights.vocab_begin = vocab_begin;
  if (progress) progress(1, 1, 1, 1);
  m.files = g->part_paths();
  m.storage = g;
  return m;
}

}  // namespace groak
