// One sequence's decoding, the same for `groak generate`, `groak chat` and every server slot: the
// sampler, the UTF-8 text stream, stop strings, the history the repetition penalty reads, the limits
// (token count, context) and why the sequence ended. The caller runs the engine; the decoder turns each
// row of logits into the next token and the text it releases.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "grammar/matcher.h"
#include "runtime/engine.h"
#include "runtime/stop_filter.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace groak {

struct DecodeOptions {
  int64_t max_tokens = 128;       // tokens to generate at most; < 0 = no limit (EOS or the context ends)
  SamplingParams sampling;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any of these
  bool ignore_eos = false;        // keep going past EOS (the official runner never checks it)
  // Constrained output (grammar/matcher.h): only tokens the grammar allows are sampled, EOS only where
  // it may end, and the sequence ends once the grammar is complete. Null: unconstrained.
  std::shared_ptr<CompiledGrammar> grammar;
};

// GrammarEnd: the constrained output is complete (nothing more can follow).
enum class StopReason { Eos, MaxTokens, StopString, ContextFull, Cancelled, Error, GrammarEnd };
const char* stop_reason_text(StopReason r);  // for people: "end of sequence (EOS)", "token limit (-n)", …

// Throws groak::Error unless the tokenizer has exactly the model's vocabulary: an id the tokenizer
// lacks would fail mid-generation, a piece the model lacks could never be produced.
void check_tokenizer(const Tokenizer& tok, const Config& c);

class Decoder {
 public:
  // Decodes sequence `seq` of `engine`, whose cache holds `prompt` (or is about to): the prompt primes
  // the text stream (so the continuation keeps its leading space and split characters join up) and the
  // history. Throws groak::Error for invalid sampling settings.
  Decoder(const Engine& engine, int32_t seq, const Tokenizer& tok, const DecodeOptions& opt,
          std::span<const int32_t> prompt);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  struct Token {
    int32_t id = -1;   // -1: the sequence ended without a token (EOS, non-finite logits)
    std::string text;  // text this token releases (stop strings and split characters hold text back)
  };
  // Picks the token after the sequence from logits [vocab] and ends the sequence when it is EOS, when a
  // stop string appears, at the token limit, when the context has no room to run it, or when the logits
  // are not finite (StopReason::Error; error() says why and where). Call only while !done().
  Token next(const float* logits);

  bool done() const { return reason_.has_value(); }
  StopReason reason() const { return reason_.value_or(StopReason::MaxTokens); }
  const std::string& error() const { return error_; }
  const std::string& stop_string() const { return filter_.matched(); }  // StopReason::StopString: which one
  void cancel();  // ends the sequence (StopReason::Cancelled) unless it has ended
  // The text still held back (an unfinished character, a partial stop string that never completed),
  // unless a stop string or an error ended the sequence. Call once, at the end.
  std::string finish_text();

  int64_t generated() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // generated ids, EOS excluded
  int32_t seq() const { return seq_; }

 private:
  void end(StopReason r) { if (!reason_) reason_ = r; }
  const Engine& engine_;
  const int32_t seq_;
  const Tokenizer& tok_;
  const DecodeOptions opt_;
  Sampler sampler_;
  TextStream text_;
  StopFilter filter_;  // reads opt_.stop
  std::optional<GrammarMatcher> matcher_;  // opt_.grammar's state
  std::vector<float> masked_;              // [vocab] the logits with what the grammar forbids at -inf
  std::vector<int32_t> history_;  // prompt + generated, for the repetition penalty
  std::vector<int32_t> tokens_;
  std::optional<StopReason> reason_;
  std::string error_;
};

}  // namespace groak
