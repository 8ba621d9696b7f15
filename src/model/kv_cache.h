// Key/value memory for several sequences (spec §4): per layer and sequence, K after RoPE and V as
// projected, f32. Sequence s holds positions [0, length(s)); a batch appends to any of them.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace groak {

class KVCache {
 public:
  // n_seq sequences of up to `capacity` positions each.
  KVCache(int64_t num_layers, int64_t capacity, int64_t kv_size, int64_t n_seq = 1)
      : num_layers_(num_layers), capacity_(capacity), kv_size_(kv_size), n_seq_(n_seq),
        lengths_(static_cast<size_t>(n_seq), 0) {
    // calloc: large zeroed blocks come straight from mmap, so untouched positions cost no memory.
    const size_t n = static_cast<size_t>(num_layers * n_seq * capacity * kv_size) * 2;
    data_.reset(static_cast<float*>(std::calloc(n ? n : 1, sizeof(float))));
    if (!data_) throw std::bad_alloc();
  }

  int64_t capacity() const { return capacity_; }
  int64_t n_seq() const { return n_seq_; }
  int64_t kv_size() const { return kv_size_; }
  int64_t length(int64_t seq = 0) const { return lengths_[static_cast<size_t>(seq)]; }  // valid positions
  void set_length(int64_t seq, int64_t n) { lengths_[static_cast<size_t>(seq)] = n; }
  // Bytes of the whole cache (allocated up front, touched as it fills).
  uint64_t bytes() const { return static_cast<uint64_t>(num_layers_ * n_seq_ * capacity_ * kv_size_) * 2 * 4; }

  // [capacity, kv_size] for one layer and sequence: position p at row p, heads contiguous (head·hd + i).
  float* keys(int64_t layer, int64_t seq = 0) {
    return data_.get() + static_cast<size_t>(((layer * n_seq_ + seq) * 2) * capacity_ * kv_size_);
  }
  float* values(int64_t layer, int64_t seq = 0) { return keys(layer, seq) + static_cast<size_t>(capacity_ * kv_size_); }

 private:
  struct Free { void operator()(float* p) const { std::free(p); } };
  int64_t num_layers_, capacity_, kv_size_, n_seq_;
  std::vector<int64_t> lengths_;
  std::unique_ptr<float, Free> data_;  // [num_layers][n_seq][K|V][capacity][kv_size]
};

}  // namespace groak
