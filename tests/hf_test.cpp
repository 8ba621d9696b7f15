// Hugging Face ports: a tiny model written here as safetensors under both ports' tensor names (torch
// layout [out, in], f32 or bf16, single file or sharded) must give the raw checkpoint's logits.
#include <map>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "model/loader.h"
#include "model/name_map.h"
#include "runtime/session.h"
#include "synth/synth.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

struct HfTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// torch layout of a weight: row o = output unit o over all inputs.
HfTensor torch_rows(const Matrix& m) {
  HfTensor t{{m.n_out, m.n_in}, std::vector<float>(static_cast<size_t>(m.n_in * m.n_out))};
  for (int64_t o = 0; o < m.n_out; ++o) reference_kernels().get_row(m, o, t.values.data() + o * m.n_in);
  return t;
}

std::map<std::string, HfTensor> hf_tensors(const Model& m, HfPort port) {
  std::map<std::string, HfTensor> out;
  const Weights& w = m.weights;
  out[hf_name(port, Role::InOutEmbed, -1)] = torch_rows(w.in_out_embed);
  out[hf_name(port, Role::FinalNorm, -1)] = {{static_cast<int64_t>(w.rms_norm.size())}, w.rms_norm};
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const int64_t li = static_cast<int64_t>(l);
    out[hf_name(port, Role::Query, li)] = torch_rows(L.query);
    out[hf_name(port, Role::Key, li)] = torch_rows(L.key);
    out[hf_name(port, Role::Value, li)] = torch_rows(L.value);
    out[hf_name(port, Role::AttnLinear, li)] = torch_rows(L.linear);
    out[hf_name(port, Role::Router, li)] = torch_rows(L.router);
    for (auto [r, v] : {std::pair{Role::RmsNorm, &L.rms_norm}, {Role::RmsNorm1, &L.rms_norm_1},
                        {Role::RmsNorm2, &L.rms_norm_2}, {Role::RmsNorm3, &L.rms_norm_3}})
      out[hf_name(port, r, li)] = {{static_cast<int64_t>(v->size())}, *v};
    for (size_t e = 0; e < L.moe_linear.list.size(); ++e) {
      const int64_t ei = static_cast<int64_t>(e);
      out[hf_name(port, Role::MoeLinear, li, ei)] = torch_rows(L.moe_linear.expert(ei));
      out[hf_name(port, Role::MoeLinearV, li, ei)] = torch_rows(L.moe_linear_v.expert(ei));
      out[hf_name(port, Role::MoeLinear1, li, ei)] = torch_rows(L.moe_linear_1.expert(ei));
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, HfTensor>& ts, bool bf16) {
  nlohmann::json h = nlohmann::json::object();
  std::vector<uint8_t> data;
  for (const auto& [name, t] : ts) {
    const size_t begin = data.size();
    for (float v : t.values) {
      if (bf16) {
        uint16_t b = f32_to_bf16(v);
        data.insert(data.end(), reinterpret_cast<uint8_t*>(&b), reinterpret_cast<uint8_t*>(&b) + 2);
      } else {
        data.insert(data.end(), reinterpret_cast<const uint8_t*>(&v), reinterpret_cast<const uint8_t*>(&v) + 4);
      }
    }
    h[name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  h["__metadata__"] = {{"format", "pt"}};
  std::string hs = h.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

void write_config(const std::string& path, const Config& c) {
  nlohmann::json j = {{"architectures", {"Grok1ModelForCausalLM"}}, {"vocab_size", c.vocab_size},
                      {"hidden_size", c.emb_size}, {"intermediate_size", c.ffn_size()},
                      {"num_hidden_layers", c.num_layers}, {"num_attention_heads", c.num_q_heads},
                      {"num_key_value_heads", c.num_kv_heads}, {"num_experts", c.num_experts},
                      {"num_experts_per_tok", c.num_selected_experts}, {"max_position_embeddings", c.sequence_len},
                      {"rms_norm_eps", c.rms_norm_eps}, {"attn_output_multiplier", c.attn_output_multiplier},
                      {"embedding_multiplier_scale", c.embedding_multiplier_scale},
                      {"output_multiplier_scale", c.output_multiplier_scale}, {"pad_token_id", 0},
                      {"bos_token_id", 1}, {"eos_token_id", 2}, {"tie_word_embeddings", true}};
  std::ofstream(path) << j.dump(2);
}

std::vector<float> logits(const std::string& path, const Kernels& k) {
  Model m = load_model(path);
  Session s(m, 12, k);
  std::vector<float> out;
  s.eval(std::vector<int32_t>{5, 17, 42, 300, 2, 77, 1, 9, 400, 511, 33, 8}, out, LogitRows::All);
  return out;
}

class HfPorts : public ::testing::Test {
 protected:
  void SetUp() override {
    write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 11, tmp_ / "raw", {});
    raw_ = std::make_unique<Model>(load_model(tmp_ / "raw"));
    ref_ = logits(tmp_ / "raw", reference_kernels());
  }
  TempDir tmp_;
  std::unique_ptr<Model> raw_;
  std::vector<float> ref_;
};

}  // namespace

TEST_F(HfPorts, BothPortsInF32GiveTheRawLogits) {
  for (HfPort port : {HfPort::Keyfan, HfPort::HpcaiTech}) {
    const std::string dir = tmp_ / (port == HfPort::Keyfan ? "keyfan" : "hpcai");
    fs::create_directories(dir);
    write_config(dir + "/config.json", raw_->config);
    write_safetensors(dir + "/model.safetensors", hf_tensors(*raw_, port), false);
    auto got = logits(dir, reference_kernels());
    EXPECT_LE(max_rel_err(got, ref_), 1e-6) << hf_port_name(port);
    // A single shard under another name, given as the folder or as the file.
    fs::rename(dir + "/model.safetensors", dir + "/grok-tiny.safetensors");
    EXPECT_EQ(logits(dir, reference_kernels()), got);
    EXPECT_EQ(logits(dir + "/grok-tiny.safetensors", reference_kernels()), got);
    Model m = load_model(dir);
    EXPECT_NE(m.format.find("Hugging Face"), std::string::npos);
  }
}

TEST_F(HfPorts, ShardedBf16WithIndex) {
  const std::string dir = tmp_ / "sharded";
  fs::create_directories(dir);
  write_config(dir + "/config.json", raw_->config);
  auto all = hf_tensors(*raw_, HfPort::Keyfan);
  std::map<std::string, HfTensor> a, b;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  size_t i = 0;
  for (auto& [name, t] : all) {
    const bool first = i++ % 2 == 0;
    (first ? a : b)[name] = t;
    index["weight_map"][name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", a, true);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", b, true);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto got = logits(dir, fast_kernels());
  // The index file itself is accepted as --model too.
  EXPECT_EQ(logits(dir + "/model.safetensors.index.json", fast_kernels()), got);
  // bf16 weights: the same size of change as model.py's own bf16 rounding (~3e-2 relative on tiny-a).
  EXPECT_LT(max_rel_err(got, ref_), 0.1);
  auto am = argmax_rows(got, 512), ar = argmax_rows(ref_, 512);
  size_t agree = 0;
  for (size_t t = 0; t < am.size(); ++t) agree += am[t] == ar[t];
  EXPECT_GE(agree, am.size() - 3);
  // A shard named in the index but absent is reported by name.
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
  }
}

TEST_F(HfPorts, WrongShapeAndMissingConfigAreClear) {
  const std::string dir = tmp_ / "bad";
  fs::create_directories(dir);
  auto ts = hf_tensors(*raw_, HfPort::HpcaiTech);
  write_safetensors(dir + "/model.safetensors", ts, false);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  Config c = raw_->config;
  c.ffn_size_override = 340;
  write_config(dir + "/config.json", c);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape should be [340, 64]"), std::string::npos) << e.what();
  }
}

}  // namespace groak::test
