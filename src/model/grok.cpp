// Grok-1, top to bottom, following xai-org/grok-1 model.py (spec: shared/docs/GROK1.md §2-§4).
// Names mirror model.py: in_out_embed, rms_norm, multi_head_attention/{query,key,value,linear},
// router, moe/{linear,linear_v,linear_1}. Activations are f32; int8 weights are dequantised exactly
// inside the kernels. Shapes: T tokens in this batch (any mix of sequences), d = emb_size,
// hd = key_size, f = ffn_size, E = num_experts, S = positions a token sees (its position + 1).
// Threads and SIMD live behind ops.h, other processes behind ctx.comm() (tensor parallelism: with R
// ranks each holds 1/R of the heads, of every expert's width and of the vocabulary rows, the config
// gives the local sizes, and the reductions below add up the shares; in one process they do nothing).
// The two products whose shares are partial sums, attention's `linear` and the experts' `linear_1`, are
// computed in the model's fixed parts and added in one tree order (model/parts.h), so that one process
// and several ranks make the same additions.
#include "model/grok.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <chrono>
#include <cmath>
#include <string>

#include "kernels/ops.h"
#include "model/residency.h"

namespace groak {

namespace {

// Adds the time since the previous lap to one phase of ws.phases; nothing when profiling is off.
class PhaseClock {
 public:
  explicit PhaseClock(PhaseTimes* p) : p_(p) {
    if (p_) t_ = std::chrono::steady_clock::now();
  }
  void lap(double PhaseTimes::*phase) {
    if (!p_) return;
    const auto t = std::chrono::steady_clock::now();
    p_->*phase += std::chrono::duration<double>(t - t_).count();
    t_ = t;
  }

 private:
  PhaseTimes* p_;
  std::chrono::steady_clock::time_point t_;
};

// Shows the pass to ws.probe (model/probe.h); nothing when no probe is attached.
class Probes {
 public:
  explicit Probes(ForwardProbe* p) : p_(p) {}
  void begin(const Batch& b) {
    if (p_) p_->begin(b);
  }
  void residual(int64_t l, ResidualPoint at, const float* h, int64_t T, int64_t d) {
    if (p_) p_->residual(l, at, h, T, d);
  }
  void router(int64_t l, int64_t t, const float* probs, int64_t E, const int64_t* chosen, int64_t k) {
    if (p_) p_->router(l, t, probs, E, chosen, k);
  }
  void attention_logits(int64_t l, int64_t t, int64_t head, const float* capped, int64_t S) {
    if (p_) p_->attention_logits(l, t, head, capped, S);
  }
  void attention_weights(int64_t l, int64_t t, int64_t head, const float* w, int64_t S) {
    if (p_) p_->attention_weights(l, t, head, w, S);
  }

 private:
  ForwardProbe* p_;
};

// Applies an RMSNorm row by row: x [T, d] -> y [T, d] (y may alias x).
void rms_norm_rows(Context& ctx, const float* x, const std::vector<float>& scale, float* y, int64_t T, int64_t d,
                   float eps) {
  parallel_for(ctx, T, [&](int64_t t, int) { ctx.kernels().rms_norm(x + t * d, scale.data(), y + t * d, d, eps); });
}

// fn(r, i0, i1) on columns [i0, i1) of row r, over every element of an [n, d] array, the flattened
// elements split over threads when there are enough (an expert's gather and gate-weighted sum).
void parallel_rows_of(Context& ctx, int64_t n, int64_t d, FunctionRef<void(int64_t r, int64_t i0, int64_t i1)> fn) {
  parallel_ranges(ctx, n * d, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1;) {
      const int64_t r = j / d, i0 = j % d, i1 = std::min(d, i0 + (j1 - j));
      fn(r, i0, i1);
      j += i1 - i0;
    }
  });
}

// The batch's tokens grouped by sequence (a counting sort) into ws.seq_begin / by_seq / seq_first_pos,
// so that attention can look up the tokens of a key's sequence in this batch.
void group_by_sequence(const Batch& batch, int64_t S, Workspace& ws) {
  const int64_t T = batch.size();
  int32_t* begin = ws.seq_begin;  // [S + 1]
  std::fill(begin, begin + S + 1, 0);
  for (const BatchToken& bt : batch.tokens) ++begin[bt.seq + 1];
  for (int64_t s = 0; s < S; ++s) begin[s + 1] += begin[s];  // begin[s] = where sequence s starts
  for (int64_t t = 0; t < T; ++t) ws.by_seq[begin[batch.tokens[static_cast<size_t>(t)].seq]++] = static_cast<int32_t>(t);
  for (int64_t s = S; s > 0; --s) begin[s] = begin[s - 1];  // each begin[s] moved to its end: shift back
  begin[0] = 0;
  for (int64_t s = 0; s < S; ++s)
    if (begin[s + 1] > begin[s]) ws.seq_first_pos[s] = batch.tokens[static_cast<size_t>(ws.by_seq[begin[s]])].pos;
}

// multi_head_attention: x [T, d] (already rms_norm'ed) -> out [T, d] (before rms_norm_1).
void attention(Context& ctx, const Config& c, const LayerWeights& L, KVCache& kv, int64_t layer, const Batch& batch,
               const float* x, Workspace& ws, float* out, Probes& probes) {
  const Kernels& k = ctx.kernels();
  const int64_t T = batch.size(), hd = c.key_size, nq = c.num_q_heads, nkv = c.num_kv_heads, kvw = c.kv_size();

  matmul(ctx, L.query, x, ws.q, T);  // q: [T, nq·hd]
  // K and V of this batch: computed into scratch rows, then each row is stored at (seq, pos).
  float* Kn = ws.attn;               // [T, kvw] (attn is free until the heads run)
  float* Vn = ws.xe;                 // [T, kvw]
  matmul(ctx, L.key, x, Kn, T);
  matmul(ctx, L.value, x, Vn, T);

  // RoPE on q and k (not v) at each token's absolute position; K is cached after RoPE.
  parallel_for(ctx, T, [&](int64_t t, int) {
    const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
    k.rope(ws.q + t * nq * hd, nq, hd, bt.pos, static_cast<float>(c.rope_base));
    k.rope(Kn + t * kvw, nkv, hd, bt.pos, static_cast<float>(c.rope_base));
    kv.store(layer, bt.seq, bt.pos, Kn + t * kvw, Vn + t * kvw);
  });

  const int64_t group = nq / nkv;  // query heads per kv head: head h reads kv head h / group
  const float cap = static_cast<float>(c.attn_logit_cap);
  const float mult = static_cast<float>(c.attn_output_multiplier);
  constexpr float kMasked = -1e30f;  // finite, like model.py: a fully masked row becomes uniform
  // One task per (token, query head).
  parallel_for(ctx, T * nq, [&](int64_t task, int thread) {
    const int64_t t = task / nq, h = task % nq, g = h / group;
    const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
    const int64_t S = bt.pos + 1;  // causal: keys 0 … pos of this sequence
    // Head g's slice of the cache: rows of [hd], kvw elements apart.
    const size_t head = static_cast<size_t>(g * hd) * kv_type_bytes(kv.type());
    const void* K = static_cast<const uint8_t*>(kv.keys(layer, bt.seq)) + head;
    const void* V = static_cast<const uint8_t*>(kv.values(layer, bt.seq)) + head;
    float* score = ws.scores + static_cast<size_t>(thread) * kv.capacity();  // [S]
    k.dots(ws.q + (t * nq + h) * hd, K, kv.type(), kvw, S, hd, score);
    // This sequence's tokens in the batch sit at positions first, first + 1, … (batch.h).
    const int64_t first = ws.seq_first_pos[bt.seq];
    const int32_t* mine = ws.by_seq + ws.seq_begin[bt.seq];
    // attn_output_multiplier scales the logits; then the soft cap 30·tanh(x/30).
    k.soft_cap(score, S, cap, mult);
    probes.attention_logits(layer, t, h, score, S);
    // Key-padding mask: keys of this call only (older cache slots are trusted, spec §4).
    for (int64_t j = first; j < S; ++j)
      if (batch.tokens[static_cast<size_t>(mine[j - first])].token == c.pad_token) score[j] = kMasked;
    k.softmax(score, S);
    probes.attention_weights(layer, t, h, score, S);
    k.weighted_sum(score, V, kv.type(), kvw, S, hd, ws.attn + (t * nq + h) * hd);
  });
  // out = attn·linear: [T, nq·hd] -> [T, d], as the tree sum of its parts (model/parts.h); q is free now
  // and holds attn's parts side by side.
  const int64_t n = c.reduction_parts, d = c.emb_size;
  float* ys[kMaxParts];  // [T, d] each: part 0 in out
  for (int64_t p = 0; p < n; ++p) ys[p] = p == 0 ? out : ws.parts_y + (p - 1) * T * d;
  matmul_parts(ctx, L.linear_parts.data(), n, L.linear, ws.attn, ws.q, ys, T, [&](int64_t o0, int64_t o1) {
    for (int64_t t = 0; t < T; ++t) tree_sum(ys, n, t * d + o0, t * d + o1);
  });
}

// moe: x [T, d] (already rms_norm_2'ed) -> out [T, d] (before rms_norm_3).
void moe(Context& ctx, const Config& c, const Weights& w, int64_t layer, const float* x, int64_t T,
         Workspace& ws, float* out, PhaseClock& clock, Probes& probes) {
  const LayerWeights& L = w.layers[static_cast<size_t>(layer)];
  const Kernels& k = ctx.kernels();
  const int64_t d = c.emb_size, E = c.num_experts, top = c.num_selected_experts;

  // Router: softmax over ALL experts in f32; the top-k probabilities are the gates, NOT renormalised.
  matmul(ctx, L.router, x, ws.probs, T);  // [T, E]
  std::fill(ws.routed_count, ws.routed_count + E, 0);
  for (int64_t t = 0; t < T; ++t) {
    float* p = ws.probs + t * E;
    k.softmax(p, E);
    top_k_experts(p, E, top, ws.chosen);
    probes.router(layer, t, p, E, ws.chosen, top);
    for (int64_t j = 0; j < top; ++j) {
      const int64_t e = ws.chosen[j];
      const int64_t at = e * T + ws.routed_count[e]++;  // expert e's list: [T] slots
      ws.routed_token[at] = static_cast<int32_t>(t);
      ws.routed_gate[at] = p[e];
    }
  }
  clock.lap(&PhaseTimes::router);
  // A model larger than memory: the disk starts on every chosen expert now, not when its turn comes.
  if (w.read_ahead_experts) read_ahead_experts(L, ws.routed_count, E);

  // The gate-weighted sum is kept per part of linear_1 (model/parts.h): acc[p] [T, d], acc[0] is out.
  const int64_t P = c.reduction_parts;
  float* acc[kMaxParts];
  for (int64_t p = 0; p < P; ++p) acc[p] = p == 0 ? out : ws.parts_acc + (p - 1) * T * d;
  parallel_ranges(ctx, T * d, [&](int64_t i0, int64_t i1) {
    for (int64_t p = 0; p < P; ++p) std::fill(acc[p] + i0, acc[p] + i1, 0.f);
  });
  // Each expert runs once on all of its tokens, so its weights are read once per batch.
  for (int64_t e = 0; e < E; ++e) {
    const int32_t* tok = ws.routed_token + e * T;  // [n] its tokens
    const float* gates = ws.routed_gate + e * T;   // [n] their gates
    const int64_t n = ws.routed_count[e];
    if (n == 0) continue;
    parallel_rows_of(ctx, n, d, [&](int64_t r, int64_t i0, int64_t i1) {  // xe: [n, d], its tokens' rows
      std::copy(x + tok[r] * d + i0, x + tok[r] * d + i1, ws.xe + r * d + i0);
    });
    // gate = gelu(xe·linear) ⊙ (xe·linear_v): [n, f], both products and the GELU in one pass
    matmul_gelu_gated(ctx, L.moe_linear.expert(e), L.moe_linear_v.expert(e), ws.xe, ws.gate, ws.up, n);
    // ye[p] = gate's part p · linear_1's part p: [n, d] each (up is free and holds gate's parts). Then the
    // gate-weighted sum, experts in index order for every token (batch-invariant); a token is in an
    // expert's list once, so the threads' column ranges write disjoint elements of each acc[p].
    float* ye[kMaxParts];
    for (int64_t p = 0; p < P; ++p) ye[p] = p == 0 ? ws.ye : ws.parts_y + (p - 1) * n * d;
    matmul_parts(ctx, L.moe_linear_1_parts[static_cast<size_t>(e)].data(), P, L.moe_linear_1.expert(e), ws.gate,
                 ws.up, ye, n, [&](int64_t o0, int64_t o1) {
                   for (int64_t p = 0; p < P; ++p)
                     for (int64_t r = 0; r < n; ++r) {
                       float* o = acc[p] + tok[r] * d;
                       const float* y = ye[p] + r * d;
                       const float g = gates[r];
                       for (int64_t i = o0; i < o1; ++i) o[i] += g * y[i];
                     }
                 });
  }
  // out = the parts' tree sum.
  parallel_ranges(ctx, T * d, [&](int64_t i0, int64_t i1) { tree_sum(acc, P, i0, i1); });
}

}  // namespace

void top_k_experts(const float* probs, int64_t E, int64_t k, int64_t* out) {
  // Selection by insertion: k and E are tiny (2 of 8), and a strict > keeps the lower index first on ties.
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      bool taken = false;
      for (int64_t i = 0; i < j; ++i) taken = taken || out[i] == e;
      if (!taken && (best < 0 || probs[e] > probs[best])) best = e;
    }
    out[j] = best;
  }
}

std::vector<int64_t> top_k_experts(const float* probs, int64_t E, int64_t k) {
  std::vector<int64_t> out(static_cast<size_t>(k));
  top_k_experts(probs, E, k, out.data());
  return out;
}

namespace {
bool all_finite(Context& ctx, const float* x, int64_t n) {
  std::atomic<bool> ok{true};
  parallel_ranges(ctx, n, [&](int64_t i0, int64_t i1) {
    uint32_t bad = 0;  // an exponent of all ones is Inf or NaN (integer test: no dependency chain)
    for (int64_t i = i0; i < i1; ++i)
      bad |= static_cast<uint32_t>((std::bit_cast<uint32_t>(x[i]) & 0x7f800000u) == 0x7f800000u);
    if (bad) ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

// h += b over [n) floats, split over threads when large.
void add_into(Context& ctx, float* h, const float* b, int64_t n) {
  parallel_ranges(ctx, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) h[i] += b[i];
  });
}
}  // namespace

void grok_forward(Context& ctx, const Model& model, const Batch& batch, KVCache& kv, Workspace& ws, float* logits,
                  float* hidden) {
  const Config& c = model.config;
  const Weights& w = model.weights;
  const Kernels& k = ctx.kernels();
  const int64_t d = c.emb_size, T = batch.size();
  const float eps = static_cast<float>(c.rms_norm_eps);
  Communicator& comm = model.comm();
  assert(check_batch(model, batch, kv, ws).empty());  // Engine::forward checks it in every build

  PhaseClock clock(ws.phases);
  Probes probes(ws.probe);
  probes.begin(batch);
  group_by_sequence(batch, kv.n_seq(), ws);  // for the key-padding mask

  // in_out_embed: h = E[token] · embedding_multiplier_scale.  h: [T, d] residual stream.
  // The table holds rows [vocab_begin, vocab_begin + n_out); a token outside them is zero here and
  // arrives with the reduction from the share that holds it.
  float* h = ws.h;
  const Matrix& E = w.in_out_embed;
  parallel_for(ctx, T, [&](int64_t t, int) {
    const int64_t row = batch.tokens[static_cast<size_t>(t)].token - w.vocab_begin;
    if (row < 0 || row >= E.n_out) {
      std::fill(h + t * d, h + (t + 1) * d, 0.f);
      return;
    }
    k.get_row(E, row, h + t * d);
    for (int64_t i = 0; i < d; ++i) h[t * d + i] *= static_cast<float>(c.embedding_multiplier_scale);
  });
  clock.lap(&PhaseTimes::embed);
  comm.all_reduce_sum(h, T * d);
  clock.lap(&PhaseTimes::reduce);

  float *a = ws.a, *b = ws.b;  // [T, d] scratch
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    probes.residual(l, ResidualPoint::LayerInput, h, T, d);
    // h = h + rms_norm_1(attention(rms_norm(h)))
    rms_norm_rows(ctx, h, L.rms_norm, a, T, d, eps);
    attention(ctx, c, L, kv, l, batch, a, ws, b, probes);
    clock.lap(&PhaseTimes::attention);
    comm.all_reduce_sum(b, T * d);  // + the other heads' share of the output projection
    clock.lap(&PhaseTimes::reduce);
    rms_norm_rows(ctx, b, L.rms_norm_1, b, T, d, eps);
    add_into(ctx, h, b, T * d);
    probes.residual(l, ResidualPoint::AfterAttention, h, T, d);
    // h = h + rms_norm_3(moe(rms_norm_2(h)))
    rms_norm_rows(ctx, h, L.rms_norm_2, a, T, d, eps);
    clock.lap(&PhaseTimes::attention);
    moe(ctx, c, w, l, a, T, ws, b, clock, probes);
    clock.lap(&PhaseTimes::experts);
    comm.all_reduce_sum(b, T * d);  // + the other shares of every expert's width
    clock.lap(&PhaseTimes::reduce);
    rms_norm_rows(ctx, b, L.rms_norm_3, b, T, d, eps);
    add_into(ctx, h, b, T * d);
    clock.lap(&PhaseTimes::experts);
    probes.residual(l, ResidualPoint::LayerOutput, h, T, d);
    if (ws.first_nonfinite_layer < 0 && !all_finite(ctx, h, T * d)) ws.first_nonfinite_layer = l;  // diagnostics only
  }
  for (const BatchToken& bt : batch.tokens) kv.set_length(bt.seq, std::max(kv.length(bt.seq), bt.pos + 1));

  // Final rms_norm of the rows whose logits are wanted, then the (tied) table:
  // logits = (hf · Eᵀ) · output_multiplier_scale.
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t)
    if (batch.tokens[static_cast<size_t>(t)].logits) k.rms_norm(h + t * d, w.rms_norm.data(), a + (n++) * d, d, eps);
  if (n == 0) return clock.lap(&PhaseTimes::head);
  if (hidden) std::copy(a, a + n * d, hidden);
  const int64_t rows = w.lm_head.n_out;  // vocab, or this share's rows of it
  matmul(ctx, w.lm_head, a, logits, n);  // [n, rows]
  parallel_ranges(ctx, n * rows, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) logits[i] *= static_cast<float>(c.output_multiplier_scale);
  });
  clock.lap(&PhaseTimes::head);
  comm.gather_columns(logits, n, rows);  // [n, vocab] where the sampling happens
  clock.lap(&PhaseTimes::reduce);
}

std::string check_batch(const Model& model, const Batch& batch, const KVCache& kv, const Workspace& ws) {
  const Config& c = model.config;
  if (batch.size() == 0) return "the batch is empty";
  if (batch.size() > ws.max_tokens())
    return "the batch has " + std::to_string(batch.size()) + " tokens, more than the " +
           std::to_string(ws.max_tokens()) + " the workspace was sized for";
  std::vector<int64_t> next(static_cast<size_t>(kv.n_seq()));
  for (int64_t s = 0; s < kv.n_seq(); ++s) next[static_cast<size_t>(s)] = kv.length(s);
  for (int64_t t = 0; t < batch.size(); ++t) {
    const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
    const auto at = [t] { return " (batch index " + std::to_string(t) + ")"; };  // built only for a message
    if (bt.token < 0 || bt.token >= c.vocab_size)
      return "token id " + std::to_string(bt.token) + at() + " is outside the vocabulary [0, " +
             std::to_string(c.vocab_size) + ")";
    if (bt.seq < 0 || bt.seq >= kv.n_seq())
      return "sequence id " + std::to_string(bt.seq) + at() + " is outside [0, " + std::to_string(kv.n_seq()) + ")";
    int64_t& expect = next[static_cast<size_t>(bt.seq)];
    if (bt.pos != expect)
      return "position " + std::to_string(bt.pos) + at() + " of sequence " + std::to_string(bt.seq) +
             " should be " + std::to_string(expect) + " (positions continue the sequence, in order)";
    if (bt.pos >= kv.capacity())
      return "position " + std::to_string(bt.pos) + at() + " is beyond the context of " +
             std::to_string(kv.capacity()) + " tokens";
    ++expect;
  }
  return {};
}

namespace {
// Hands out consecutive pieces of one buffer, each on a cache line; with no buffer it only measures.
struct Carver {
  uint8_t* base = nullptr;
  size_t used = 0;
  template <class T>
  T* take(int64_t n) {
    constexpr size_t kAlign = 64;
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += (static_cast<size_t>(n) * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    return p;
  }
};
}  // namespace

Workspace::Workspace(const Config& c, int64_t max_tokens, int64_t capacity, int64_t sequences, Context& ctx)
    : max_tokens_(max_tokens), capacity_(capacity) {
  const int64_t T = max_tokens, d = c.emb_size, qw = c.q_size(), f = c.ffn_size(), E = c.num_experts;
  const int64_t kvw = c.kv_size();
  auto carve = [&](Carver& m) {
    h = m.take<float>(T * d);
    a = m.take<float>(T * d);
    b = m.take<float>(T * d);
    q = m.take<float>(T * qw);
    attn = m.take<float>(T * std::max(qw, kvw));
    probs = m.take<float>(T * E);
    xe = m.take<float>(T * std::max(d, kvw));
    gate = m.take<float>(T * f);
    up = m.take<float>(T * f);
    ye = m.take<float>(T * d);
    parts_y = m.take<float>((c.reduction_parts - 1) * T * d);
    parts_acc = m.take<float>((c.reduction_parts - 1) * T * d);
    scores = m.take<float>(ctx.threads() * capacity);
    seq_first_pos = m.take<int64_t>(sequences);
    seq_begin = m.take<int32_t>(sequences + 1);
    by_seq = m.take<int32_t>(T);
    routed_count = m.take<int32_t>(E);
    routed_token = m.take<int32_t>(E * T);
    routed_gate = m.take<float>(E * T);
    chosen = m.take<int64_t>(c.num_selected_experts);
  };
  Carver measure;
  carve(measure);
  mem_ = ZeroedBuffer(measure.used);
  Carver place{mem_.get<uint8_t>()};
  carve(place);
  // The quantised activations of the widest product (so that no pass grows the buffer).
  const int64_t widest = (std::max({d, qw, f}) + 255) / 256 * 256;  // whole blocks of either format
  ctx.reserve_act(static_cast<size_t>(T) * std::max(act_row_bytes(ActFormat::Q8_0, widest),
                                                    act_row_bytes(ActFormat::Q8_K, widest)));
}

}  // namespace groak
