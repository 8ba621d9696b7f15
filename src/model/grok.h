// The Grok-1 forward pass (model.py semantics, f32 activations).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace groak {

// Router selection: indices of the k largest probabilities, largest first; equal probabilities keep
// the lower expert index first (like jax.lax.top_k). probs: [E].
std::vector<int64_t> top_k_experts(const float* probs, int64_t E, int64_t k);

enum class LogitRows : uint8_t { All, LastOnly };

// Runs tokens[0, T) at positions cache.length() … cache.length()+T-1, appends their K/V to the cache and
// writes logits: [T, vocab] (LogitRows::All) or [vocab] for the last token. The caller guarantees
// 0 ≤ token < vocab and cache.length() + T ≤ cache.capacity() (Session checks both).
void grok_forward(const Model& model, const Kernels& k, KVCache& cache, const int32_t* tokens, int64_t T,
                  float* logits, LogitRows rows);

}  // namespace groak
