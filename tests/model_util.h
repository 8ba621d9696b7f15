// Logits of a model file, for tests that compare formats and conversions.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "model/loader.h"
#include "runtime/engine.h"

namespace groak::test {

// Loads `path` and returns the logits of every position of `tokens` ([T, vocab], one pass from position 0).
inline std::vector<float> logits_of(const std::string& path, const std::vector<int32_t>& tokens, const Kernels& k) {
  Model m = load_model(path);
  Engine s(m, {.context = static_cast<int64_t>(tokens.size()), .kernels = &k});
  std::vector<float> out;
  s.eval(tokens, out, LogitRows::All);
  return out;
}

// Mean KL(p_ref || p) over positions and the share of positions whose argmax agrees.
inline std::pair<double, double> kl_and_top1(const std::vector<float>& ref, const std::vector<float>& got, int64_t V) {
  const size_t T = ref.size() / static_cast<size_t>(V);
  double kl = 0;
  size_t agree = 0;
  for (size_t t = 0; t < T; ++t) {
    const float* a = ref.data() + t * V;
    const float* b = got.data() + t * V;
    auto lse = [&](const float* x) {
      double mx = *std::max_element(x, x + V), s = 0;
      for (int64_t i = 0; i < V; ++i) s += std::exp(x[i] - mx);
      return mx + std::log(s);
    };
    const double la = lse(a), lb = lse(b);
    for (int64_t i = 0; i < V; ++i) {
      const double pa = std::exp(a[i] - la);
      kl += pa * ((a[i] - la) - (b[i] - lb));
    }
    agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  return {kl / static_cast<double>(T), static_cast<double>(agree) / static_cast<double>(T)};
}

}  // namespace groak::test
