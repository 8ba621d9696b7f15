// Grok-1, top to bottom, following xai-org/grok-1 model.py (spec: shared/docs/GROK1.md §2-§4).
// Names mirror model.py: in_out_embed, rms_norm, multi_head_attention/{query,key,value,linear},
// router, moe/{linear,linear_v,linear_1}. Activations are f32; int8 weights are dequantised exactly
// inside the kernels. Shapes: T tokens in this chunk, d = emb_size, hd = key_size, f = ffn_size,
// E = num_experts, S = positions visible (cache length after this chunk).
#include "model/grok.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <vector>

namespace groak {

namespace {

using Buf = std::vector<float>;

// Applies an RMSNorm row by row: x [T, d] -> y [T, d].
void rms_norm_rows(const Kernels& k, const Buf& x, const std::vector<float>& scale, Buf& y, int64_t T,
                   int64_t d, float eps) {
  for (int64_t t = 0; t < T; ++t) k.rms_norm(x.data() + t * d, scale.data(), y.data() + t * d, d, eps);
}

// multi_head_attention: x [T, d] (already rms_norm'ed) -> out [T, d] (before rms_norm_1).
void attention(const Config& c, const Kernels& k, const LayerWeights& L, KVCache& cache, int64_t layer,
               const int32_t* tokens, const Buf& x, int64_t T, Buf& out) {
  const int64_t hd = c.key_size, nq = c.num_q_heads, nkv = c.num_kv_heads, kv = c.kv_size();
  const int64_t s0 = cache.length();  // first position of this chunk
  const int64_t S = s0 + T;           // keys visible to the last query

  Buf q(static_cast<size_t>(T * nq * hd));  // [T, nq·hd]
  k.matmul(L.query, x.data(), q.data(), T);
  float* K = cache.keys(layer);    // [capacity, nkv·hd]; rows s0 … S-1 written here
  float* V = cache.values(layer);  // [capacity, nkv·hd]
  k.matmul(L.key, x.data(), K + s0 * kv, T);
  k.matmul(L.value, x.data(), V + s0 * kv, T);

  // RoPE on q and k (not v) at absolute positions s0 + t; K is cached after RoPE.
  for (int64_t t = 0; t < T; ++t) {
    k.rope(q.data() + t * nq * hd, nq, hd, s0 + t, static_cast<float>(c.rope_base));
    k.rope(K + (s0 + t) * kv, nkv, hd, s0 + t, static_cast<float>(c.rope_base));
  }

  // Key-padding mask applies to keys of this chunk only (older slots are trusted, spec §4).
  auto key_allowed = [&](int64_t query_pos, int64_t j) {
    if (j > query_pos) return false;                                // causal
    if (j >= s0 && tokens[j - s0] == c.pad_token) return false;     // padding
    return true;
  };

  const int64_t group = nq / nkv;  // query heads per kv head: head h reads kv head h / group
  const float cap = static_cast<float>(c.attn_logit_cap);
  const float mult = static_cast<float>(c.attn_output_multiplier);
  constexpr float kMasked = -1e30f;  // finite, like model.py: a fully masked row becomes uniform
  Buf attn(static_cast<size_t>(T * nq * hd));  // [T, nq·hd] heads concatenated in q-head order
  Buf score(static_cast<size_t>(S));           // [S]
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = s0 + t;
    for (int64_t h = 0; h < nq; ++h) {
      const float* qh = q.data() + (t * nq + h) * hd;  // [hd]
      const int64_t g = h / group;
      for (int64_t j = 0; j < S; ++j) {
        if (!key_allowed(pos, j)) {
          score[j] = kMasked;
          continue;
        }
        const float* kj = K + j * kv + g * hd;  // [hd]
        float dot = 0.f;
        for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
        // attn_output_multiplier scales the logits; then the soft cap 30·tanh(x/30).
        const float z = dot * mult;
        score[j] = cap * std::tanh(z / cap);
      }
      k.softmax(score.data(), S);
      float* o = attn.data() + (t * nq + h) * hd;  // [hd]
      std::fill(o, o + hd, 0.f);
      for (int64_t j = 0; j < S; ++j) {
        const float p = score[j];
        if (p == 0.f) continue;
        const float* vj = V + j * kv + g * hd;
        for (int64_t i = 0; i < hd; ++i) o[i] += p * vj[i];
      }
    }
  }
  k.matmul(L.linear, attn.data(), out.data(), T);  // [T, nq·hd] -> [T, d]
}

// moe: x [T, d] (already rms_norm_2'ed) -> out [T, d] (before rms_norm_3).
void moe(const Config& c, const Kernels& k, const LayerWeights& L, const Buf& x, int64_t T, Buf& out) {
  const int64_t d = c.emb_size, f = c.ffn_size(), E = c.num_experts, top = c.num_selected_experts;

  // Router: softmax over ALL experts in f32; the top-k probabilities are the gates, NOT renormalised.
  Buf probs(static_cast<size_t>(T * E));  // [T, E]
  k.matmul(L.router, x.data(), probs.data(), T);
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(E));  // expert -> (token, gate)
  for (int64_t t = 0; t < T; ++t) {
    float* p = probs.data() + t * E;
    k.softmax(p, E);
    for (int64_t e : top_k_experts(p, E, top)) routed[static_cast<size_t>(e)].push_back({t, p[e]});
  }

  std::fill(out.begin(), out.end(), 0.f);
  for (int64_t e = 0; e < E; ++e) {
    const auto& tok = routed[static_cast<size_t>(e)];
    const int64_t n = static_cast<int64_t>(tok.size());
    if (n == 0) continue;
    Buf xe(static_cast<size_t>(n * d));  // [n, d] the tokens routed to expert e
    for (int64_t r = 0; r < n; ++r) std::copy_n(x.data() + tok[r].first * d, d, xe.data() + r * d);
    Buf gate(static_cast<size_t>(n * f)), up(static_cast<size_t>(n * f));  // [n, f]
    k.matmul(L.moe_linear.expert(e), xe.data(), gate.data(), n);
    k.matmul(L.moe_linear_v.expert(e), xe.data(), up.data(), n);
    k.gelu_tanh(gate.data(), n * f);
    for (int64_t i = 0; i < n * f; ++i) gate[i] *= up[i];  // gelu(x·linear) ⊙ (x·linear_v)
    Buf ye(static_cast<size_t>(n * d));  // [n, d]
    k.matmul(L.moe_linear_1.expert(e), gate.data(), ye.data(), n);
    for (int64_t r = 0; r < n; ++r) {
      float* o = out.data() + tok[r].first * d;
      const float g = tok[r].second;
      for (int64_t i = 0; i < d; ++i) o[i] += g * ye[r * d + i];
    }
  }
}

}  // namespace

std::vector<int64_t> top_k_experts(const float* probs, int64_t E, int64_t k) {
  std::vector<int64_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return probs[a] > probs[b]; });
  order.resize(static_cast<size_t>(k));
  return order;
}

void grok_forward(const Model& model, const Kernels& k, KVCache& cache, const int32_t* tokens, int64_t T,
                  float* logits, LogitRows rows) {
  const Config& c = model.config;
  const Weights& w = model.weights;
  const int64_t d = c.emb_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  assert(T > 0 && cache.length() + T <= cache.capacity());

  // in_out_embed: h = E[token] · embedding_multiplier_scale.  h: [T, d] residual stream.
  Buf h(static_cast<size_t>(T * d));
  for (int64_t t = 0; t < T; ++t) {
    assert(tokens[t] >= 0 && tokens[t] < c.vocab_size);
    k.get_row(w.in_out_embed, tokens[t], h.data() + t * d);
    for (int64_t i = 0; i < d; ++i) h[t * d + i] *= static_cast<float>(c.embedding_multiplier_scale);
  }

  Buf a(static_cast<size_t>(T * d)), b(static_cast<size_t>(T * d));  // [T, d] scratch
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    // h = h + rms_norm_1(attention(rms_norm(h)))
    rms_norm_rows(k, h, L.rms_norm, a, T, d, eps);
    attention(c, k, L, cache, l, tokens, a, T, b);
    rms_norm_rows(k, b, L.rms_norm_1, b, T, d, eps);
    for (int64_t i = 0; i < T * d; ++i) h[i] += b[i];
    // h = h + rms_norm_3(moe(rms_norm_2(h)))
    rms_norm_rows(k, h, L.rms_norm_2, a, T, d, eps);
    moe(c, k, L, a, T, b);
    rms_norm_rows(k, b, L.rms_norm_3, b, T, d, eps);
    for (int64_t i = 0; i < T * d; ++i) h[i] += b[i];
  }
  cache.set_length(cache.length() + T);

  // Final rms_norm, then logits with the (tied) table: (hf · Eᵀ) · output_multiplier_scale.
  const int64_t first = rows == LogitRows::All ? 0 : T - 1;
  const int64_t n = T - first;
  rms_norm_rows(k, h, w.rms_norm, a, T, d, eps);
  k.matmul(w.lm_head, a.data() + first * d, logits, n);
  for (int64_t i = 0; i < n * c.vocab_size; ++i) logits[i] *= static_cast<float>(c.output_multiplier_scale);
}

}  // namespace groak
