#include "tokenizer/gguf_vocab.h"

#include "util/error.h"

namespace groak {

std::optional<VocabSpec> gguf_vocab(const GgufFile& g) {
  if (!g.has("tokenizer.ggml.tokens")) return std::nullopt;
  VocabSpec v;
  v.model = g.has("tokenizer.ggml.model") ? g.get_string("tokenizer.ggml.model") : "llama";
  v.tokens = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (g.has("tokenizer.ggml.scores")) {
    v.scores = g.get_f32_array("tokenizer.ggml.scores");
  } else {
    v.scores.assign(n, 0.f);
  }
  if (g.has("tokenizer.ggml.token_type")) {
    for (int64_t t : g.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<int32_t>(t));
  } else {
    v.types.assign(n, static_cast<int32_t>(TokenType::kNormal));
  }
  auto id = [&](const char* key, int32_t fallback) {
    return g.has(key) ? static_cast<int32_t>(g.get_u32(key)) : fallback;
  };
  v.bos = id("tokenizer.ggml.bos_token_id", 1);
  v.eos = id("tokenizer.ggml.eos_token_id", 2);
  v.unk = id("tokenizer.ggml.unknown_token_id", 3);
  v.pad = id("tokenizer.ggml.padding_token_id", 0);
  return v;
}

}  // namespace groak
