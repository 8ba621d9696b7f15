#include "model/config.h"

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <cmath>
#include <type_traits>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace groak {

namespace {

template <typename T>
void read_field(const nlohmann::json& j, const char* key, T& out, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_number()) {
    throw Error(path + ": field \"" + key + "\" should be a number, found " + it->dump() +
                "; fix config.json (run.py field names) or remove the field to use the Grok-1 default");
  }
  if constexpr (std::is_integral_v<T>) {
    // Integers must be whole and in range (JSON numbers may be floats or huge).
    const double v = it->get<double>();
    if (!(v == std::floor(v)) || v < -9.0e15 || v > 9.0e15)
      throw Error(path + ": field \"" + key + "\" should be a whole number, found " + it->dump() + "; fix config.json");
    out = static_cast<T>(v);
  } else {
    out = it->get<T>();
  }
}

}  // namespace

void Config::validate(const std::string& where, const std::string& hint) const {
  auto fail = [&](const std::string& what) { throw Error(where + ": invalid configuration: " + what + "; " + hint); };
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail(std::string(name) + " must be positive, found " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("emb_size", emb_size);
  positive("key_size", key_size);
  positive("num_q_heads", num_q_heads);
  positive("num_kv_heads", num_kv_heads);
  positive("num_layers", num_layers);
  positive("num_experts", num_experts);
  positive("num_selected_experts", num_selected_experts);
  positive("sequence_len", sequence_len);
  if (!(widening_factor > 0)) fail("widening_factor must be positive");
  // Sanity bounds first, so that ffn_size() (a double -> int64 conversion) and every product below are defined.
  const int64_t kMax = int64_t{1} << 24;
  for (auto [name, v] : {std::pair{"vocab_size", vocab_size}, {"emb_size", emb_size}, {"key_size", key_size},
                         {"num_q_heads", num_q_heads}, {"num_kv_heads", num_kv_heads}, {"num_layers", num_layers},
                         {"num_experts", num_experts}, {"sequence_len", sequence_len},
                         {"ffn_size", ffn_size_override}})
    if (v > kMax) fail(std::string(name) + " is " + std::to_string(v) + ", above the sane limit 2^24 = " + std::to_string(kMax));
  if (!(widening_factor * static_cast<double>(emb_size) < static_cast<double>(kMax) * 3 / 2))
    fail("widening_factor " + std::to_string(widening_factor) + " x emb_size " + std::to_string(emb_size) +
         " gives an expert width above the sane limit 2^24");
  if (ffn_size() <= 0) fail("the expert width (ffn_size) is " + std::to_string(ffn_size()) + ", it must be positive");
  auto finite_positive = [&](const char* name, double v, bool allow_zero) {
    if (!std::isfinite(v) || v < 0 || (!allow_zero && v == 0))
      fail(std::string(name) + " must be a finite " + (allow_zero ? "non-negative" : "positive") + " number, found " +
           std::to_string(v));
  };
  finite_positive("rms_norm_eps", rms_norm_eps, true);
  finite_positive("rope_base", rope_base, false);
  finite_positive("attn_logit_cap", attn_logit_cap, false);
  finite_positive("attn_output_multiplier", attn_output_multiplier, false);
  finite_positive("embedding_multiplier_scale", embedding_multiplier_scale, false);
  finite_positive("output_multiplier_scale", output_multiplier_scale, false);
  if (num_q_heads % num_kv_heads != 0)
    fail("num_q_heads (" + std::to_string(num_q_heads) + ") must be a multiple of num_kv_heads (" +
         std::to_string(num_kv_heads) + ")");
  if (key_size % 2 != 0) fail("key_size must be even for rotate-half RoPE, found " + std::to_string(key_size));
  if (num_selected_experts > num_experts)
    fail("num_selected_experts (" + std::to_string(num_selected_experts) + ") exceeds num_experts (" +
         std::to_string(num_experts) + ")");
  if (pad_token < 0 || pad_token >= vocab_size) fail("pad_token outside the vocabulary");
  if (eos_token < 0 || eos_token >= vocab_size) fail("eos_token outside the vocabulary");
  // The sizes the engine derives (weights of one tensor, the KV cache), in checked 64-bit arithmetic.
  auto product = [&](const char* what, std::initializer_list<int64_t> factors) {
    int64_t p = 1;
    for (int64_t f : factors)
      if (__builtin_mul_overflow(p, f, &p) || p > (int64_t{1} << 60))
        fail(std::string(what) + " does not fit in 64 bits (above 2^60)");
    return p;
  };
  product("the expert weights (num_experts x emb_size x ffn_size x 4 bytes)", {num_experts, emb_size, ffn_size(), 4});
  product("the embedding table (vocab_size x emb_size x 4 bytes)", {vocab_size, emb_size, 4});
  product("the query projection (emb_size x num_q_heads x key_size x 4 bytes)", {emb_size, num_q_heads, key_size, 4});
  product("the KV cache (num_layers x sequence_len x 2 x num_kv_heads x key_size x 4 bytes)",
          {num_layers, sequence_len, 2, num_kv_heads, key_size, 4});
}

std::string Config::describe() const {
  std::ostringstream o;
  o << "  vocab_size            " << vocab_size << "\n"
    << "  emb_size              " << emb_size << "\n"
    << "  key_size              " << key_size << "\n"
    << "  num_q_heads           " << num_q_heads << "\n"
    << "  num_kv_heads          " << num_kv_heads << "\n"
    << "  num_layers            " << num_layers << "\n"
    << (ffn_size_override > 0
            ? "  ffn_size              " + std::to_string(ffn_size()) + "  (stated by the file)\n"
            : "  widening_factor       " + (std::ostringstream() << widening_factor).str() + "  (ffn_size " +
                  std::to_string(ffn_size()) + ")\n")
    << "  num_experts           " << num_experts << "\n"
    << "  num_selected_experts  " << num_selected_experts << "\n"
    << "  attn_output_multiplier      " << attn_output_multiplier << "\n"
    << "  embedding_multiplier_scale  " << embedding_multiplier_scale << "\n"
    << "  output_multiplier_scale     " << output_multiplier_scale << "\n"
    << "  pad_token / eos_token / bos_token  " << pad_token << " / " << eos_token << " / " << bos_token << "\n"
    << "  sequence_len          " << sequence_len << "\n"
    << "  rms_norm_eps          " << rms_norm_eps << "\n"
    << "  rope_base             " << rope_base << "\n"
    << "  attn_logit_cap        " << attn_logit_cap << "\n";
  return o.str();
}

Config load_config_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error(path + ": config.json is not valid JSON (" + e.what() + "); fix or remove it");
  }
  if (!j.is_object()) throw Error(path + ": config.json must hold a JSON object");
  Config c;
  read_field(j, "vocab_size", c.vocab_size, path);
  read_field(j, "emb_size", c.emb_size, path);
  read_field(j, "key_size", c.key_size, path);
  read_field(j, "num_q_heads", c.num_q_heads, path);
  read_field(j, "num_kv_heads", c.num_kv_heads, path);
  read_field(j, "num_layers", c.num_layers, path);
  read_field(j, "widening_factor", c.widening_factor, path);
  read_field(j, "num_experts", c.num_experts, path);
  read_field(j, "num_selected_experts", c.num_selected_experts, path);
  read_field(j, "attn_output_multiplier", c.attn_output_multiplier, path);
  read_field(j, "embedding_multiplier_scale", c.embedding_multiplier_scale, path);
  read_field(j, "output_multiplier_scale", c.output_multiplier_scale, path);
  read_field(j, "pad_token", c.pad_token, path);
  read_field(j, "eos_token", c.eos_token, path);
  read_field(j, "sequence_len", c.sequence_len, path);
  if (auto d = j.find("derived"); d != j.end() && d->is_object()) {
    read_field(*d, "rms_norm_eps", c.rms_norm_eps, path);
    read_field(*d, "rope_base_exponent", c.rope_base, path);
    read_field(*d, "attn_logit_cap", c.attn_logit_cap, path);
    int64_t ffn = 0;
    read_field(*d, "ffn_size", ffn, path);
    if (ffn != 0 && ffn != c.ffn_size())
      throw Error(path + ": derived.ffn_size is " + std::to_string(ffn) + " but widening_factor " +
                  std::to_string(c.widening_factor) + " and emb_size " + std::to_string(c.emb_size) +
                  " give " + std::to_string(c.ffn_size()) + " (model.py ffn_size); fix config.json");
  }
  c.validate(path);
  return c;
}

namespace {

nlohmann::ordered_json run_py_fields(const Config& c) {
  nlohmann::ordered_json j;
  j["vocab_size"] = c.vocab_size;
  j["emb_size"] = c.emb_size;
  j["key_size"] = c.key_size;
  j["num_q_heads"] = c.num_q_heads;
  j["num_kv_heads"] = c.num_kv_heads;
  j["num_layers"] = c.num_layers;
  if (c.widening_factor == static_cast<double>(static_cast<int64_t>(c.widening_factor)))
    j["widening_factor"] = static_cast<int64_t>(c.widening_factor);
  else
    j["widening_factor"] = c.widening_factor;
  j["num_experts"] = c.num_experts;
  j["num_selected_experts"] = c.num_selected_experts;
  j["attn_output_multiplier"] = c.attn_output_multiplier;
  j["embedding_multiplier_scale"] = c.embedding_multiplier_scale;
  j["output_multiplier_scale"] = c.output_multiplier_scale;
  j["pad_token"] = c.pad_token;
  j["eos_token"] = c.eos_token;
  j["sequence_len"] = c.sequence_len;
  std::vector<int64_t> order;
  for (int64_t i = 0; i < c.num_layers; ++i) order.push_back(i);
  std::sort(order.begin(), order.end(),
            [](int64_t a, int64_t b) { return std::to_string(a) < std::to_string(b); });
  j["derived"] = {{"ffn_size", c.ffn_size()},
                  {"rms_norm_eps", c.rms_norm_eps},
                  {"rope_base_exponent", c.rope_base},
                  {"attn_logit_cap", c.attn_logit_cap},
                  {"num_tensor_files", 2 + 12 * c.num_layers},
                  {"layer_file_order", order},
                  {"tied_embeddings", true}};
  return j;
}

}  // namespace

std::string config_to_json(const Config& c, const std::string& preset, uint64_t seed) {
  nlohmann::ordered_json j = run_py_fields(c);
  j["generator"] = {{"script", "groak synth"}, {"preset", preset}, {"seed", seed}, {"format_version", 1}};
  return j.dump(2) + "\n";
}

std::string config_to_json_converted(const Config& c, const std::string& source, bool random_weights) {
  nlohmann::ordered_json j = run_py_fields(c.ffn_size_override > 0 ? c.with_widening_for_ffn() : c);
  j["generator"] = {
      {"script", "groak convert"}, {"source", source}, {"random_weights", random_weights}, {"format_version", 1}};
  return j.dump(2) + "\n";
}

Config Config::with_widening_for_ffn() const {
  Config c = *this;
  const int64_t f = ffn_size();
  c.ffn_size_override = 0;
  // int(w * d) * 2 // 3 == f for w = 1.5 f / d when 1.5 f is whole (f even), before the rounding up to 8.
  c.widening_factor = 1.5 * static_cast<double>(f) / static_cast<double>(emb_size);
  if (c.ffn_size() != f)
    throw Error("the expert width " + std::to_string(f) + " is not what model.py's ffn_size() gives for any "
                "widening factor at emb_size " + std::to_string(emb_size) + " (it rounds up to a multiple of 8); "
                "xAI's config.json cannot state it");
  return c;
}

}  // namespace groak
