// Grok-1 hyper-parameters, with the field names of xai-org/grok-1 run.py (LanguageModelConfig and
// TransformerConfig) plus the constants model.py hard-codes. Spec: shared/docs/GROK1.md §1.
#pragma once
#include <cstdint>
#include <string>

namespace groak {

struct Config {
  // --- run.py fields ---
  int64_t vocab_size = 128 * 1024;
  int64_t emb_size = 48 * 128;       // d_model
  int64_t key_size = 128;            // head dim (= value size)
  int64_t num_q_heads = 48;
  int64_t num_kv_heads = 8;
  int64_t num_layers = 64;
  double widening_factor = 8;
  int64_t num_experts = 8;
  int64_t num_selected_experts = 2;
  double attn_output_multiplier = 0.08838834764831845;       // multiplies attention *logits*
  double embedding_multiplier_scale = 78.38367176906169;     // = sqrt(6144)
  double output_multiplier_scale = 0.5773502691896257;       // = 1/sqrt(3)
  int64_t pad_token = 0;
  int64_t eos_token = 2;
  int64_t sequence_len = 8192;  // KV memory length: the longest context
  // --- constants model.py hard-codes ---
  double rms_norm_eps = 1e-5;
  double rope_base = 10000;
  double attn_logit_cap = 30;   // logits = cap * tanh(logits / cap)
  int64_t bos_token = 1;        // from the tokenizer; never prepended by the official runner
  int64_t ffn_size_override = 0;  // GGUF/HF files state the expert width directly; 0 = model.py's formula
  // Not a file's field: the parts of each row-parallel product this process computes (model/parts.h),
  // set at load.
  int64_t reduction_parts = 1;

  // model.py ffn_size(): int(widening * d) * 2 // 3, rounded up to a multiple of 8.
  int64_t ffn_size() const {
    if (ffn_size_override > 0) return ffn_size_override;
    int64_t f = static_cast<int64_t>(widening_factor * static_cast<double>(emb_size)) * 2 / 3;
    return f + ((8 - f) % 8 + 8) % 8;
  }
  // This config with widening_factor chosen so that model.py's formula gives the expert width `ffn_size()`
  // (run.py states a widening factor, not a width); throws groak::Error if no factor does.
  Config with_widening_for_ffn() const;
  int64_t q_size() const { return num_q_heads * key_size; }    // width of the query projection
  int64_t kv_size() const { return num_kv_heads * key_size; }  // width of each of key / value

  // Throws groak::Error naming the first inconsistent field (where = file the config came from, hint = what
  // to do, e.g. fix config.json or re-convert a GGUF). Every derived size is checked to fit 64 bits.
  void validate(const std::string& where,
                const std::string& hint = "fix config.json (run.py field names)") const;
  std::string describe() const;  // multi-line "name value" table for `groak info`
};

// Reads config.json (run.py field names; unknown keys ignored, missing keys keep Grok-1 defaults).
Config load_config_json(const std::string& path);
// Writes config.json in the fixtures' layout (run.py fields + "derived" + "generator"): `groak synth`'s.
std::string config_to_json(const Config& c, const std::string& preset, uint64_t seed);
// The same layout for a checkpoint `groak convert` wrote from `source` (generator.random_weights: whether
// that source was synthetic). The expert width must follow from
// widening_factor (model.py's formula); Config::from_ffn_size makes it so.
std::string config_to_json_converted(const Config& c, const std::string& source, bool random_weights);

}  // namespace groak
