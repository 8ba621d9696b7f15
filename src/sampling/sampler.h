// Next-token sampling: repetition penalty → temperature → top-k → top-p (nucleus) → min-p → draw.
// The nucleus filter follows the official runner exactly (shared/docs/GROK1.md §5); the other
// filters follow llama.cpp, whose defaults are used here. Everything is deterministic for a seed.
#pragma once
#include <cstdint>
#include <vector>

namespace groak {

struct SamplingParams {
  // Logits are divided by this. 0 = greedy: argmax of the (penalised) logits, ties → lowest id.
  // The official run.py uses 0.01, which is effectively greedy. A temperature so small that a logit
  // divided by it overflows f32 is greedy too (the limit), never NaN probabilities.
  float temperature = 0.8f;
  // Keep only the k most probable tokens (ties at the cut → lower ids). 0 = off.
  int top_k = 40;
  // Nucleus, official semantics: the smallest high-probability set whose mass is above top_p, with
  // every token tied at the threshold logit kept. 1 = off (keeps all); 0 = keep only the maximum.
  float top_p = 0.95f;
  // Drop tokens with p < min_p · p_max (p over the tokens still kept). 0 = off.
  float min_p = 0.05f;
  // CTRL/llama.cpp penalty on each distinct token among the last repeat_last_n of the history:
  // logit > 0 → logit / penalty, else logit × penalty. 1 = off.
  float repeat_penalty = 1.0f;
  // How much history the penalty looks at. 0 = none, -1 = all of it.
  int repeat_last_n = 64;
  // Seeds the sampler's own xoshiro256** generator (run.py uses rng_seed 42).
  uint64_t seed = 42;
};

// Throws groak::Error naming the first out-of-range field and its valid range.
void validate(const SamplingParams& params);

// The probability of every token after all filters: [vocab], zero for removed tokens, summing to 1
// (a one-hot vector when temperature is 0). Ids in `history` outside [0, vocab) are ignored.
// Throws groak::Error for invalid params.
std::vector<float> sampling_distribution(const float* logits /*[vocab]*/, int vocab,
                                         const SamplingParams& params,
                                         const std::vector<int32_t>& history);

// xoshiro256** seeded through splitmix64 (Vigna): defined bit for bit, unlike the std::
// distributions, so a seed gives the same tokens with every standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits
  static uint64_t splitmix64(uint64_t& state);

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  // Throws groak::Error for invalid params or vocab <= 0.
  Sampler(SamplingParams params, int vocab);
  // Picks the next token from logits [vocab] given the tokens so far (prompt + generated), which
  // feed the repetition penalty. Does not throw.
  int32_t sample(const float* logits /*[vocab]*/, const std::vector<int32_t>& history);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  int vocab_;
  Rng rng_;
};

}  // namespace groak
