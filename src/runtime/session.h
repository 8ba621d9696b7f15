// One conversation with a model: its KV cache and position. Checks what the forward pass assumes
// (token ids in range, context not exceeded) and reports violations as groak::Error.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "model/grok.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace groak {

class Session {
 public:
  // context: positions to reserve; 0 = the model's sequence_len. Larger than sequence_len is an error.
  Session(const Model& model, int64_t context = 0, const Kernels& kernels = fast_kernels());

  // Runs a chunk of tokens (prefill chunk or a single decode token) and returns its logits:
  // [T, vocab] for LogitRows::All, [vocab] for LogitRows::LastOnly.
  void eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows);

  int64_t position() const { return cache_.length(); }  // tokens seen so far
  int64_t context() const { return cache_.capacity(); }
  void reset() { cache_.set_length(0); }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  const Kernels& kernels_;
  KVCache cache_;
};

}  // namespace groak
