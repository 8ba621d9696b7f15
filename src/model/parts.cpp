#include "model/parts.h"

#include <algorithm>
#include <cassert>

#include "kernels/kernels.h"
#include "kernels/quant.h"

namespace groak {

namespace {

// Inputs per quantisation block along a cut by input rows (xAI int8: the rows one scale covers).
int64_t input_block(const Matrix& m) {
  switch (m.format) {
    case WeightFormat::F32: return 1;
    case WeightFormat::XaiInt8: return m.n_in / m.scale_blocks;
    case WeightFormat::Ggml: return block_size(m.ggml);
  }
  return 1;
}

// Whether every matrix of `m` that the cut applies to splits into `local_parts` whole-block pieces.
bool cuts_on_blocks(const Weights& w, int64_t local_parts) {
  auto ok = [&](const Matrix& x) {
    return x.n_in % local_parts == 0 && (x.n_in / local_parts) % input_block(x) == 0;
  };
  for (const LayerWeights& L : w.layers) {
    if (!ok(L.linear)) return false;
    for (const Matrix& e : L.moe_linear_1.list)
      if (!ok(e)) return false;
  }
  return true;
}

}  // namespace

int64_t model_parts(const Model& m) {
  const int64_t R = m.shard_count, kv = m.config.num_kv_heads * R;
  for (int64_t P = std::min<int64_t>(kv, kMaxParts); P > 1; --P)
    if (kv % P == 0 && P % R == 0 && cuts_on_blocks(m.weights, P / R)) return P;
  return 1;
}

void cut_into_parts(Model& m, int64_t P, int64_t first, int64_t count,
                    const std::function<Matrix(const Matrix&)>& place) {
  assert(count >= 1 && first + count <= P && count <= kMaxParts);
  auto cut = [&](const Matrix& whole) {
    std::vector<Matrix> parts;
    const int64_t k = whole.n_in / P;
    for (int64_t p = first; p < first + count; ++p) parts.push_back(P == 1 ? place(whole) : place(whole.slice_in(p * k, k)));
    return parts;
  };
  for (LayerWeights& L : m.weights.layers) {
    L.linear_parts = cut(L.linear);
    L.moe_linear_1_parts.clear();
    for (const Matrix& e : L.moe_linear_1.list) L.moe_linear_1_parts.push_back(cut(e));
  }
  m.config.reduction_parts = count;
}

void cut_into_parts(Model& m) {
  const int64_t R = m.shard_count, P = model_parts(m);
  const auto as_is = [](const Matrix& x) { return x; };
  if (P % R == 0 && P > 1)
    cut_into_parts(m, P / R, 0, P / R, as_is);
  else
    cut_into_parts(m, 1, 0, 1, as_is);
}

}  // namespace groak
