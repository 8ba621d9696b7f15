// The Grok-1 forward pass (model.py semantics, f32 activations).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/probe.h"
#include "model/weights.h"
#include "util/zeroed_buffer.h"

namespace groak {

// Router selection: indices of the k largest probabilities, largest first; equal probabilities keep
// the lower expert index first (like jax.lax.top_k). probs: [E]; out: [k].
void top_k_experts(const float* probs, int64_t E, int64_t k, int64_t* out);
std::vector<int64_t> top_k_experts(const float* probs, int64_t E, int64_t k);

enum class LogitRows : uint8_t { All, LastOnly };

// Everything the forward pass writes besides the KV cache, sized once for the largest batch (llama2.c's
// RunState), so that no pass allocates. Zero-filled pages that a smaller batch never touches cost no memory.
// Seconds in each phase of the forward pass, summed over passes (groak bench --profile). attention
// includes its norms and residual add; reduce is the tensor-parallel all-reduces (0 in one process).
struct PhaseTimes {
  double embed = 0, attention = 0, router = 0, experts = 0, head = 0, reduce = 0;
  double total() const { return embed + attention + router + experts + head + reduce; }
};

class Workspace {
 public:
  // max_tokens: tokens per pass; capacity: positions per sequence; sequences: of the KV cache. Reserves
  // the context's activation buffer for the largest product too.
  Workspace(const Config& c, int64_t max_tokens, int64_t capacity, int64_t sequences, Context& ctx);
  int64_t max_tokens() const { return max_tokens_; }

  float* h;       // [T, d] residual stream
  float* a;       // [T, d] normed input of a block
  float* b;       // [T, d] block output
  float* q;       // [T, nq·hd] queries
  float* attn;    // [T, nq·hd] attention output, heads concatenated
  float* probs;   // [T, E] router probabilities
  float* xe;      // [T, d] tokens routed to one expert
  float* gate;    // [T, f] gelu branch
  float* up;      // [T, f] linear branch
  float* ye;      // [T, d] one expert's output (its part 0, model/parts.h)
  // The row-parallel products' other parts, n = config.reduction_parts (none in a model of one part):
  float* parts_y;    // [n - 1, T, d] a product's parts 1 … n-1
  float* parts_acc;  // [n - 1, T, d] the experts' gate-weighted sums of parts 1 … n-1
  float* scores;  // [threads, capacity] attention scores, one row per thread
  // Bookkeeping of one pass. The batch's tokens grouped by sequence (for the key-padding mask):
  int64_t* seq_first_pos;  // [sequences] position of the sequence's first token in this batch
  int32_t* seq_begin;      // [sequences + 1] its tokens are by_seq[seq_begin[s], seq_begin[s + 1])
  int32_t* by_seq;         // [T] batch indices, grouped by sequence, in batch order within one
  // The router's choices, grouped by expert:
  int32_t* routed_count;   // [E] tokens routed to expert e
  int32_t* routed_token;   // [E, T] which tokens (batch index), in batch order
  float* routed_gate;      // [E, T] with which gate
  int64_t* chosen;         // [k] one token's top-k experts
  // Diagnostics, not math: the first layer after which the residual stream held NaN/Inf (-1 = never), so
  // that non-finite logits can be traced to a layer.
  int64_t first_nonfinite_layer = -1;
  // Not null: each pass adds its phases' seconds here (a clock read per phase; off by default).
  PhaseTimes* phases = nullptr;
  // Not null: shown the pass (router, attention, residual stream; model/probe.h); off by default.
  ForwardProbe* probe = nullptr;
  size_t bytes() const { return mem_.bytes(); }  // the scratch memory, fixed at construction

 private:
  int64_t max_tokens_, capacity_;
  ZeroedBuffer mem_;
};

// Runs a batch: appends every token's K/V to its sequence in `kv` (positions as the batch says) and
// writes logits [n_logits, vocab] for the tokens that want them, in batch order. The caller guarantees
// the batch rule of batch.h, tokens in [0, vocab), positions < kv.capacity() and batch.size() ≤
// ws.max_tokens() (Engine checks all; check_batch says what is wrong).
// hidden (may be null): also the final-normed hidden states [n_logits, d] of those tokens (what embeddings
// pool).
void grok_forward(Context& ctx, const Model& model, const Batch& batch, KVCache& kv, Workspace& ws, float* logits,
                  float* hidden = nullptr);

// Empty when the batch can run against kv; otherwise what is wrong with it.
std::string check_batch(const Model& model, const Batch& batch, const KVCache& kv, const Workspace& ws);

}  // namespace groak
