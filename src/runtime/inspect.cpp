#include "runtime/inspect.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/ops.h"
#include "util/error.h"

namespace groak {

namespace {
constexpr int kPoints = kResidualPoints;

// The n largest of x[0, S) (largest first, lower index first on ties): positions into pos, values into val;
// slots past S get -1 and 0.
void top_n(const float* x, int64_t S, int64_t n, int32_t* pos, float* val) {
  for (int64_t j = 0; j < n; ++j) {
    int64_t best = -1;
    for (int64_t i = 0; i < S; ++i) {
      bool taken = false;
      for (int64_t q = 0; q < j; ++q) taken = taken || pos[q] == i;
      if (!taken && (best < 0 || x[i] > x[best])) best = i;
    }
    pos[j] = static_cast<int32_t>(best);
    val[j] = best < 0 ? 0.f : x[best];
  }
}
}  // namespace

Inspector::Inspector(Context& ctx, const Model& model, InspectOptions opt)
    : ctx_(ctx), model_(model), opt_(std::move(opt)) {
  const Config& c = model.config;
  if (model.group) throw Error("inspect runs in one process (the probes see one share of a sharded model)");
  if (opt_.positions <= 0) throw Error("inspect: nothing to record (0 positions)");
  if (opt_.lens_top < 0 || opt_.lens_top > c.vocab_size)
    throw Error("inspect: logit-lens top " + std::to_string(opt_.lens_top) + " is outside [0, " +
                std::to_string(c.vocab_size) + "]");
  P = opt_.positions;
  L = c.num_layers;
  H = c.num_q_heads;
  E = c.num_experts;
  K = c.num_selected_experts;
  lens_k = opt_.lens_top;
  cap_ = c.attn_logit_cap;
  layers = opt_.layers;
  if (layers.empty())
    for (int64_t l = 0; l < L; ++l) layers.push_back(l);
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  selected_of_.assign(static_cast<size_t>(L), -1);
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 0 || layers[i] >= L)
      throw Error("inspect: layer " + std::to_string(layers[i]) + " is outside the model's layers 0-" +
                  std::to_string(L - 1));
    selected_of_[static_cast<size_t>(layers[i])] = static_cast<int32_t>(i);
  }
  N = static_cast<int64_t>(layers.size());
  const auto n = [](int64_t a) { return static_cast<size_t>(a); };
  const int64_t NA = opt_.attention ? N : 0;  // layers with attention records
  router_probs.assign(n(P * L * E), 0.f);
  chosen.assign(n(P * L * K), -1);
  residual_rms.assign(n(P * L * kPoints), 0.f);
  attn_entropy.assign(n(P * NA * H), 0.f);
  attn_sink.assign(n(P * NA * H), 0.f);
  attn_saturated.assign(n(P * NA * H), 0.f);
  attn_top_pos.assign(n(P * NA * H * kAttentionTop), -1);
  attn_top_w.assign(n(P * NA * H * kAttentionTop), 0.f);
  // N·H·P² ≤ the budget, tested without overflow (P ≤ sequence_len, so P² fits).
  if (NA * H > 0 && P * P <= kFullAttentionMaxFloats / (NA * H)) attn_full.assign(n(NA * H * P * P), 0.f);
  lens_ids.assign(n(P * N * lens_k), -1);
  lens_probs.assign(n(P * N * lens_k), 0.f);
  if (lens_k > 0) {
    lens_in_.assign(n(kLensRows * c.emb_size), 0.f);
    lens_out_.assign(n(kLensRows * model.weights.lm_head.n_out), 0.f);
    lens_pos_.assign(n(kLensRows), 0);
  }
}

void Inspector::begin(const Batch& batch) { batch_ = &batch; }

int64_t Inspector::slot(int64_t t) const {
  const BatchToken& bt = batch_->tokens[static_cast<size_t>(t)];
  return bt.seq == opt_.seq && bt.pos < P ? bt.pos : -1;
}

void Inspector::residual(int64_t layer, ResidualPoint at, const float* h, int64_t T, int64_t d) {
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = slot(t);
    if (p < 0) continue;
    recorded = std::max(recorded, p + 1);
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(h[t * d + i]) * h[t * d + i];
    residual_rms[static_cast<size_t>((p * L + layer) * kPoints + static_cast<int>(at))] =
        static_cast<float>(std::sqrt(ss / static_cast<double>(d)));
  }
  const int32_t sel = selected_of_[static_cast<size_t>(layer)];
  if (at == ResidualPoint::LayerOutput && sel >= 0 && lens_k > 0) logit_lens(sel, h, T, d);
}

// The logit lens (nostalgebraist 2020): the model's own output head — final rms_norm, the tied embedding,
// output_multiplier_scale — applied to a layer's residual stream; at the last layer it is the model's output.
void Inspector::logit_lens(int64_t sel, const float* h, int64_t T, int64_t d) {
  const Weights& w = model_.weights;
  const Kernels& k = ctx_.kernels();
  const int64_t V = w.lm_head.n_out;
  const float eps = static_cast<float>(model_.config.rms_norm_eps);
  const double scale = model_.config.output_multiplier_scale;
  int64_t t = 0;
  while (t < T) {
    int64_t n = 0;
    for (; t < T && n < kLensRows; ++t) {
      const int64_t p = slot(t);
      if (p < opt_.lens_from) continue;  // not recorded (-1), or before the positions asked for
      k.rms_norm(h + t * d, w.rms_norm.data(), lens_in_.data() + n * d, d, eps);
      lens_pos_[static_cast<size_t>(n++)] = p;
    }
    if (n == 0) break;
    matmul(ctx_, w.lm_head, lens_in_.data(), lens_out_.data(), n);  // [n, V]
    for (int64_t r = 0; r < n; ++r) {
      float* row = lens_out_.data() + r * V;
      for (int64_t v = 0; v < V; ++v) row[v] = static_cast<float>(row[v] * scale);
      const float mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      const size_t at = static_cast<size_t>((lens_pos_[static_cast<size_t>(r)] * N + sel) * lens_k);
      top_n(row, V, lens_k, lens_ids.data() + at, lens_probs.data() + at);
      for (int64_t j = 0; j < lens_k; ++j)
        lens_probs[at + static_cast<size_t>(j)] =
            static_cast<float>(std::exp(static_cast<double>(lens_probs[at + static_cast<size_t>(j)]) - mx) / sum);
    }
  }
}

void Inspector::router(int64_t layer, int64_t t, const float* probs, int64_t e, const int64_t* ch, int64_t k) {
  const int64_t p = slot(t);
  if (p < 0) return;
  std::copy_n(probs, e, router_probs.data() + (p * L + layer) * E);
  for (int64_t j = 0; j < k; ++j) chosen[static_cast<size_t>((p * L + layer) * K + j)] = static_cast<int32_t>(ch[j]);
}

void Inspector::attention_logits(int64_t layer, int64_t t, int64_t head, const float* capped, int64_t S) {
  if (!opt_.attention) return;
  const int32_t sel = selected_of_[static_cast<size_t>(layer)];
  const int64_t p = slot(t);
  if (sel < 0 || p < 0) return;
  int64_t n = 0;
  for (int64_t j = 0; j < S; ++j) n += std::fabs(capped[j]) >= kCapSaturation * cap_;
  attn_saturated[static_cast<size_t>((p * N + sel) * H + head)] = static_cast<float>(n) / static_cast<float>(S);
}

void Inspector::attention_weights(int64_t layer, int64_t t, int64_t head, const float* wts, int64_t S) {
  if (!opt_.attention) return;
  const int32_t sel = selected_of_[static_cast<size_t>(layer)];
  const int64_t p = slot(t);
  if (sel < 0 || p < 0) return;
  const size_t at = static_cast<size_t>((p * N + sel) * H + head);
  double ent = 0;
  for (int64_t j = 0; j < S; ++j)
    if (wts[j] > 0) ent -= static_cast<double>(wts[j]) * std::log(static_cast<double>(wts[j]));
  attn_entropy[at] = static_cast<float>(ent);
  attn_sink[at] = wts[0];
  top_n(wts, S, kAttentionTop, attn_top_pos.data() + at * kAttentionTop, attn_top_w.data() + at * kAttentionTop);
  if (!attn_full.empty()) std::copy_n(wts, std::min(S, P), attn_full.data() + ((sel * H + head) * P + p) * P);
}

float Inspector::router_entropy(int64_t p, int64_t l) const {
  const float* q = router_probs.data() + (p * L + l) * E;
  double ent = 0;
  for (int64_t e = 0; e < E; ++e)
    if (q[e] > 0) ent -= static_cast<double>(q[e]) * std::log(static_cast<double>(q[e]));
  return static_cast<float>(ent);
}

float Inspector::routing_margin(int64_t p, int64_t l) const {
  if (K >= E) return 0.f;
  std::vector<float> q(router_probs.begin() + (p * L + l) * E, router_probs.begin() + (p * L + l + 1) * E);
  std::sort(q.begin(), q.end(), std::greater<float>());
  return q[static_cast<size_t>(K - 1)] - q[static_cast<size_t>(K)];
}

}  // namespace groak
