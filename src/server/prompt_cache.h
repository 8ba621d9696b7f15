// The server's prompt cache: KV copies of earlier prompts in host memory, so that a long system prompt
// or a conversation's history is computed once even after its slot has served other requests
// (llama-server keeps only each slot's last prompt). An entry is a run of tokens from position 0; a new
// prompt uses the entry sharing its longest prefix. Bounded in bytes, least recently used dropped first.
// This class keeps the keys, tokens and sizes; the engine keeps the bytes (Engine::save_prefix), on
// every rank of a sharded model.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace groak {

class PromptCache {
 public:
  explicit PromptCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

  struct Hit {
    int64_t key = -1;
    size_t tokens = 0;  // positions of the entry that the prompt shares (0: no entry shares any)
  };
  // The entry sharing the longest prefix with `prompt`; it becomes the most recently used.
  Hit find(std::span<const int32_t> prompt);
  // Whether an entry starts with all of `tokens` (saving them would add nothing).
  bool covers(std::span<const int32_t> tokens) const;
  // A new entry for `tokens` taking `bytes`: its key, or -1 when it cannot fit (alone larger than the
  // capacity, or only by dropping `keep`, an entry about to be used). `dropped` gets the keys whose copies
  // must go first: entries that `tokens` extend (the new one serves their prompts too), then the least
  // recently used until it fits; never `keep`.
  int64_t add(std::vector<int32_t> tokens, uint64_t bytes, std::vector<int64_t>& dropped, int64_t keep = -1);
  // Forgets an entry (its copy could not be made).
  void remove(int64_t key);

  uint64_t capacity() const { return capacity_; }
  uint64_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t key;
    std::vector<int32_t> tokens;
    uint64_t bytes;
    uint64_t used;  // the clock at its last use
  };
  uint64_t capacity_, bytes_ = 0, clock_ = 0;
  int64_t next_key_ = 1;
  std::vector<Entry> entries_;
};

}  // namespace groak
