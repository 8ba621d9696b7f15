// The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata.
#pragma once
#include <optional>

#include "io/gguf.h"
#include "tokenizer/vocab_model.h"

namespace groak {

// nullopt when the file has no tokenizer.ggml.tokens. Special ids absent from the metadata keep
// Grok-1's values (pad 0, bos 1, eos 2, unk 3: older converters omitted them).
std::optional<VocabSpec> gguf_vocab(const GgufFile& g);

}  // namespace groak
