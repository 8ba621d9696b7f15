#include "server/lookup.h"

#include <algorithm>

namespace groak {

std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int ngram, int64_t max) {
  const auto len = static_cast<int64_t>(history.size());
  if (max <= 0 || ngram <= 0) return {};
  for (int64_t n = std::min<int64_t>(ngram, len - 1); n >= std::min(ngram, 2); --n) {
    const int32_t* tail = history.data() + len - n;
    // Latest start first: the most recent repetition is the likeliest to continue alike.
    for (int64_t at = len - n - 1; at >= 0; --at) {
      if (!std::equal(tail, tail + n, history.data() + at)) continue;
      const int64_t from = at + n, count = std::min(max, len - from);
      return {history.begin() + from, history.begin() + from + count};
    }
  }
  return {};
}

}  // namespace groak
