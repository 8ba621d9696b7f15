#include "model/repack.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include "io/mapped_file.h"
#include "kernels/context.h"
#include "kernels/repack.h"

namespace groak {

namespace {

// Groups of 8 rows per pool task while repacking (a task is ~1 MB of a Grok-1 expert).
constexpr int64_t kGroupsPerTask = 64;

class RepackOnUse final : public RepackedOnUse {
 public:
  explicit RepackOnUse(const Matrix& view) : view_(view) {}

  const Matrix& get(Context& ctx) const override {
    std::call_once(once_, [&] { pack(ctx); });
    return packed_;
  }

 private:
  struct Free { void operator()(uint8_t* p) const { std::free(p); } };

  void pack(Context& ctx) const {
    const size_t bytes = rows8_bytes(view_);
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<uint8_t*>(p));
    const int64_t groups = (view_.n_out + 7) / 8;
    const int64_t tasks = (groups + kGroupsPerTask - 1) / kGroupsPerTask;
    ctx.pool().run(tasks, [&](int64_t t, int) {
      rows8_pack(view_, t * kGroupsPerTask, std::min(groups, (t + 1) * kGroupsPerTask), data_.get());
    });
    // The file's copy leaves this process's resident set; a later read (an embedding lookup) maps it again.
    release_pages(view_.data, static_cast<size_t>(view_.n_out - 1) * view_.stride() + view_.packed_row_bytes());
    packed_ = rows8_view(view_, data_.get());
  }

  Matrix view_;
  mutable std::once_flag once_;
  mutable Matrix packed_;
  mutable std::unique_ptr<uint8_t, Free> data_;
};

// The file mappings plus the repacked copies (the copies must go first: nothing reads the mappings then).
struct RepackStorage {
  std::shared_ptr<const void> files;
  std::vector<std::unique_ptr<RepackOnUse>> copies;
};

// fn(matrix) for every matrix a copy may be installed on (W: Weights or const Weights).
template <class W, class F>
void each_matrix(W& w, F fn) {
  fn(w.lm_head);
  fn(w.in_out_embed);
  for (auto& L : w.layers) {
    for (auto* x : {&L.query, &L.key, &L.value}) fn(*x);
    for (auto* e : {&L.moe_linear, &L.moe_linear_v})
      for (auto& x : e->list) fn(x);
    for (auto& x : L.linear_parts) fn(x);  // the row-parallel products are read as parts (model/parts.h)
    for (auto& e : L.moe_linear_1_parts)
      for (auto& x : e) fn(x);
  }
}

}  // namespace

void repack_on_use(Model& m) {
  auto store = std::make_shared<RepackStorage>();
  store->files = m.storage;
  std::map<const uint8_t*, const RepackOnUse*> made;  // one copy per stored matrix (the tied head and table)
  uint64_t bytes = 0;
  auto install = [&](Matrix& w) {
    w.repacked = nullptr;
    if (!rows8_eligible(w)) return;
    auto it = made.find(w.data);
    if (it == made.end()) {
      store->copies.push_back(std::make_unique<RepackOnUse>(w));
      bytes += rows8_bytes(w);
      it = made.emplace(w.data, store->copies.back().get()).first;
    }
    w.repacked = it->second;
  };
  each_matrix(m.weights, install);
  m.repack_bytes = bytes;
  m.storage = store;
}

void make_repacked_copies(const Model& m, Context& ctx) {
  if (!ctx.kernels().reads_rows8) return;
  each_matrix(m.weights, [&](const Matrix& w) {
    if (w.repacked) w.repacked->get(ctx);
  });
}

}  // namespace groak
