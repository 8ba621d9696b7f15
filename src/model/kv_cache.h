// Key/value memory for several sequences (spec §4): per layer and sequence, K after RoPE and V as
// projected, stored as f32 (exact, the default) or f16/bf16 (half the memory and attention traffic).
// Sequence s holds positions [0, length(s)); a batch appends to any of them.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "util/zeroed_buffer.h"

namespace groak {

// Sequences one cache (one engine) may hold: the server's --parallel bound.
inline constexpr int64_t kMaxSequences = 256;

class KVCache {
 public:
  // n_seq sequences of up to `capacity` positions each.
  KVCache(int64_t num_layers, int64_t capacity, int64_t kv_size, int64_t n_seq = 1, KvType type = KvType::F32)
      : num_layers_(num_layers), capacity_(capacity), kv_size_(kv_size), n_seq_(n_seq), type_(type),
        lengths_(static_cast<size_t>(n_seq), 0) {
    data_ = ZeroedBuffer(bytes());  // untouched positions cost no memory
  }

  int64_t capacity() const { return capacity_; }
  int64_t n_seq() const { return n_seq_; }
  int64_t kv_size() const { return kv_size_; }
  KvType type() const { return type_; }
  int64_t length(int64_t seq = 0) const { return lengths_[static_cast<size_t>(seq)]; }  // valid positions
  void set_length(int64_t seq, int64_t n) { lengths_[static_cast<size_t>(seq)] = n; }
  // Bytes of the whole cache (allocated up front, touched as it fills).
  uint64_t bytes() const {
    return static_cast<uint64_t>(num_layers_ * n_seq_ * capacity_ * kv_size_) * 2 * kv_type_bytes(type_);
  }

  // Bytes of positions [0, n) of one sequence: every layer's K and V rows.
  uint64_t prefix_bytes(int64_t n) const {
    return static_cast<uint64_t>(num_layers_ * 2 * n * kv_size_) * kv_type_bytes(type_);
  }
  // Positions [0, n) of sequence seq to dst (prefix_bytes(n) bytes: per layer, K rows then V rows) and
  // back from a copy of `stored` ≥ n positions (its first n of each block); copying in leaves the
  // sequence's length as it is.
  void copy_prefix_out(int64_t seq, int64_t n, uint8_t* dst) const {
    const size_t rows = static_cast<size_t>(n * kv_size_) * kv_type_bytes(type_);
    for (int64_t l = 0; l < num_layers_; ++l)
      for (int64_t kv = 0; kv < 2; ++kv, dst += rows) std::memcpy(dst, block(l, seq, kv), rows);
  }
  void copy_prefix_in(int64_t seq, int64_t n, const uint8_t* src, int64_t stored) {
    const size_t row = static_cast<size_t>(kv_size_) * kv_type_bytes(type_);
    for (int64_t l = 0; l < num_layers_; ++l)
      for (int64_t kv = 0; kv < 2; ++kv, src += row * static_cast<size_t>(stored))
        std::memcpy(block(l, seq, kv), src, row * static_cast<size_t>(n));
  }

  // [capacity, kv_size] elements of type() for one layer and sequence: position p at row p, heads
  // contiguous (head·hd + i).
  const void* keys(int64_t layer, int64_t seq = 0) const { return block(layer, seq, 0); }
  const void* values(int64_t layer, int64_t seq = 0) const { return block(layer, seq, 1); }
  // Writes position `pos` of a sequence: k, v: [kv_size] f32, converted to type().
  void store(int64_t layer, int64_t seq, int64_t pos, const float* k, const float* v) {
    const size_t row = static_cast<size_t>(pos * kv_size_) * kv_type_bytes(type_);
    store_kv_row(k, block(layer, seq, 0) + row, type_, kv_size_);
    store_kv_row(v, block(layer, seq, 1) + row, type_, kv_size_);
  }

 private:
  uint8_t* block(int64_t layer, int64_t seq, int64_t kv) const {
    return data_.get<uint8_t>() +
           static_cast<size_t>(((layer * n_seq_ + seq) * 2 + kv) * capacity_ * kv_size_) * kv_type_bytes(type_);
  }
  int64_t num_layers_, capacity_, kv_size_, n_seq_;
  KvType type_;
  std::vector<int64_t> lengths_;
  ZeroedBuffer data_;       // [num_layers][n_seq][K|V][capacity][kv_size]
};

}  // namespace groak
