// TokenVocab from a tokenizer: the one part of the grammar floor that needs SentencePiece (the matcher and
// the fuzz targets do not).
#include "grammar/matcher.h"
#include "tokenizer/tokenizer.h"

namespace groak {

std::shared_ptr<const TokenVocab> TokenVocab::of(const Tokenizer& tok) {
  std::vector<std::string> bytes(static_cast<size_t>(tok.vocab_size()));
  constexpr int32_t kUnknown = 2, kControl = 3, kUnused = 5;  // GGUF token types (tokenizer/vocab_model.h)
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const int32_t type = tok.gguf_type(id);
    if (type == kUnknown || type == kControl || type == kUnused) continue;
    bytes[static_cast<size_t>(id)] = token_text(tok, id);
  }
  return std::make_shared<const TokenVocab>(std::move(bytes), tok.eos_id());
}

}  // namespace groak
