// Per-layer key/value memory (spec §4): K is stored after RoPE, V as projected, f32.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace groak {

class KVCache {
 public:
  KVCache(int64_t num_layers, int64_t capacity, int64_t kv_size)
      : num_layers_(num_layers), capacity_(capacity), kv_size_(kv_size) {
    // calloc: large zeroed blocks come straight from mmap, so untouched positions cost no memory.
    const size_t n = static_cast<size_t>(num_layers * capacity * kv_size) * 2;
    data_.reset(static_cast<float*>(std::calloc(n ? n : 1, sizeof(float))));
    if (!data_) throw std::bad_alloc();
  }

  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // "step": valid positions
  void set_length(int64_t n) { length_ = n; }
  int64_t kv_size() const { return kv_size_; }

  // [capacity, kv_size] for one layer: position p at row p, heads contiguous (f = head·hd + i).
  float* keys(int64_t layer) { return data_.get() + static_cast<size_t>(layer * 2 * capacity_ * kv_size_); }
  float* values(int64_t layer) { return keys(layer) + static_cast<size_t>(capacity_ * kv_size_); }

 private:
  struct Free { void operator()(float* p) const { std::free(p); } };
  int64_t num_layers_, capacity_, kv_size_;
  int64_t length_ = 0;
  std::unique_ptr<float, Free> data_;  // [num_layers][K|V][capacity][kv_size]
};

}  // namespace groak
