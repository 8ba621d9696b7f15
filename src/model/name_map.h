// The one place where Grok-1's parameters get their names in each format: xAI's Haiku paths
// (model.py) and their file order, llama.cpp's GGUF names and the two Hugging Face ports (spec §9),
// all from one table. The math never sees these strings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace groak {

// A parameter's role, named after model.py.
enum class Role : uint8_t {
  InOutEmbed,  // language_model/in_out_embed/embeddings [vocab, d]
  FinalNorm,   // language_model/rms_norm/scale [d]
  Query, Key, Value, AttnLinear,           // multi_head_attention/{query,key,value,linear}/w
  RmsNorm, RmsNorm1, RmsNorm2, RmsNorm3,   // decoder_layer_N/rms_norm{,_1,_2,_3}/scale
  Router,                                  // router/w [d, E]
  MoeLinear, MoeLinearV, MoeLinear1,       // moe/{linear,linear_v,linear_1}/w [E, in, out]
};

bool is_layer_role(Role r);
bool is_expert_role(Role r);
const std::vector<Role>& layer_roles();  // every per-layer role, in a fixed order

// xAI raw checkpoint: "transformer/decoder_layer_3/moe/linear/w" …
std::string xai_name(Role r, int64_t layer);

// A parameter: its role and layer (-1 for the two global ones).
struct RoleAt {
  Role role;
  int64_t layer;
};
// xAI's ckpt-0 file order for num_layers layers (2 + 12 * num_layers entries): the sorted Haiku paths.
std::vector<RoleAt> xai_file_order(int64_t num_layers);
// llama.cpp GGUF (merged experts for expert roles): "blk.3.ffn_gate_exps.weight" …
std::string gguf_name(Role r, int64_t layer);
// Early-2024 GGUF files: one tensor per expert, "blk.3.ffn_gate.5.weight".
std::string gguf_expert_name(Role r, int64_t layer, int64_t expert);

// The Hugging Face ports (torch layout [out, in]).
enum class HfPort : uint8_t { Keyfan, HpcaiTech };
const char* hf_port_name(HfPort p);
std::string hf_name(HfPort port, Role r, int64_t layer, int64_t expert = 0);

}  // namespace groak
