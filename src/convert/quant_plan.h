// Which type each weight of a converted model gets: llama-quantize's file types (Q4_K_M, IQ3_XS, …) with
// its per-tensor rules (llama_tensor_get_type in llama.cpp's src/llama-quant.cpp) as they apply to Grok,
// the user's overrides (--output-tensor-type, --token-embedding-type, --tensor-type PATTERN=TYPE) and
// llama.cpp's fallbacks for rows that a block type cannot hold. Same inputs, same types as llama-quantize,
// so a groak file and a llama.cpp file of one name hold the same mix.
#pragma once
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "kernels/quant.h"
#include "model/config.h"

namespace groak {

struct FileType {
  const char* name;   // llama-quantize's name ("Q4_K_M")
  uint32_t ftype;     // general.file_type (llama.h LLAMA_FTYPE_*)
  GgmlType base;      // the type of the weights no rule changes
  const char* about;  // one line for --help
};

// A file type by llama-quantize's name or alias (case-insensitive; Q4_K = Q4_K_M, Q3_K = Q3_K_M,
// Q5_K = Q5_K_M as in llama-quantize). Throws groak::Error listing the names.
const FileType& parse_file_type(const std::string& s);
// "Q8_0, Q4_0, …": every name parse_file_type accepts (aliases not repeated).
std::string file_type_names();
// A tensor type by ggml's name ("q6_k", "F16", "iq4_xs"), for the overrides. Throws listing the names.
GgmlType parse_tensor_type(const std::string& s);

struct TensorTypeRule {
  std::string pattern;  // ECMAScript regex, searched in the tensor name (llama-quantize's --tensor-type)
  std::regex re;
  GgmlType type;
};
// "PATTERN=TYPE" (e.g. "ffn_down=q6_k", "blk\.0\..*=q8_0"). Throws naming what is wrong.
TensorTypeRule parse_tensor_type_rule(const std::string& s);

struct QuantPlanOptions {
  const FileType* file_type = &parse_file_type("Q8_0");
  bool pure = false;                             // no per-tensor rules: every weight gets the base type
  std::optional<GgmlType> output_type;           // output.weight, or the tied token_embd.weight
  std::optional<GgmlType> token_embedding_type;  // token_embd.weight
  std::vector<TensorTypeRule> tensor_types;      // first matching rule wins, after everything else
  bool has_imatrix = false;
};

class QuantPlanner {
 public:
  // has_output: the model has its own output.weight (otherwise token_embd is also the output head).
  QuantPlanner(const Config& c, const QuantPlanOptions& o, bool has_output);
  // The type of the next quantized weight `name` with ggml shape ne (ne[0] = inputs). Call in file
  // order: llama.cpp's rules count attn_v and ffn_down tensors as they come. `note` gets a line when a
  // fallback was needed (rows the chosen type cannot hold).
  GgmlType type_for(const std::string& name, const std::vector<int64_t>& ne, std::string* note);

 private:
  GgmlType mix_rule(const std::string& name, const std::vector<int64_t>& ne, GgmlType t);
  const Config& c_;
  QuantPlanOptions o_;
  bool has_output_;
  int i_attention_wv_ = 0, n_attention_wv_, i_ffn_down_ = 0, i_ffn_gate_ = 0, i_ffn_up_ = 0;
};

}  // namespace groak
