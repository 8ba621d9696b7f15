// Stop strings over streamed text: holds back the tail that could still become a stop string, and cuts
// the text at the first one that appears. Shared by generate() and the server's slots.
#pragma once
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace groak {

// Holds back the tail of the text that could still become a stop string.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {}

  // Adds text; returns what can be shown now. Sets *hit when a stop string appeared (text after
  // and including it is dropped).
  std::string push(const std::string& text, bool* hit) {
    pending_ += text;
    size_t cut = std::string::npos;
    const std::string* first = nullptr;
    for (const auto& s : stops_) {
      if (s.empty()) continue;
      size_t p = pending_.find(s);
      if (p != std::string::npos && (cut == std::string::npos || p < cut)) {
        cut = p;
        first = &s;
      }
    }
    if (cut != std::string::npos) {
      *hit = true;
      matched_ = *first;
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      return out;
    }
    // Keep the longest suffix that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > keep; --k)
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    std::string out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return out;
  }
  std::string flush() { return std::exchange(pending_, std::string()); }
  // The stop string that ended the text (empty while none has).
  const std::string& matched() const { return matched_; }

 private:
  const std::vector<std::string>& stops_;
  std::string pending_, matched_;
};

}  // namespace groak
