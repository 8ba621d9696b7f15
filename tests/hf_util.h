// Hugging Face ports written by the tests: a loaded model's weights under either port's tensor names (torch
// layout [out, in]), its config.json, and safetensors files of them.
#pragma once
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "model/name_map.h"
#include "model/weights.h"

namespace groak::test {

struct HfTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// torch layout of a weight: row o = output unit o over all inputs.
inline HfTensor torch_rows(const Matrix& m) {
  HfTensor t{{m.n_out, m.n_in}, std::vector<float>(static_cast<size_t>(m.n_in * m.n_out))};
  for (int64_t o = 0; o < m.n_out; ++o) reference_kernels().get_row(m, o, t.values.data() + o * m.n_in);
  return t;
}

inline std::map<std::string, HfTensor> hf_tensors(const Model& m, HfPort port) {
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

inline void write_safetensors(const std::string& path, const std::map<std::string, HfTensor>& ts, bool bf16) {
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

inline void write_config(const std::string& path, const Config& c) {
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

// What a bf16 checkpoint of these weights holds: every value rounded to bf16 (round to nearest even).
inline void round_to_bf16(std::map<std::string, HfTensor>& ts) {
  for (auto& [name, t] : ts)
    for (float& v : t.values) v = bf16_to_f32(f32_to_bf16(v));
}

}  // namespace groak::test
