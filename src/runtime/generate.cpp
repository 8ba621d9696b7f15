#include "runtime/generate.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "runtime/stop_filter.h"
#include "util/error.h"

namespace groak {

const char* stop_reason_text(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "end of sequence (EOS)";
    case StopReason::MaxTokens: return "token limit (-n)";
    case StopReason::StopString: return "stop string";
    case StopReason::ContextFull: return "end of the context";
    case StopReason::Cancelled: return "interrupted";
  }
  return "?";
}

namespace {

// NaN/Inf logits would be sampled as some token and print garbage with exit 0: stop with the layer instead.
void require_finite(const std::vector<float>& logits, const Session& s) {
  for (float v : logits) {
    if (std::isfinite(v)) continue;
    const int64_t l = s.first_nonfinite_layer();
    throw Error("the model produced non-finite logits (NaN/Inf) at position " + std::to_string(s.position() - 1) +
                (l >= 0 ? "; they first appear in the output of layer " + std::to_string(l)
                        : "; the layers were finite, so the final norm or the LM head (in_out_embed) made them") +
                "; the weights hold NaN/Inf or overflow float32: find the tensor with `groak info --model M "
                "--check-weights`, then re-download or re-convert the model");
  }
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateStats generate(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<void(const std::string&)>& on_text,
                       const std::atomic<bool>* cancel) {
  const Config& c = session.model().config;
  if (prompt.empty()) throw Error("the prompt is empty (no tokens); give some text, or --bos to start from BOS");
  if (static_cast<int64_t>(prompt.size()) > session.context() - session.position()) {
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                std::to_string(session.context() - session.position()) +
                "; shorten the prompt or raise --ctx (the model allows up to " + std::to_string(c.sequence_len) + ")");
  }
  // Fewer pieces than the vocabulary would fail mid-generation on the first id the tokenizer lacks.
  if (tok.vocab_size() != c.vocab_size)
    throw Error("the tokenizer has " + std::to_string(tok.vocab_size()) + " pieces but the model's vocabulary is " +
                std::to_string(c.vocab_size) + "; use the tokenizer that belongs to this model (--tokenizer)");
  validate(opt.sampling);

  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  Sampler sampler(opt.sampling, static_cast<int>(c.vocab_size));
  TextStream text(tok);
  // Prime the stream with the prompt so that the continuation keeps its leading space (decode strips
  // the space of the first piece only) and bytes split across the boundary join up.
  for (int32_t id : prompt) text.push(id);
  StopFilter filter(opt.stop);
  std::vector<int32_t> history = prompt;  // for the repetition penalty
  std::vector<float> logits;

  const auto t0 = std::chrono::steady_clock::now();
  // Prefill in chunks of the session's batch, so that Ctrl-C during a long prompt is seen at the next
  // chunk boundary (the session bounds its scratch by the batch either way).
  bool cancelled = false;
  for (size_t p0 = 0; p0 < prompt.size() && !cancelled; p0 += static_cast<size_t>(session.batch())) {
    const size_t n = std::min(prompt.size() - p0, static_cast<size_t>(session.batch()));
    session.eval(std::span<const int32_t>(prompt.data() + p0, n), logits, LogitRows::LastOnly);
    cancelled = cancel && cancel->load();
  }
  require_finite(logits, session);
  st.prefill_seconds = since(t0);
  const auto t_decode = std::chrono::steady_clock::now();

  bool stop_hit = false;
  for (;;) {
    if (cancelled || (cancel && cancel->load())) {
      st.reason = StopReason::Cancelled;
      break;
    }
    const int32_t next = sampler.sample(logits.data(), history);
    if (st.generated_tokens == 0) st.first_token_seconds = since(t0);
    if (next == tok.eos_id() && !opt.ignore_eos) {
      st.reason = StopReason::Eos;
      break;
    }
    ++st.generated_tokens;
    st.tokens.push_back(next);
    history.push_back(next);
    std::string shown = filter.push(text.push(next), &stop_hit);
    if (!shown.empty()) on_text(shown);
    if (stop_hit) {
      st.reason = StopReason::StopString;
      break;
    }
    if (opt.max_tokens > 0 && st.generated_tokens >= opt.max_tokens) {
      st.reason = StopReason::MaxTokens;
      break;
    }
    if (session.position() >= session.context()) {
      st.reason = StopReason::ContextFull;
      break;
    }
    session.eval(std::span<const int32_t>(&next, 1), logits, LogitRows::LastOnly);
    require_finite(logits, session);
  }
  if (!stop_hit) {
    std::string rest = filter.push(text.flush(), &stop_hit);
    rest += stop_hit ? std::string() : filter.flush();
    if (!rest.empty()) on_text(rest);
  }
  st.decode_seconds = since(t_decode);
  return st;
}

}  // namespace groak
