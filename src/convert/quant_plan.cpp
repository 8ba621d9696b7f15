#include "convert/quant_plan.h"

#include <cctype>
#include <cstdio>

#include "util/error.h"

namespace groak {

namespace {

// llama.h's LLAMA_FTYPE_* numbers (stored as general.file_type).
enum Ftype : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11,
  kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18,
  kIQ2_XXS = 19, kIQ2_XS = 20, kQ2_K_S = 21, kIQ3_XS = 22, kIQ3_XXS = 23, kIQ1_S = 24, kIQ4_NL = 25,
  kIQ3_S = 26, kIQ3_M = 27, kIQ2_S = 28, kIQ2_M = 29, kIQ4_XS = 30, kIQ1_M = 31, kBF16 = 32, kTQ1_0 = 36,
  kTQ2_0 = 37,
};

using G = GgmlType;
constexpr FileType kFileTypes[] = {
    {"F32", kF32, G::F32, "32-bit floats (exact)"},
    {"F16", kF16, G::F16, "16-bit floats"},
    {"BF16", kBF16, G::BF16, "bfloat16"},
    {"Q8_0", kQ8_0, G::Q8_0, "8.5 bits per weight; xAI's int8 kept exactly where its scales allow"},
    {"Q4_0", kQ4_0, G::Q4_0, "4.5 bpw, legacy"},
    {"Q4_1", kQ4_1, G::Q4_1, "5.0 bpw, legacy"},
    {"Q5_0", kQ5_0, G::Q5_0, "5.5 bpw, legacy"},
    {"Q5_1", kQ5_1, G::Q5_1, "6.0 bpw, legacy"},
    {"Q2_K", kQ2_K, G::Q2_K, "mostly Q2_K (2.6 bpw), ffn_down Q3_K"},
    {"Q2_K_S", kQ2_K_S, G::Q2_K, "mostly Q2_K, smaller; needs an imatrix"},
    {"Q3_K_S", kQ3_K_S, G::Q3_K, "mostly Q3_K (3.4 bpw)"},
    {"Q3_K_M", kQ3_K_M, G::Q3_K, "Q3_K with ffn_down Q4_K/Q5_K"},
    {"Q3_K_L", kQ3_K_L, G::Q3_K, "Q3_K with ffn_down Q5_K"},
    {"Q4_K_S", kQ4_K_S, G::Q4_K, "mostly Q4_K (4.5 bpw)"},
    {"Q4_K_M", kQ4_K_M, G::Q4_K, "Q4_K with some ffn_down Q6_K (the usual choice)"},
    {"Q5_K_S", kQ5_K_S, G::Q5_K, "mostly Q5_K (5.5 bpw)"},
    {"Q5_K_M", kQ5_K_M, G::Q5_K, "Q5_K with some ffn_down Q6_K"},
    {"Q6_K", kQ6_K, G::Q6_K, "6.6 bpw"},
    {"IQ4_NL", kIQ4_NL, G::IQ4_NL, "4.5 bpw, non-linear levels"},
    {"IQ4_XS", kIQ4_XS, G::IQ4_XS, "4.25 bpw, non-linear levels"},
    {"IQ3_M", kIQ3_M, G::IQ3_S, "3.7 bpw mix"},
    {"IQ3_S", kIQ3_S, G::IQ3_S, "3.4 bpw"},
    {"IQ3_XS", kIQ3_XS, G::IQ3_S, "3.3 bpw mix (IQ3_S and IQ3_XXS)"},
    {"IQ3_XXS", kIQ3_XXS, G::IQ3_XXS, "3.06 bpw"},
    {"IQ2_M", kIQ2_M, G::IQ2_S, "2.7 bpw; needs an imatrix"},
    {"IQ2_S", kIQ2_S, G::IQ2_XS, "2.5 bpw; needs an imatrix"},
    {"IQ2_XS", kIQ2_XS, G::IQ2_XS, "2.31 bpw; needs an imatrix"},
    {"IQ2_XXS", kIQ2_XXS, G::IQ2_XXS, "2.06 bpw; needs an imatrix"},
    {"IQ1_M", kIQ1_M, G::IQ1_M, "1.75 bpw; needs an imatrix"},
    {"IQ1_S", kIQ1_S, G::IQ1_S, "1.56 bpw; needs an imatrix"},
    {"TQ2_0", kTQ2_0, G::TQ2_0, "2.06 bpw ternary (only for ternary-trained weights)"},
    {"TQ1_0", kTQ1_0, G::TQ1_0, "1.69 bpw ternary (only for ternary-trained weights)"},
};

std::string upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

}  // namespace

const FileType& parse_file_type(const std::string& s) {
  std::string u = upper(s);
  if (u == "Q4_K") u = "Q4_K_M";  // llama-quantize's aliases
  if (u == "Q3_K") u = "Q3_K_M";
  if (u == "Q5_K") u = "Q5_K_M";
  for (const FileType& f : kFileTypes)
    if (u == f.name) return f;
  throw Error("unknown --type '" + s + "'; use one of " + file_type_names());
}

std::string file_type_names() {
  std::string out;
  for (const FileType& f : kFileTypes) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

GgmlType parse_tensor_type(const std::string& s) {
  const std::string u = upper(s);
  std::string names;
  for (uint32_t n = 0; n < 64; ++n) {
    if (!ggml_type_supported(n)) continue;
    const GgmlType t = static_cast<GgmlType>(n);
    if (u == type_name(t)) return t;
    names += (names.empty() ? "" : ", ") + std::string(type_name(t));
  }
  throw Error("unknown tensor type '" + s + "'; use one of " + names);
}

TensorTypeRule parse_tensor_type_rule(const std::string& s) {
  const size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    throw Error("--tensor-type '" + s + "': write PATTERN=TYPE, e.g. ffn_down=q6_k or 'blk\\.0\\..*=q8_0'");
  TensorTypeRule r;
  r.pattern = s.substr(0, eq);
  try {
    r.re = std::regex(r.pattern);
  } catch (const std::regex_error& e) {
    throw Error("--tensor-type '" + s + "': '" + r.pattern + "' is not a valid regular expression (" + e.what() + ")");
  }
  r.type = parse_tensor_type(s.substr(eq + 1));
  return r;
}

QuantPlanner::QuantPlanner(const Config& c, const QuantPlanOptions& o, bool has_output)
    : c_(c), o_(o), has_output_(has_output), n_attention_wv_(static_cast<int>(c.num_layers)) {}

GgmlType QuantPlanner::type_for(const std::string& name, const std::vector<int64_t>& ne, std::string* note) {
  const FileType& ft = *o_.file_type;
  GgmlType t = ft.base;
  const bool quantized_base = block_size(ft.base) > 1;
  if (!o_.pure && quantized_base) t = mix_rule(name, ne, t);
  const char* asked = nullptr;  // the option that chose t, when the user did
  if (o_.token_embedding_type && name == "token_embd.weight") t = *o_.token_embedding_type, asked = "--token-embedding-type";
  if (o_.output_type && name == "output.weight") t = *o_.output_type, asked = "--output-tensor-type";
  if (o_.output_type && !has_output_ && name == "token_embd.weight" && !o_.token_embedding_type)
    asked = "--output-tensor-type";
  for (const TensorTypeRule& r : o_.tensor_types)
    if (std::regex_search(name, r.re)) {
      t = r.type;
      asked = "--tensor-type";
      break;
    }
  if (asked && ne[0] % block_size(t) != 0)  // a type the user named is never silently replaced
    throw Error(std::string(asked) + " asks " + type_name(t) + " for '" + name + "', whose rows of " +
                std::to_string(ne[0]) + " inputs are not a multiple of its block of " + std::to_string(block_size(t)) +
                "; choose a type with 32-element blocks (Q8_0, Q5_0, IQ4_NL …) or F16 for it");
  if (ne[0] % block_size(t) != 0) {  // llama.cpp's fallback chain for rows the block cannot hold
    GgmlType fb;
    switch (t) {
      case G::TQ1_0: case G::TQ2_0: fb = G::Q4_0; break;
      case G::IQ2_XXS: case G::IQ2_XS: case G::IQ2_S: case G::IQ3_XXS: case G::IQ3_S: case G::IQ1_S:
      case G::IQ1_M: case G::Q2_K: case G::Q3_K: case G::IQ4_XS: fb = G::IQ4_NL; break;
      case G::Q4_K: fb = G::Q5_0; break;
      case G::Q5_K: fb = G::Q5_1; break;
      case G::Q6_K: fb = G::Q8_0; break;
      default: fb = G::F16; break;
    }
    if (ne[0] % block_size(fb) != 0) fb = G::F16;
    if (note)
      *note = name + ": rows of " + std::to_string(ne[0]) + " inputs are not a multiple of " +
              std::to_string(block_size(t)) + " (" + type_name(t) + " block), stored as " + type_name(fb);
    t = fb;
  }
  return t;
}

// llama_tensor_get_type for an architecture like Grok's (not Falcon, not a 70B Llama).
GgmlType QuantPlanner::mix_rule(const std::string& name, const std::vector<int64_t>& ne, GgmlType t) {
  const uint32_t f = o_.file_type->ftype;
  const int64_t n_expert = c_.num_experts;
  const int64_t n_gqa = c_.num_kv_heads > 0 ? c_.num_q_heads / c_.num_kv_heads : 1;
  const int n_layer = static_cast<int>(c_.num_layers);
  auto layer_of = [&](const char* kind, int& counter) {
    int layer = counter;
    if (n_expert > 1 && std::sscanf(name.c_str(), "blk.%d.", &layer) != 1)
      throw Error(std::string("cannot tell the layer of ") + kind + " tensor '" + name + "'");
    return layer;
  };
  const bool very_low = f == kIQ2_XXS || f == kIQ2_XS || f == kIQ1_S || f == kIQ2_S || f == kIQ2_M || f == kIQ1_M;

  if (name == "output.weight" || (!has_output_ && name == "token_embd.weight")) {
    if (o_.output_type) return *o_.output_type;
    if (ne[0] % block_size(t) != 0) return G::Q8_0;
    if (f == kIQ2_XXS || f == kIQ2_XS || f == kIQ3_XXS || f == kIQ1_S || f == kIQ2_S || f == kIQ2_M || f == kIQ1_M)
      return G::Q5_K;
    return t != G::Q8_0 ? G::Q6_K : t;
  }
  if (name == "token_embd.weight") {
    if (o_.token_embedding_type) return *o_.token_embedding_type;
    if (f == kIQ2_XXS || f == kIQ2_XS || f == kIQ1_S || f == kIQ1_M) return G::Q2_K;
    if (f == kIQ2_S || f == kIQ2_M || f == kIQ3_XXS) return G::IQ3_S;
    if (f == kTQ1_0 || f == kTQ2_0) return G::Q4_K;
    return t;
  }
  if (very_low) {
    if (contains(name, "attn_v.weight")) {
      t = n_gqa >= 4 || n_expert >= 4 ? G::Q4_K : (f == kIQ2_S || f == kIQ2_M ? G::IQ3_S : G::Q2_K);
      ++i_attention_wv_;
    } else if (n_expert == 8 && contains(name, "attn_k.weight")) {
      t = G::Q4_K;
    } else if (contains(name, "ffn_down")) {
      if (i_ffn_down_ < n_layer / 8) t = f == kIQ2_S || f == kIQ2_M ? G::IQ3_S : G::Q2_K;
      ++i_ffn_down_;
    } else if (contains(name, "attn_output.weight")) {
      if (n_expert == 8) t = G::Q5_K;
      else if (f == kIQ1_S || f == kIQ1_M) t = G::IQ2_XXS;
      else if (f == kIQ2_S || f == kIQ2_M) t = G::IQ3_S;
    }
    return t;
  }
  if (contains(name, "attn_v.weight")) {
    if (f == kQ2_K) t = n_gqa >= 4 ? G::Q4_K : G::Q3_K;
    else if (f == kQ2_K_S && n_gqa >= 4) t = G::Q4_K;
    else if (f == kIQ3_XXS) t = n_gqa >= 4 ? G::Q4_K : !o_.has_imatrix ? G::IQ3_S : G::IQ3_XXS;
    else if ((f == kIQ3_XS || f == kIQ3_S) && n_gqa >= 4) t = G::Q4_K;
    else if (f == kIQ3_M) t = G::Q4_K;
    else if (f == kQ3_K_M) t = i_attention_wv_ < 2 ? G::Q5_K : G::Q4_K;
    else if (f == kQ3_K_L) t = G::Q5_K;
    else if ((f == kIQ4_NL || f == kIQ4_XS) && n_gqa >= 4) t = G::Q5_K;
    else if ((f == kQ4_K_M || f == kQ5_K_M) && use_more_bits(i_attention_wv_, n_attention_wv_)) t = G::Q6_K;
    else if (f == kQ4_K_S && i_attention_wv_ < 4) t = G::Q5_K;
    if (n_expert == 8) t = G::Q8_0;  // llama.cpp: "bumping this to Q8_0 trades just ~128MB"
    ++i_attention_wv_;
    return t;
  }
  if (contains(name, "attn_k.weight")) {
    if (n_expert == 8) t = G::Q8_0;
    else if (f == kIQ3_XS) t = G::IQ3_XXS;
    else if (f == kIQ3_XXS) t = G::IQ2_S;
    return t;
  }
  if (contains(name, "attn_q.weight")) {
    if (f == kIQ3_XS) t = G::IQ3_XXS;
    else if (f == kIQ3_XXS) t = G::IQ2_S;
    return t;
  }
  if (contains(name, "ffn_down")) {
    const int i = layer_of("ffn_down", i_ffn_down_);
    if (f == kQ2_K) t = G::Q3_K;
    else if (f == kQ2_K_S) { if (i < n_layer / 8) t = G::Q4_K; }
    else if (f == kIQ3_XXS && !o_.has_imatrix) t = i < n_layer / 8 ? G::Q4_K : G::Q3_K;
    else if (f == kQ3_K_M) t = i < n_layer / 16 ? G::Q5_K : G::Q4_K;  // (Q3_K only for Falcon)
    else if (f == kIQ3_M && (i < n_layer / 8 || (n_expert == 8 && use_more_bits(i, n_layer)))) t = G::Q4_K;
    else if (f == kQ3_K_L) t = G::Q5_K;
    else if (f == kQ4_K_M) { if (use_more_bits(i, n_layer)) t = G::Q6_K; }
    else if (i < n_layer / 8 && (f == kIQ4_NL || f == kIQ4_XS) && !o_.has_imatrix) t = G::Q5_K;
    else if (f == kQ5_K_M && use_more_bits(i, n_layer)) t = G::Q6_K;
    else if (f == kQ4_K_S && i < n_layer / 8) t = G::Q5_K;
    else if ((f == kQ4_0 || f == kQ5_0) && o_.has_imatrix && i < n_layer / 8) t = f == kQ4_0 ? G::Q4_1 : G::Q5_1;
    ++i_ffn_down_;
    return t;
  }
  if (contains(name, "attn_output.weight")) {
    if (n_expert == 8) {
      if (f == kQ2_K || f == kIQ3_XS || f == kIQ3_XXS || f == kQ3_K_S || f == kQ3_K_M || f == kIQ4_NL ||
          f == kQ4_K_S || f == kQ4_K_M || f == kIQ3_S || f == kIQ3_M || f == kIQ4_XS)
        t = G::Q5_K;
    } else {
      if (f == kQ2_K) t = G::Q3_K;
      else if (f == kIQ3_XXS) t = G::IQ3_S;
      else if (f == kQ3_K_M) t = G::Q4_K;
      else if (f == kQ3_K_L) t = G::Q5_K;
      else if (f == kIQ3_M) t = G::Q4_K;
    }
    return t;
  }
  if (contains(name, "ffn_gate")) {
    const int i = layer_of("ffn_gate", i_ffn_gate_);
    if (f == kIQ3_XS && i >= n_layer / 8 && i < 7 * n_layer / 8) t = G::IQ3_XXS;
    ++i_ffn_gate_;
    return t;
  }
  if (contains(name, "ffn_up")) {
    const int i = layer_of("ffn_up", i_ffn_up_);
    if (f == kIQ3_XS && i >= n_layer / 8 && i < 7 * n_layer / 8) t = G::IQ3_XXS;
    ++i_ffn_up_;
    return t;
  }
  return t;
}

}  // namespace groak
