#include "model/shard.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "model/parts.h"
#include "model/repack.h"
#include "util/error.h"

namespace groak {

namespace {

// File rows copied between two releases of their pages (bounds what packing adds to the resident set).
constexpr size_t kPackChunkBytes = size_t{4} << 20;

// A strided slice, packed into this process's memory on first use (see shard.h).
class PackOnUse final : public PackedOnUse {
 public:
  explicit PackOnUse(const Matrix& view) : view_(view) {}

  const Matrix& get() const override {
    std::call_once(once_, [this] { pack(); });
    return packed_;
  }

 private:
  struct Free { void operator()(uint8_t* p) const { std::free(p); } };

  static std::unique_ptr<uint8_t, Free> alloc(size_t bytes) {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return std::unique_ptr<uint8_t, Free>(static_cast<uint8_t*>(p));
  }

  void pack() const {
    const Matrix& v = view_;
    const size_t row = v.packed_row_bytes(), stride = v.stride();
    const int64_t rows = v.layout == Layout::InOut ? v.n_in : v.n_out;  // stored rows
    data_ = alloc(row * static_cast<size_t>(rows));
    // Rows in chunks; each chunk's file pages leave this process's resident set once copied (the page
    // cache keeps them), so packing never holds more than a chunk of the file.
    const int64_t per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kPackChunkBytes / stride));
    for (int64_t r0 = 0; r0 < rows; r0 += per_chunk) {
      const int64_t r1 = std::min(rows, r0 + per_chunk);
      for (int64_t r = r0; r < r1; ++r)
        std::memcpy(data_.get() + static_cast<size_t>(r) * row, v.data + static_cast<size_t>(r) * stride, row);
      release_pages(v.data + static_cast<size_t>(r0) * stride, static_cast<size_t>(r1 - 1 - r0) * stride + row);
    }
    packed_ = v;
    packed_.packed = nullptr;
    packed_.data = data_.get();
    packed_.row_stride = 0;
    if (v.format == WeightFormat::XaiInt8) {  // bf16 scales [scale_blocks, n_out], scale rows packed too
      const size_t srow = static_cast<size_t>(v.n_out) * 2;
      scales_ = alloc(srow * static_cast<size_t>(v.scale_blocks));
      for (int64_t b = 0; b < v.scale_blocks; ++b)
        std::memcpy(scales_.get() + static_cast<size_t>(b) * srow, v.scales + static_cast<size_t>(b * v.scale_row()) * 2, srow);
      packed_.scales = scales_.get();
      packed_.scale_stride = 0;
    }
  }

  Matrix view_;
  mutable std::once_flag once_;
  mutable Matrix packed_;
  mutable std::unique_ptr<uint8_t, Free> data_, scales_;
};

// The mappings of the whole model plus this rank's packed slices.
struct ShardStorage {
  std::shared_ptr<const void> files;
  std::vector<std::unique_ptr<PackOnUse>> packed;
};

class Sharder {
 public:
  Sharder(int rank, int ranks, ShardStorage& store) : rank_(rank), ranks_(ranks), store_(store) {}

  // Output units [r·n/R, (r+1)·n/R) of m.
  Matrix out(const Matrix& m) {
    const int64_t n = m.n_out / ranks_;
    return place(m.slice_out(n * rank_, n));
  }

  // Input features [r·n/R, (r+1)·n/R) of m as a view (the forward pass reads the parts, placed by
  // place()); the cut must fall on whole quantisation blocks.
  Matrix in(const Matrix& m, const std::string& what) {
    const int64_t n = m.n_in / ranks_;
    int64_t block = 1;
    std::string unit;
    if (m.format == WeightFormat::XaiInt8) {
      block = m.n_in / m.scale_blocks;
      unit = "rows per scale block of the xAI checkpoint";
    } else if (m.format == WeightFormat::Ggml) {
      block = block_size(m.ggml);
      unit = std::string("elements per ") + type_name(m.ggml) + " block";
    }
    if (n % block != 0)
      throw Error(what + ": " + std::to_string(ranks_) + " ranks would cut its " + std::to_string(m.n_in) +
                  " inputs into pieces of " + std::to_string(n) + ", not a multiple of the " + std::to_string(block) +
                  " " + unit + "; use a number of ranks that divides 8");
    return m.slice_in(n * rank_, n);
  }

  void replicated(const Matrix& m) { report.view_bytes += m.data_bytes() + m.scale_bytes(); }
  void replicated(const std::vector<float>& v) { report.view_bytes += v.size() * sizeof(float); }

  ShardReport report;

  // A contiguous slice stays a view; a strided one is packed on first use.
  Matrix place(Matrix s) {
    const uint64_t bytes = s.data_bytes() + s.scale_bytes();
    if (s.packed_row_bytes() >= s.stride()) {
      report.view_bytes += bytes;
      return s;
    }
    report.packed_bytes += bytes;
    report.packed_page_bytes += pages_covered(s);
    store_.packed.push_back(std::make_unique<PackOnUse>(s));
    s.packed = store_.packed.back().get();
    return s;
  }

  // Bytes of the distinct file pages under a strided slice's rows.
  static uint64_t pages_covered(const Matrix& s) {
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const int64_t rows = s.layout == Layout::InOut ? s.n_in : s.n_out;
    uint64_t pages = 0;
    uintptr_t last = ~uintptr_t{0};
    for (int64_t r = 0; r < rows; ++r) {
      const uintptr_t a = reinterpret_cast<uintptr_t>(s.data) + static_cast<uintptr_t>(r) * s.stride();
      uintptr_t first = a / page;
      const uintptr_t end = (a + s.packed_row_bytes() - 1) / page;
      if (first == last) ++first;
      if (end >= first) pages += end - first + 1;
      last = end;
    }
    return pages * page;
  }

  int rank_, ranks_;
  ShardStorage& store_;
};

std::string divisors_of(int64_t n) {
  std::string s;
  for (int64_t k = 1; k <= n; ++k)
    if (n % k == 0) s += (s.empty() ? "" : ", ") + std::to_string(k);
  return s;
}

}  // namespace

ShardReport shard_model(Model& m, int rank, int ranks) {
  Config& c = m.config;
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw Error("rank " + std::to_string(rank) + " of " + std::to_string(ranks) + " is not a valid share");
  if (m.shard_count != 1) throw Error("the model is already sharded");
  if (ranks == 1) return {};
  const std::string n = std::to_string(ranks) + " ranks";
  if (c.num_kv_heads % ranks != 0)
    throw Error(n + " do not divide num_kv_heads (" + std::to_string(c.num_kv_heads) +
                "): attention is split by kv-head groups; run with " + divisors_of(c.num_kv_heads) + " ranks");
  const int64_t f = c.ffn_size();
  if (f % ranks != 0)
    throw Error(n + " do not divide the expert width ffn_size (" + std::to_string(f) + "); run with a number of ranks "
                "that divides it");
  if (c.vocab_size % ranks != 0)
    throw Error(n + " do not divide vocab_size (" + std::to_string(c.vocab_size) + "): the embedding table is split "
                "by vocabulary rows; run with a number of ranks that divides it");

  auto store = std::make_shared<ShardStorage>();
  store->files = m.storage;
  Sharder s(rank, ranks, *store);
  Weights& w = m.weights;
  const bool tied = w.lm_head.data == w.in_out_embed.data;
  w.in_out_embed = s.out(w.in_out_embed);
  w.lm_head = tied ? w.in_out_embed : s.out(w.lm_head);
  w.vocab_begin = c.vocab_size / ranks * rank;
  s.replicated(w.rms_norm);
  // The row-parallel products: this rank's run of the model's P parts (model/parts.h), or its share as
  // one part when R does not divide P. Checked first, for the error naming the tensor.
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const std::string at = "layer " + std::to_string(l) + " ";
    s.in(w.layers[l].linear, at + "attention linear");
    for (const Matrix& e : w.layers[l].moe_linear_1.list) s.in(e, at + "moe linear_1");
  }
  const auto place = [&](const Matrix& x) { return s.place(x); };
  if (const int64_t P = model_parts(m); P % ranks == 0)
    cut_into_parts(m, P, rank * (P / ranks), P / ranks, place);
  else
    cut_into_parts(m, ranks, rank, 1, place);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights& L = w.layers[l];
    const std::string at = "layer " + std::to_string(l) + " ";
    L.query = s.out(L.query);
    L.key = s.out(L.key);
    L.value = s.out(L.value);
    L.linear = s.in(L.linear, at + "attention linear");
    for (const auto* v : {&L.rms_norm, &L.rms_norm_1, &L.rms_norm_2, &L.rms_norm_3}) s.replicated(*v);
    s.replicated(L.router);
    for (auto& e : L.moe_linear.list) e = s.out(e);
    for (auto& e : L.moe_linear_v.list) e = s.out(e);
    for (auto& e : L.moe_linear_1.list) e = s.in(e, at + "moe linear_1");
  }
  c.num_q_heads /= ranks;
  c.num_kv_heads /= ranks;
  c.ffn_size_override = f / ranks;
  m.shard_rank = rank;
  m.shard_count = ranks;
  m.storage = store;
  if (m.repack_bytes) repack_on_use(m);  // the slices dropped the whole matrices' copies: this share's own
  return s.report;
}

namespace {

// FNV-1a, 64 bits: a fingerprint, not a security measure.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  void add(int64_t v) { add(&v, sizeof v); }
  void sample(const Matrix& m) {  // the first bytes of a weight (its first rows)
    if (m.data) add(m.data, std::min<size_t>(256, m.data_bytes()));
  }
};

}  // namespace

std::string model_fingerprint(const Model& m) {
  if (!m.source_fingerprint.empty()) return m.source_fingerprint;
  const Config& c = m.config;
  Fnv f;
  for (int64_t v : {c.vocab_size, c.emb_size, c.num_layers, c.num_q_heads, c.num_kv_heads, c.key_size, c.ffn_size(),
                    c.num_experts, c.num_selected_experts, c.sequence_len})
    f.add(v);
  for (const TensorRecord& t : m.tensors) {
    f.add(t.name);
    f.add(t.dtype);
    for (int64_t d : t.shape) f.add(d);
  }
  const Weights& w = m.weights;
  f.sample(w.in_out_embed);
  f.add(w.rms_norm.data(), w.rms_norm.size() * sizeof(float));
  if (!w.layers.empty()) {
    f.sample(w.layers[0].query);
    f.sample(w.layers[0].router);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, f.h);
  return hex;
}

}  // namespace groak
