#include "server/prompt_cache.h"

#include <algorithm>

namespace groak {

namespace {
size_t shared_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}
}  // namespace

PromptCache::Hit PromptCache::find(std::span<const int32_t> prompt) {
  Hit best;
  Entry* at = nullptr;
  for (Entry& e : entries_) {
    const size_t n = shared_prefix(e.tokens, prompt);
    if (n > best.tokens) {
      best = {e.key, n};
      at = &e;
    }
  }
  if (at) at->used = ++clock_;
  return best;
}

bool PromptCache::covers(std::span<const int32_t> tokens) const {
  for (const Entry& e : entries_)
    if (e.tokens.size() >= tokens.size() && shared_prefix(e.tokens, tokens) == tokens.size()) return true;
  return false;
}

int64_t PromptCache::add(std::vector<int32_t> tokens, uint64_t bytes, std::vector<int64_t>& dropped, int64_t keep) {
  dropped.clear();
  uint64_t kept = 0;  // bytes of `keep`, which stays whatever happens
  for (const Entry& e : entries_)
    if (e.key == keep) kept = e.bytes;
  if (bytes + kept > capacity_) return -1;
  auto drop = [&](std::vector<Entry>::iterator it) {
    dropped.push_back(it->key);
    bytes_ -= it->bytes;
    return entries_.erase(it);
  };
  for (auto it = entries_.begin(); it != entries_.end();)
    it = it->key != keep && shared_prefix(it->tokens, tokens) == it->tokens.size() ? drop(it) : it + 1;
  while (bytes_ + bytes > capacity_) {  // terminates: every entry but `keep` can go, and bytes + kept fit
    auto lru = std::min_element(entries_.begin(), entries_.end(), [&](const Entry& a, const Entry& b) {
      return (a.key == keep ? ~uint64_t{0} : a.used) < (b.key == keep ? ~uint64_t{0} : b.used);
    });
    drop(lru);
  }
  const int64_t key = next_key_++;
  entries_.push_back({key, std::move(tokens), bytes, ++clock_});
  bytes_ += bytes;
  return key;
}

void PromptCache::remove(int64_t key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
  if (it == entries_.end()) return;
  bytes_ -= it->bytes;
  entries_.erase(it);
}

}  // namespace groak
