// The model's own log-probabilities of tokens (log-softmax of the raw logits, before temperature and
// filters): what OpenAI's `logprobs` report, and what the look-inside tools read.
#pragma once
#include <cstdint>
#include <vector>

namespace groak {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;  // natural log of the model's probability
};

struct Logprobs {
  float logprob = 0;              // of the token asked about
  std::vector<TokenLogprob> top;  // the `top` most likely tokens, most likely first (ties: lower id first)
};

// logits: [vocab]. Accumulates in f64 (a sum over 131072 exponentials).
Logprobs token_logprobs(const float* logits, int64_t vocab, int32_t id, int top);

}  // namespace groak
