#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace groak {

Logprobs token_logprobs(const float* logits, int64_t V, int32_t id, int top) {
  // log_softmax: logprob(i) = z_i - (max + log Σ exp(z_j - max)).
  double zmax = -INFINITY;
  for (int64_t i = 0; i < V; ++i) zmax = std::max(zmax, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i]) - zmax);
  const double lse = zmax + std::log(sum);
  Logprobs out;
  out.logprob = static_cast<float>(logits[id] - lse);
  if (top > 0) {
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(static_cast<size_t>(top), order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) out.top.push_back({order[i], static_cast<float>(logits[order[i]] - lse)});
  }
  return out;
}

}  // namespace groak
