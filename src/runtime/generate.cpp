#include "runtime/generate.h"

#include <chrono>

#include "util/error.h"

namespace groak {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateStats generate(Engine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<void(const std::string&)>& on_text,
                       const std::atomic<bool>* cancel) {
  const Config& c = engine.model().config;
  if (prompt.empty()) throw Error("the prompt is empty (no tokens); give some text, or --bos to start from BOS");
  if (static_cast<int64_t>(prompt.size()) > engine.context() - engine.position()) {
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                std::to_string(engine.context() - engine.position()) +
                "; shorten the prompt or raise --ctx (the model allows up to " + std::to_string(c.sequence_len) + ")");
  }
  Decoder dec(engine, 0, tok, opt, prompt);  // checks the tokenizer and the sampling settings first

  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  // Prefill in chunks of the engine's batch, so that Ctrl-C during a long prompt is seen at the next
  // chunk boundary (the engine bounds its scratch by the batch either way).
  bool cancelled = false;
  for (size_t p0 = 0; p0 < prompt.size() && !cancelled; p0 += static_cast<size_t>(engine.batch())) {
    const size_t n = std::min(prompt.size() - p0, static_cast<size_t>(engine.batch()));
    engine.eval(std::span<const int32_t>(prompt.data() + p0, n), logits, LogitRows::LastOnly);
    cancelled = cancel && cancel->load();
  }
  st.prefill_seconds = since(t0);
  const auto t_decode = std::chrono::steady_clock::now();

  for (;;) {
    if (cancelled || (cancel && cancel->load())) {
      dec.cancel();
      break;
    }
    const Decoder::Token t = dec.next(logits.data());
    if (st.first_token_seconds == 0) st.first_token_seconds = since(t0);
    if (!t.text.empty()) on_text(t.text);
    if (dec.done()) break;
    engine.eval(std::span<const int32_t>(&t.id, 1), logits, LogitRows::LastOnly);
  }
  if (dec.reason() == StopReason::Error) throw Error(dec.error());
  if (std::string rest = dec.finish_text(); !rest.empty()) on_text(rest);
  st.decode_seconds = since(t_decode);
  st.generated_tokens = dec.generated();
  st.tokens = dec.tokens();
  st.reason = dec.reason();
  return st;
}

}  // namespace groak
