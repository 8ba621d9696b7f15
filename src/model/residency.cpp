#include "model/residency.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace groak {

namespace {

// [p, p + n) widened to whole pages.
template <typename F>
void on_pages(const void* p, size_t n, F&& f) {
  if (!p || n == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
  f(reinterpret_cast<void*>(a), b - a);
}

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// The bytes of a weight as mapped: its rows and, for xAI int8, its scales.
template <typename F>
void each_range(const Matrix& m, F&& f) {
  f(m.data, m.span_bytes());
  if (m.scales) f(m.scales, m.scale_bytes());
}

}  // namespace

uint64_t weight_file_bytes(const Model& m) {
  uint64_t bytes = 0;
  for (const TensorRecord& t : m.tensors) bytes += t.bytes;
  return bytes;
}

uint64_t lock_dense_weights(const Model& m) {
  const Weights& w = m.weights;
  std::vector<const Matrix*> dense = {&w.in_out_embed};
  if (w.lm_head.data != w.in_out_embed.data) dense.push_back(&w.lm_head);
  for (const LayerWeights& L : w.layers)
    for (const Matrix* x : {&L.query, &L.key, &L.value, &L.linear, &L.router}) dense.push_back(x);
  uint64_t locked = 0;
  for (const Matrix* x : dense)
    each_range(*x, [&](const void* p, size_t n) {
      on_pages(p, n, [&](void* a, size_t len) {
        if (::mlock(a, len) != 0) {
          const int err = errno;
          rlimit lim{};
          ::getrlimit(RLIMIT_MEMLOCK, &lim);
          const std::string limit = lim.rlim_cur == RLIM_INFINITY ? "unlimited" : mib(lim.rlim_cur);
          throw Error("--lock-dense could not lock the dense weights in RAM after " + mib(locked) + " (" +
                      std::strerror(err) + "; the locked-memory limit is " + limit + "): raise it (ulimit -l "
                      "unlimited, LimitMEMLOCK=infinity in a systemd unit) and make sure the memory limit leaves "
                      "room for them, or run without --lock-dense");
        }
        locked += len;
      });
    });
  return locked;
}

void read_ahead_experts(const LayerWeights& L, const int32_t* routed, int64_t E) {
  for (int64_t e = 0; e < E; ++e) {
    if (routed[e] == 0) continue;
    for (const ExpertMatrices* list : {&L.moe_linear, &L.moe_linear_v, &L.moe_linear_1})
      each_range(list->expert(e), [](const void* p, size_t n) {
        on_pages(p, n, [](void* a, size_t len) { ::madvise(a, len, MADV_WILLNEED); });  // a hint: errors are harmless
      });
  }
}

}  // namespace groak
