// Text generation: prefill the prompt in chunks of the session's batch, then sample and decode one token
// at a time, streaming complete UTF-8 text to a callback.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace groak {

struct GenerateOptions {
  int64_t max_tokens = 128;          // -n: tokens to generate at most; < 0 = no limit (EOS or the context ends)
  SamplingParams sampling;
  std::vector<std::string> stop;     // generation ends before the first occurrence of any of these
  bool ignore_eos = false;           // keep going past EOS (the official runner never checks it)
};

enum class StopReason { Eos, MaxTokens, StopString, ContextFull, Cancelled };
const char* stop_reason_text(StopReason r);

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
// prompt chunk boundary during the prefill, before the next token while decoding.
// Throws groak::Error for an empty prompt or one that does not fit the session's context.
GenerateStats generate(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<void(const std::string&)>& on_text,
                       const std::atomic<bool>* cancel = nullptr);

}  // namespace groak
