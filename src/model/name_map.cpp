#include "model/name_map.h"

namespace groak {

bool is_layer_role(Role r) { return r != Role::InOutEmbed && r != Role::FinalNorm; }
bool is_expert_role(Role r) { return r == Role::MoeLinear || r == Role::MoeLinearV || r == Role::MoeLinear1; }

const std::vector<Role>& layer_roles() {
  static const std::vector<Role> roles = {Role::Query,   Role::Key,      Role::Value,    Role::AttnLinear,
                                          Role::RmsNorm, Role::RmsNorm1, Role::RmsNorm2, Role::RmsNorm3,
                                          Role::Router,  Role::MoeLinear, Role::MoeLinearV, Role::MoeLinear1};
  return roles;
}

std::string xai_name(Role r, int64_t layer) {
  const std::string p = "transformer/decoder_layer_" + std::to_string(layer) + "/";
  switch (r) {
    case Role::InOutEmbed: return "language_model/in_out_embed/embeddings";
    case Role::FinalNorm: return "language_model/rms_norm/scale";
    case Role::Query: return p + "multi_head_attention/query/w";
    case Role::Key: return p + "multi_head_attention/key/w";
    case Role::Value: return p + "multi_head_attention/value/w";
    case Role::AttnLinear: return p + "multi_head_attention/linear/w";
    case Role::RmsNorm: return p + "rms_norm/scale";
    case Role::RmsNorm1: return p + "rms_norm_1/scale";
    case Role::RmsNorm2: return p + "rms_norm_2/scale";
    case Role::RmsNorm3: return p + "rms_norm_3/scale";
    case Role::Router: return p + "router/w";
    case Role::MoeLinear: return p + "moe/linear/w";
    case Role::MoeLinearV: return p + "moe/linear_v/w";
    case Role::MoeLinear1: return p + "moe/linear_1/w";
  }
  return "";
}

namespace {
// GGUF base names (without "blk.N." and ".weight").
const char* gguf_base(Role r) {
  switch (r) {
    case Role::InOutEmbed: return "token_embd";
    case Role::FinalNorm: return "output_norm";
    case Role::Query: return "attn_q";
    case Role::Key: return "attn_k";
    case Role::Value: return "attn_v";
    case Role::AttnLinear: return "attn_output";
    case Role::RmsNorm: return "attn_norm";
    case Role::RmsNorm1: return "attn_output_norm";
    case Role::RmsNorm2: return "ffn_norm";
    case Role::RmsNorm3: return "layer_output_norm";
    case Role::Router: return "ffn_gate_inp";
    case Role::MoeLinear: return "ffn_gate";  // the GELU branch
    case Role::MoeLinearV: return "ffn_up";
    case Role::MoeLinear1: return "ffn_down";
  }
  return "";
}
}  // namespace

std::string gguf_name(Role r, int64_t layer) {
  if (!is_layer_role(r)) return std::string(gguf_base(r)) + ".weight";
  return "blk." + std::to_string(layer) + "." + gguf_base(r) + (is_expert_role(r) ? "_exps" : "") + ".weight";
}

std::string gguf_expert_name(Role r, int64_t layer, int64_t expert) {
  return "blk." + std::to_string(layer) + "." + gguf_base(r) + "." + std::to_string(expert) + ".weight";
}

const char* hf_port_name(HfPort p) {
  return p == HfPort::Keyfan ? "keyfan/grok-1-hf (transformer.*)" : "hpcai-tech/grok-1 (model.*)";
}

std::string hf_name(HfPort port, Role r, int64_t layer, int64_t expert) {
  const std::string L = std::to_string(layer), E = std::to_string(expert);
  if (port == HfPort::Keyfan) {
    const std::string p = "transformer.decoder_layer." + L + ".";
    switch (r) {
      case Role::InOutEmbed: return "transformer.in_out_embed.weight";
      case Role::FinalNorm: return "transformer.rms_norm.weight";
      case Role::Query: return p + "multi_head_attention.query.weight";
      case Role::Key: return p + "multi_head_attention.key.weight";
      case Role::Value: return p + "multi_head_attention.value.weight";
      case Role::AttnLinear: return p + "multi_head_attention.linear.weight";
      case Role::RmsNorm: return p + "rms_norm.weight";
      case Role::RmsNorm1: return p + "rms_norm_1.weight";
      case Role::RmsNorm2: return p + "rms_norm_2.weight";
      case Role::RmsNorm3: return p + "rms_norm_3.weight";
      case Role::Router: return p + "router.weight";
      case Role::MoeLinear: return p + "moe." + E + ".linear.weight";
      case Role::MoeLinearV: return p + "moe." + E + ".linear_v.weight";
      case Role::MoeLinear1: return p + "moe." + E + ".linear_1.weight";
    }
  } else {
    const std::string p = "model.layers." + L + ".";
    switch (r) {
      case Role::InOutEmbed: return "model.embed_tokens.weight";
      case Role::FinalNorm: return "model.norm.scale";
      case Role::Query: return p + "attn.q_proj.weight";
      case Role::Key: return p + "attn.k_proj.weight";
      case Role::Value: return p + "attn.v_proj.weight";
      case Role::AttnLinear: return p + "attn.o_proj.weight";
      case Role::RmsNorm: return p + "pre_attn_norm.scale";
      case Role::RmsNorm1: return p + "post_attn_norm.scale";
      case Role::RmsNorm2: return p + "pre_moe_norm.scale";
      case Role::RmsNorm3: return p + "post_moe_norm.scale";
      case Role::Router: return p + "moe_block.gate.weight";
      case Role::MoeLinear: return p + "moe_block.experts." + E + ".linear.weight";
      case Role::MoeLinearV: return p + "moe_block.experts." + E + ".linear_v.weight";
      case Role::MoeLinear1: return p + "moe_block.experts." + E + ".linear_1.weight";
    }
  }
  return "";
}

}  // namespace groak
