// Text generation for one sequence: prefill the prompt in chunks of the engine's batch, then decode one
// token at a time through a Decoder, streaming complete UTF-8 text to a callback.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/decoder.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"

namespace groak {

using GenerateOptions = DecodeOptions;

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;   // prompt evaluation (all its chunks)
  double decode_seconds = 0;    // all later tokens
  double first_token_seconds = 0;  // from the start to the first generated token being known
  StopReason reason = StopReason::MaxTokens;
  std::vector<int32_t> tokens;  // the generated ids (EOS excluded)
};

// Streams text through on_text as it becomes complete UTF-8 (held back while it could still turn
// into a stop string). `cancel` (may be null) ends generation cleanly when set (e.g. Ctrl-C): at the next
// prompt chunk boundary during the prefill, before the next token while decoding. Runs sequence 0 of
// the engine, continuing what its cache holds. Throws groak::Error for an empty prompt, one that does
// not fit the context, a tokenizer of another vocabulary, or non-finite logits (naming the layer).
GenerateStats generate(Engine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<void(const std::string&)>& on_text,
                       const std::atomic<bool>* cancel = nullptr);

}  // namespace groak
