#include "runtime/session.h"

#include "util/error.h"

namespace groak {

namespace {
int64_t checked_context(const Config& c, int64_t context) {
  if (context < 0) throw Error("context size must be positive, got " + std::to_string(context));
  if (context == 0) return c.sequence_len;
  if (context > c.sequence_len)
    throw Error("context of " + std::to_string(context) + " tokens exceeds the model's maximum sequence_len of " +
                std::to_string(c.sequence_len) + "; use at most " + std::to_string(c.sequence_len));
  return context;
}
}  // namespace

Session::Session(const Model& model, int64_t context, const Kernels& kernels)
    : model_(model),
      kernels_(kernels),
      cache_(model.config.num_layers, checked_context(model.config, context), model.config.kv_size()) {}

void Session::eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows) {
  const Config& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error("no tokens to evaluate");
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
      throw Error("token id " + std::to_string(tokens[t]) + " (at index " + std::to_string(t) +
                  ") is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  if (position() + T > context()) {
    throw Error("context full: " + std::to_string(position()) + " tokens already in the context + " +
                std::to_string(T) + " new = " + std::to_string(position() + T) + " exceeds the context of " +
                std::to_string(context()) + " tokens" +
                (context() < c.sequence_len ? " (raise it, up to sequence_len " + std::to_string(c.sequence_len) + ")"
                                            : " (the model's maximum sequence_len)"));
  }
  logits.resize(static_cast<size_t>((rows == LogitRows::All ? T : 1) * c.vocab_size));
  grok_forward(model_, kernels_, cache_, tokens.data(), T, logits.data(), rows);
}

}  // namespace groak
