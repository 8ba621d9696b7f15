// Logits of a model file, for tests that compare formats and conversions.
#pragma once
#include <string>
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

}  // namespace groak::test
