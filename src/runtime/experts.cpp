#include "runtime/experts.h"

#include <algorithm>

namespace groak {

ExpertCounter::ExpertCounter(const Config& c, int64_t sequences)
    : L(c.num_layers), E(c.num_experts), K(c.num_selected_experts) {
  const auto n = [](int64_t a) { return static_cast<size_t>(a); };
  tokens.assign(n(L), 0);
  counts.assign(n(L * E), 0);
  pairs.assign(n(L * E * E), 0);
  reused.assign(n(L), 0);
  follows.assign(n(L), 0);
  prev_.assign(n(sequences * L * K), -1);
  prev_pos_.assign(n(sequences * L), -1);
}

void ExpertCounter::router(int64_t layer, int64_t t, const float*, int64_t, const int64_t* chosen, int64_t k) {
  const BatchToken& bt = batch_->tokens[static_cast<size_t>(t)];
  const auto at = [](int64_t a) { return static_cast<size_t>(a); };
  if (bt.seq < 0 || at(bt.seq * L + layer) >= prev_pos_.size()) return;  // a sequence this counter was not sized for
  ++tokens[at(layer)];
  for (int64_t j = 0; j < k; ++j) {
    ++counts[at(layer * E + chosen[j])];
    for (int64_t i = 0; i < j; ++i) {
      ++pairs[at((layer * E + chosen[i]) * E + chosen[j])];
      ++pairs[at((layer * E + chosen[j]) * E + chosen[i])];
    }
  }
  int64_t* prev = prev_.data() + (bt.seq * L + layer) * K;
  int64_t& prev_pos = prev_pos_[at(bt.seq * L + layer)];
  if (bt.pos > 0 && prev_pos == bt.pos - 1) {
    ++follows[at(layer)];
    for (int64_t j = 0; j < k; ++j) reused[at(layer)] += std::count(prev, prev + K, chosen[j]);
  }
  std::copy_n(chosen, k, prev);
  prev_pos = bt.pos;
}

double ExpertCounter::imbalance(int64_t layer) const {
  const int64_t n = tokens[static_cast<size_t>(layer)];
  if (n == 0) return 0;
  const int64_t* c = counts.data() + layer * E;
  const double mean = static_cast<double>(n * K) / static_cast<double>(E);
  return static_cast<double>(*std::max_element(c, c + E)) / mean;
}

double ExpertCounter::reuse_rate(int64_t layer) const {
  const int64_t f = follows[static_cast<size_t>(layer)];
  return f == 0 ? 0 : static_cast<double>(reused[static_cast<size_t>(layer)]) / static_cast<double>(f * K);
}

}  // namespace groak
