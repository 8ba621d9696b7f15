// Expert usage over a text (groak experts): a ForwardProbe that counts, per layer, how often each expert
// is chosen, which pairs are chosen together, and how often a token reuses an expert of the token before
// it in its sequence (what an expert cache on a machine smaller than the model would hit). Sized once.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/probe.h"

namespace groak {

class ExpertCounter : public ForwardProbe {
 public:
  // sequences: of the engine it watches (each keeps its own previous token).
  explicit ExpertCounter(const Config& c, int64_t sequences = 1);

  void begin(const Batch& batch) override { batch_ = &batch; }
  void residual(int64_t, ResidualPoint, const float*, int64_t, int64_t) override {}
  void router(int64_t layer, int64_t t, const float* probs, int64_t E, const int64_t* chosen, int64_t k) override;
  void attention_logits(int64_t, int64_t, int64_t, const float*, int64_t) override {}
  void attention_weights(int64_t, int64_t, int64_t, const float*, int64_t) override {}

  int64_t L, E, K;
  std::vector<int64_t> tokens;   // [L] tokens routed (the same for every layer)
  std::vector<int64_t> counts;   // [L, E] times expert e was among a token's top-K
  std::vector<int64_t> pairs;    // [L, E, E] times e and f were chosen together (symmetric, 0 on the diagonal)
  std::vector<int64_t> reused;   // [L] chosen experts that the previous token of the sequence also chose
  std::vector<int64_t> follows;  // [L] tokens that had a previous token (position > 0)

  // Load imbalance of a layer: the busiest expert's count over the mean (1 = perfectly even; E/K = one
  // expert takes every token); 0 before any token.
  double imbalance(int64_t layer) const;
  // Share of a token's K experts that the previous token also used (0 … 1); 0 before any pair.
  double reuse_rate(int64_t layer) const;

 private:
  const Batch* batch_ = nullptr;
  std::vector<int64_t> prev_;      // [sequences, L, K] the last token's choice per sequence and layer
  std::vector<int64_t> prev_pos_;  // [sequences, L] its position (-1 = none)
};

}  // namespace groak
