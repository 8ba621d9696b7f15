// What one forward pass computes (llama.cpp's llama_batch): tokens, each with the sequence it
// belongs to, its position there and whether its logits are wanted. One pass over the weights serves
// every sequence in the batch.
#pragma once
#include <cstdint>
#include <vector>

namespace groak {

struct BatchToken {
  int32_t token = 0;
  int32_t seq = 0;     // which sequence of the KV cache
  int64_t pos = 0;     // position in that sequence
  bool logits = false; // write this token's logits
};

// Rule (checked by check_batch): within a sequence, tokens appear in order at consecutive positions
// that continue the sequence's cache (pos = length(seq), length(seq)+1, …).
struct Batch {
  std::vector<BatchToken> tokens;

  void add(int32_t token, int32_t seq, int64_t pos, bool logits) { tokens.push_back({token, seq, pos, logits}); }
  void clear() { tokens.clear(); }
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  int64_t n_logits() const {
    int64_t n = 0;
    for (const auto& t : tokens) n += t.logits;
    return n;
  }
};

}  // namespace groak
