#include "model/check.h"

#include <cmath>
#include <cstring>

#include "kernels/quant.h"

namespace groak {

namespace {

// Non-finite values among the stored elements of m (the scales of xAI int8: its int8 values always are).
uint64_t count_nonfinite(const Matrix& m, uint64_t* total) {
  uint64_t bad = 0;
  const bool in_out = m.layout == Layout::InOut;
  const int64_t rows = in_out ? m.n_in : m.n_out, cols = in_out ? m.n_out : m.n_in;
  std::vector<float> row(static_cast<size_t>(cols));
  switch (m.format) {
    case WeightFormat::F32:
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(row.data(), m.data + static_cast<size_t>(r) * m.stride(), static_cast<size_t>(cols) * 4);
        for (float v : row) bad += std::isfinite(v) ? 0 : 1;
      }
      *total = static_cast<uint64_t>(rows * cols);
      break;
    case WeightFormat::Ggml:
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(m.ggml, m.data + static_cast<size_t>(r) * m.stride(), row.data(), cols);
        for (float v : row) bad += std::isfinite(v) ? 0 : 1;
      }
      *total = static_cast<uint64_t>(rows * cols);
      break;
    case WeightFormat::XaiInt8:
      for (int64_t b = 0; b < m.scale_blocks; ++b)
        for (int64_t o = 0; o < m.n_out; ++o)
          bad += std::isfinite(load_bf16(m.scales + static_cast<size_t>(b * m.scale_row() + o) * 2)) ? 0 : 1;
      *total = static_cast<uint64_t>(m.scale_blocks * m.n_out);
      break;
  }
  return bad;
}

}  // namespace

std::vector<std::string> nonfinite_weights(const Model& model, bool all) {
  std::vector<std::string> out;
  auto vec = [&](const std::string& name, const std::vector<float>& v) {
    uint64_t bad = 0;
    for (float x : v) bad += std::isfinite(x) ? 0 : 1;
    if (bad) out.push_back(name + ": " + std::to_string(bad) + " NaN/Inf of " + std::to_string(v.size()));
  };
  auto mat = [&](const std::string& name, const Matrix& m) {
    uint64_t total = 0;
    const uint64_t bad = count_nonfinite(m, &total);
    if (bad)
      out.push_back(name + ": " + std::to_string(bad) + " NaN/Inf of " + std::to_string(total) +
                    (m.format == WeightFormat::XaiInt8 ? " scales" : " values"));
  };
  const Weights& w = model.weights;
  if (all) mat("in_out_embed", w.in_out_embed);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string at = "layer " + std::to_string(l) + " ";
    vec(at + "rms_norm", L.rms_norm);
    vec(at + "rms_norm_1", L.rms_norm_1);
    vec(at + "rms_norm_2", L.rms_norm_2);
    vec(at + "rms_norm_3", L.rms_norm_3);
    mat(at + "router", L.router);
    if (!all) continue;
    mat(at + "query", L.query);
    mat(at + "key", L.key);
    mat(at + "value", L.value);
    mat(at + "linear", L.linear);
    for (size_t e = 0; e < L.moe_linear.list.size(); ++e) {
      const std::string ex = " expert " + std::to_string(e);
      mat(at + "moe linear" + ex, L.moe_linear.list[e]);
      mat(at + "moe linear_v" + ex, L.moe_linear_v.list[e]);
      mat(at + "moe linear_1" + ex, L.moe_linear_1.list[e]);
    }
  }
  vec("final rms_norm", w.rms_norm);
  return out;
}

}  // namespace groak
