#include "runtime/decoder.h"

#include "util/error.h"

namespace groak {

const char* stop_reason_text(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "end of sequence (EOS)";
    case StopReason::MaxTokens: return "token limit (-n)";
    case StopReason::StopString: return "stop string";
    case StopReason::ContextFull: return "end of the context";
    case StopReason::Cancelled: return "interrupted";
    case StopReason::Error: return "error";
    case StopReason::GrammarEnd: return "the grammar's end";
  }
  return "?";
}

void check_tokenizer(const Tokenizer& tok, const Config& c) {
  if (tok.vocab_size() != c.vocab_size)
    throw Error("the tokenizer has " + std::to_string(tok.vocab_size()) + " pieces but the model's vocabulary is " +
                std::to_string(c.vocab_size) + "; use the tokenizer that belongs to this model (--tokenizer)");
}

Decoder::Decoder(const Engine& engine, int32_t seq, const Tokenizer& tok, const DecodeOptions& opt,
                 std::span<const int32_t> prompt)
    : engine_(engine),
      seq_(seq),
      tok_(tok),
      opt_(opt),
      sampler_(opt.sampling, static_cast<int>(engine.model().config.vocab_size)),
      text_(tok),
      filter_(opt_.stop),
      history_(prompt.begin(), prompt.end()) {
  check_tokenizer(tok, engine.model().config);
  if (opt_.grammar) matcher_.emplace(opt_.grammar);
  for (int32_t id : prompt) text_.push(id);
}

Decoder::Token Decoder::next(const float* logits) {
  Token t;
  const int64_t V = engine_.model().config.vocab_size;
  // NaN/Inf logits would be sampled as some token and print garbage: end with the layer instead.
  if (std::string why = engine_.nonfinite_logits(logits, V, engine_.position(seq_) - 1); !why.empty()) {
    error_ = std::move(why);
    end(StopReason::Error);
    return t;
  }
  const float* choose = logits;
  if (matcher_) {
    // The grammar's verdict on every token, then the sampler among those left. Too ambiguous or too deep
    // a grammar ends the sequence with the reason.
    try {
      masked_.assign(logits, logits + V);
      if (!matcher_->apply(masked_.data())) {
        error_ = "the grammar allows no token at this point of the output (it needs characters the vocabulary cannot write)";
        end(StopReason::Error);
        return t;
      }
    } catch (const GrammarError& e) {
      error_ = e.what();
      end(StopReason::Error);
      return t;
    }
    choose = masked_.data();
  }
  const int32_t id = sampler_.sample(choose, history_);
  if (id == tok_.eos_id() && (!opt_.ignore_eos || matcher_)) {
    end(StopReason::Eos);
    return t;
  }
  if (matcher_ && !matcher_->accept(id)) {  // cannot happen: the mask allowed it
    error_ = "internal error: the sampled token " + std::to_string(id) + " does not fit the grammar";
    end(StopReason::Error);
    return t;
  }
  t.id = id;
  tokens_.push_back(id);
  history_.push_back(id);
  bool hit = false;
  t.text = filter_.push(text_.push(id), &hit);
  if (hit)
    end(StopReason::StopString);
  else if (matcher_ && matcher_->must_end())
    end(StopReason::GrammarEnd);
  else if (opt_.max_tokens > 0 && generated() >= opt_.max_tokens)
    end(StopReason::MaxTokens);
  else if (engine_.position(seq_) >= engine_.context())
    end(StopReason::ContextFull);  // no room to run this token
  return t;
}

void Decoder::cancel() { end(StopReason::Cancelled); }

std::string Decoder::finish_text() {
  if (reason_ == StopReason::StopString || reason_ == StopReason::Error) return {};
  bool hit = false;
  std::string rest = filter_.push(text_.flush(), &hit);
  if (!hit) rest += filter_.flush();
  return rest;
}

}  // namespace groak
