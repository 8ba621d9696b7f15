// Probes: what grok_forward shows an observer while it runs (groak inspect, groak experts, the server's
// `inspect` extension). A probe is a visitor the workspace carries (Workspace::probe), like the phase clock
// of `bench --profile`: null means off, and the forward pass then does exactly what it does without one.
// A probe only reads; every pointer it gets is valid for the call alone. The math never depends on it, so
// logits are bit-identical with and without (tests/probe_test.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "model/batch.h"

namespace groak {

// Where in a layer the residual stream is shown (model.py DecoderLayer):
//   LayerInput     h                         (before the attention block)
//   AfterAttention h + rms_norm_1(attn(..))  (after the attention block, before the MoE block)
//   LayerOutput    h + rms_norm_3(moe(..))   (after the MoE block: what the next layer reads)
enum class ResidualPoint : uint8_t { LayerInput, AfterAttention, LayerOutput };
inline constexpr int kResidualPoints = 3;

class ForwardProbe {
 public:
  virtual ~ForwardProbe() = default;
  // A pass starts: the batch whose token indices t the calls below use.
  virtual void begin(const Batch& batch) = 0;
  // The residual stream h [T, d] at one point of layer `layer` (from the main thread, between kernels).
  virtual void residual(int64_t layer, ResidualPoint at, const float* h, int64_t T, int64_t d) = 0;
  // The router of batch token t: probs [E] (softmax over all experts) and the chosen [k] experts, largest
  // first; the gates are probs[chosen[j]] (model.py does not renormalise them).
  virtual void router(int64_t layer, int64_t t, const float* probs, int64_t E, const int64_t* chosen, int64_t k) = 0;
  // Attention of batch token t, query head `head`, over keys 0 … S-1 of its sequence: the logits after the
  // 30·tanh cap (before the key-padding mask), then the softmax weights that multiply V. Called from the
  // pool's threads, several (t, head) at once: an implementation writes only that pair's slots.
  virtual void attention_logits(int64_t layer, int64_t t, int64_t head, const float* capped, int64_t S) = 0;
  virtual void attention_weights(int64_t layer, int64_t t, int64_t head, const float* weights, int64_t S) = 0;
};

// Shows one pass to several probes (a server whose requests each record their own sequence), in order.
class ProbeFanout : public ForwardProbe {
 public:
  std::vector<ForwardProbe*> probes;
  void begin(const Batch& b) override {
    for (ForwardProbe* p : probes) p->begin(b);
  }
  void residual(int64_t l, ResidualPoint at, const float* h, int64_t T, int64_t d) override {
    for (ForwardProbe* p : probes) p->residual(l, at, h, T, d);
  }
  void router(int64_t l, int64_t t, const float* probs, int64_t E, const int64_t* chosen, int64_t k) override {
    for (ForwardProbe* p : probes) p->router(l, t, probs, E, chosen, k);
  }
  void attention_logits(int64_t l, int64_t t, int64_t head, const float* capped, int64_t S) override {
    for (ForwardProbe* p : probes) p->attention_logits(l, t, head, capped, S);
  }
  void attention_weights(int64_t l, int64_t t, int64_t head, const float* w, int64_t S) override {
    for (ForwardProbe* p : probes) p->attention_weights(l, t, head, w, S);
  }
};

}  // namespace groak
