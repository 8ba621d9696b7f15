#include "model/name_map.h"

#include <algorithm>

namespace groak {

namespace {

// One row per role: its name in xAI's Haiku tree, in llama.cpp's GGUF and in the two HF ports. Per-layer
// names are relative to the layer prefix below; "{E}" stands for the expert index. Everything else in
// groak (loaders, synth, convert, the xAI file order) derives its names from this table.
struct Names {
  Role role;
  const char* xai;     // under transformer/decoder_layer_N/ for layer roles
  const char* gguf;    // base name, without "blk.N." and ".weight"
  const char* keyfan;  // under transformer.decoder_layer.N. for layer roles
  const char* hpcai;   // under model.layers.N. for layer roles
};

constexpr Names kNames[] = {
    {Role::InOutEmbed, "language_model/in_out_embed/embeddings", "token_embd", "transformer.in_out_embed.weight",
     "model.embed_tokens.weight"},
    {Role::FinalNorm, "language_model/rms_norm/scale", "output_norm", "transformer.rms_norm.weight",
     "model.norm.scale"},
    {Role::Query, "multi_head_attention/query/w", "attn_q", "multi_head_attention.query.weight",
     "attn.q_proj.weight"},
    {Role::Key, "multi_head_attention/key/w", "attn_k", "multi_head_attention.key.weight", "attn.k_proj.weight"},
    {Role::Value, "multi_head_attention/value/w", "attn_v", "multi_head_attention.value.weight",
     "attn.v_proj.weight"},
    {Role::AttnLinear, "multi_head_attention/linear/w", "attn_output", "multi_head_attention.linear.weight",
     "attn.o_proj.weight"},
    {Role::RmsNorm, "rms_norm/scale", "attn_norm", "rms_norm.weight", "pre_attn_norm.scale"},
    {Role::RmsNorm1, "rms_norm_1/scale", "attn_output_norm", "rms_norm_1.weight", "post_attn_norm.scale"},
    {Role::RmsNorm2, "rms_norm_2/scale", "ffn_norm", "rms_norm_2.weight", "pre_moe_norm.scale"},
    {Role::RmsNorm3, "rms_norm_3/scale", "layer_output_norm", "rms_norm_3.weight", "post_moe_norm.scale"},
    {Role::Router, "router/w", "ffn_gate_inp", "router.weight", "moe_block.gate.weight"},
    {Role::MoeLinear, "moe/linear/w", "ffn_gate", "moe.{E}.linear.weight",  // the GELU branch
     "moe_block.experts.{E}.linear.weight"},
    {Role::MoeLinearV, "moe/linear_v/w", "ffn_up", "moe.{E}.linear_v.weight", "moe_block.experts.{E}.linear_v.weight"},
    {Role::MoeLinear1, "moe/linear_1/w", "ffn_down", "moe.{E}.linear_1.weight",
     "moe_block.experts.{E}.linear_1.weight"},
};

const Names& names(Role r) {
  for (const auto& n : kNames)
    if (n.role == r) return n;
  return kNames[0];  // unreachable: every Role has a row
}

std::string with_expert(const char* pattern, int64_t expert) {
  std::string s = pattern;
  const size_t at = s.find("{E}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(expert));
  return s;
}

}  // namespace

bool is_layer_role(Role r) { return r != Role::InOutEmbed && r != Role::FinalNorm; }
bool is_expert_role(Role r) { return r == Role::MoeLinear || r == Role::MoeLinearV || r == Role::MoeLinear1; }

const std::vector<Role>& layer_roles() {
  static const std::vector<Role> roles = [] {
    std::vector<Role> v;
    for (const auto& n : kNames)
      if (is_layer_role(n.role)) v.push_back(n.role);
    return v;
  }();
  return roles;
}

std::string xai_name(Role r, int64_t layer) {
  if (!is_layer_role(r)) return names(r).xai;
  return "transformer/decoder_layer_" + std::to_string(layer) + "/" + names(r).xai;
}

std::vector<RoleAt> xai_file_order(int64_t num_layers) {
  // jax.tree_util flattens Haiku's nested dicts with sorted keys, so the files follow the byte order of the
  // full paths: layers by their decimal string (0, 1, 10, 11, …, 2, …), and "/" sorts before "_".
  std::vector<std::pair<std::string, RoleAt>> named;
  for (const auto& n : kNames)
    if (!is_layer_role(n.role)) named.push_back({xai_name(n.role, -1), {n.role, -1}});
  for (int64_t l = 0; l < num_layers; ++l)
    for (Role r : layer_roles()) named.push_back({xai_name(r, l), {r, l}});
  std::sort(named.begin(), named.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RoleAt> order;
  order.reserve(named.size());
  for (const auto& [name, at] : named) order.push_back(at);
  return order;
}

std::string gguf_name(Role r, int64_t layer) {
  if (!is_layer_role(r)) return std::string(names(r).gguf) + ".weight";
  return "blk." + std::to_string(layer) + "." + names(r).gguf + (is_expert_role(r) ? "_exps" : "") + ".weight";
}

std::string gguf_expert_name(Role r, int64_t layer, int64_t expert) {
  return "blk." + std::to_string(layer) + "." + names(r).gguf + "." + std::to_string(expert) + ".weight";
}

const char* hf_port_name(HfPort p) {
  return p == HfPort::Keyfan ? "keyfan/grok-1-hf (transformer.*)" : "hpcai-tech/grok-1 (model.*)";
}

std::string hf_name(HfPort port, Role r, int64_t layer, int64_t expert) {
  const Names& n = names(r);
  const char* name = port == HfPort::Keyfan ? n.keyfan : n.hpcai;
  if (!is_layer_role(r)) return name;
  const std::string prefix = port == HfPort::Keyfan ? "transformer.decoder_layer." : "model.layers.";
  return prefix + std::to_string(layer) + "." + with_expert(name, expert);
}

}  // namespace groak
