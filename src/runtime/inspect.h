// What one sequence does inside the model (groak inspect, the server's `inspect` extension): a ForwardProbe
// that records, per token and layer, the router's probabilities and choice, the residual stream's RMS at
// the three points of a layer, attention summaries per head (entropy, the weight on position 0 — the
// "attention sink" —, the top positions, how many capped logits saturate), full attention maps while they
// fit a fixed budget, and the logit lens. Every buffer is sized in the constructor, so a pass with the
// probe on allocates nothing either (the logit lens's activation buffer may grow once).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/context.h"
#include "model/probe.h"
#include "model/weights.h"

namespace groak {

// Full attention maps [layers, heads, P, P] are kept only up to this many floats (64 MiB); past it only
// the summaries are (their size grows like P, not P²). 2,048 tokens × 2 layers × 48 heads of grok1-2l is
// 403 M floats, so it gets summaries; tiny-a (2 layers × 4 heads) keeps full maps up to 1,448 tokens.
inline constexpr int64_t kFullAttentionMaxFloats = int64_t{16} << 20;
// Top positions kept per (token, layer, head).
inline constexpr int64_t kAttentionTop = 4;
// A capped attention logit 30·tanh(x/30) counts as saturated when its size is at least this share of the
// cap (|x| ≥ 44.2 before the cap: the cap then bends it by more than 10 %).
inline constexpr double kCapSaturation = 0.9;
// Tokens whose logit lens is computed in one product (the [rows, vocab] buffer: 4 MiB for Grok-1).
inline constexpr int64_t kLensRows = 8;

struct InspectOptions {
  std::vector<int64_t> layers{};  // layers whose attention and logit lens are recorded; empty = every layer
  int64_t positions = 0;        // positions 0 … positions-1 of the sequence are recorded (later ones not)
  int32_t seq = 0;              // the sequence recorded (others in the same batch are ignored)
  int64_t lens_top = 5;         // logit-lens tokens per (token, layer); 0 = no logit lens
  int64_t lens_from = 0;        // the logit lens only for positions from here on (a server: the reply's)
  bool attention = true;        // false: no attention summaries or maps (routing, residual and lens only)
};

class Inspector : public ForwardProbe {
 public:
  // Throws groak::Error for a layer outside the model, or a sharded model (the lens needs the whole head).
  Inspector(Context& ctx, const Model& model, InspectOptions opt);

  void begin(const Batch& batch) override;
  void residual(int64_t layer, ResidualPoint at, const float* h, int64_t T, int64_t d) override;
  void router(int64_t layer, int64_t t, const float* probs, int64_t E, const int64_t* chosen, int64_t k) override;
  void attention_logits(int64_t layer, int64_t t, int64_t head, const float* capped, int64_t S) override;
  void attention_weights(int64_t layer, int64_t t, int64_t head, const float* weights, int64_t S) override;

  // Sizes: P positions, L layers, N selected layers, H query heads, E experts, K chosen per token.
  int64_t P, L, N, H, E, K, lens_k;
  std::vector<int64_t> layers;        // [N] the selected layers, ascending
  std::vector<float> router_probs;    // [P, L, E] softmax over all experts
  std::vector<int32_t> chosen;        // [P, L, K] the top-K experts, largest probability first
  std::vector<float> residual_rms;    // [P, L, 3] RMS of h at the ResidualPoints
  std::vector<float> attn_entropy;    // [P, N, H] entropy of the attention weights, nats
  std::vector<float> attn_sink;       // [P, N, H] weight on position 0
  std::vector<float> attn_saturated;  // [P, N, H] share of capped logits with |v| ≥ kCapSaturation·cap
  std::vector<int32_t> attn_top_pos;  // [P, N, H, kAttentionTop] largest weights' positions (-1: none)
  std::vector<float> attn_top_w;      // [P, N, H, kAttentionTop] their weights
  std::vector<float> attn_full;       // [N, H, P, P] row p: query p's weights over keys 0 … p; empty past the cap
  std::vector<int32_t> lens_ids;      // [P, N, lens_k] logit lens: the most likely tokens after this layer
  std::vector<float> lens_probs;      // [P, N, lens_k] their probabilities (softmax over the vocabulary)
  int64_t recorded = 0;               // positions seen so far (the highest recorded position + 1)

  // Derived per (position, layer): the gate entropy (nats, over all E probabilities) and the routing
  // margin p[K-th] − p[(K+1)-th] (how close the choice was).
  float router_entropy(int64_t p, int64_t l) const;
  float routing_margin(int64_t p, int64_t l) const;

 private:
  // The slot of batch token t, or -1 when it is not recorded.
  int64_t slot(int64_t t) const;
  void logit_lens(int64_t n_sel, const float* h, int64_t T, int64_t d);

  Context& ctx_;
  const Model& model_;
  InspectOptions opt_;
  double cap_;
  std::vector<int32_t> selected_of_;  // [L] index into layers, -1 = not selected
  const Batch* batch_ = nullptr;
  std::vector<float> lens_in_, lens_out_;  // [kLensRows, d], [kLensRows, vocab]
  std::vector<int64_t> lens_pos_;          // [kLensRows]
};

}  // namespace groak
