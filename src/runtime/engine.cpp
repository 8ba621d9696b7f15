#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/follow.h"
#include "util/error.h"

namespace groak {

int64_t checked_context(const Config& c, int64_t context) {
  if (context < 0) throw Error("context size must be positive, got " + std::to_string(context));
  if (context == 0) return c.sequence_len;
  if (context > c.sequence_len)
    throw Error("context of " + std::to_string(context) + " tokens exceeds the model's maximum sequence_len of " +
                std::to_string(c.sequence_len) + "; use at most " + std::to_string(c.sequence_len));
  return context;
}

namespace {

// A pass never holds more tokens than every sequence's whole context.
int64_t checked_batch(int64_t batch, int64_t context, int64_t sequences) {
  if (batch < 1 || batch > kMaxProductRows)
    throw Error("batch size must be in [1, " + std::to_string(kMaxProductRows) + "], got " + std::to_string(batch));
  return std::min(batch, context * sequences);
}

int64_t checked_sequences(int64_t n) {
  if (n < 1 || n > kMaxSequences)
    throw Error("the number of sequences must be in [1, " + std::to_string(kMaxSequences) + "], got " + std::to_string(n));
  return n;
}

}  // namespace

Engine::Engine(const Model& model, const EngineOptions& opt)
    : model_(model),
      owned_(std::make_unique<Context>(opt.threads, opt.kernels)),
      ctx_(owned_.get()),
      cache_(model.config.num_layers, checked_context(model.config, opt.context), model.config.kv_size(),
             checked_sequences(opt.sequences), opt.cache_type),
      ws_(model.config, checked_batch(opt.batch, cache_.capacity(), cache_.n_seq()), cache_.capacity(), cache_.n_seq(), *ctx_) {
  open();
}

Engine::Engine(const Model& model, Context& ctx, const EngineOptions& opt)
    : model_(model),
      ctx_(&ctx),
      cache_(model.config.num_layers, checked_context(model.config, opt.context), model.config.kv_size(),
             checked_sequences(opt.sequences), opt.cache_type),
      ws_(model.config, checked_batch(opt.batch, cache_.capacity(), cache_.n_seq()), cache_.capacity(), cache_.n_seq(), *ctx_) {
  open();
}

void Engine::open() {
  Communicator& comm = model_.comm();
  if (comm.size() == 1 || comm.rank() != 0) return;
  // The id is this object's address: unique among the engines alive on rank 0.
  announce_open(comm, reinterpret_cast<int64_t>(this), {cache_.capacity(), cache_.n_seq(), ws_.max_tokens(), cache_.type()});
  const std::string failed = comm.agree("");
  if (!failed.empty()) {
    announce_close(comm, reinterpret_cast<int64_t>(this));  // the ranks that made theirs drop it
    throw Error("could not open an engine on every rank:\n" + failed);
  }
}

Engine::~Engine() {
  if (model_.comm().size() > 1) announce_close(model_.comm(), reinterpret_cast<int64_t>(this));
}

void Engine::save_prefix(int64_t key, int32_t seq, int64_t n) {
  // (A follower's lengths are rank 0's as of the last pass: only rank 0 checks n against them.)
  const bool past_end = model_.comm().rank() == 0 && n > position(seq);
  if (seq < 0 || seq >= sequences() || n < 0 || n > context() || past_end)
    throw Error("save_prefix: positions [0, " + std::to_string(n) + ") of sequence " + std::to_string(seq) +
                " are not in the cache");
  Prefix p{n, std::unique_ptr<uint8_t[]>(new uint8_t[cache_.prefix_bytes(n)])};  // before telling the others
  cache_.copy_prefix_out(seq, n, p.bytes.get());
  prefixes_[key] = std::move(p);
  announce_prefix(model_.comm(), reinterpret_cast<int64_t>(this), PrefixOp::Save, key, seq, n);
}

void Engine::load_prefix(int64_t key, int32_t seq, int64_t n) {
  auto it = prefixes_.find(key);
  if (it == prefixes_.end() || seq < 0 || seq >= sequences() || n < 0 || n > it->second.positions)
    throw Error("load_prefix: no copy " + std::to_string(key) + " of " + std::to_string(n) + " positions for sequence " +
                std::to_string(seq));
  announce_prefix(model_.comm(), reinterpret_cast<int64_t>(this), PrefixOp::Load, key, seq, n);
  cache_.copy_prefix_in(seq, n, it->second.bytes.get(), it->second.positions);
  cache_.set_length(seq, n);
}

void Engine::drop_prefix(int64_t key) {
  if (prefixes_.erase(key)) announce_prefix(model_.comm(), reinterpret_cast<int64_t>(this), PrefixOp::Drop, key, 0, 0);
}

void Engine::forward(const Batch& batch, float* logits, float* hidden) {
  if (const std::string why = check_batch(model_, batch, cache_, ws_); !why.empty()) throw Error(why);
  announce_step(model_.comm(), reinterpret_cast<int64_t>(this), batch, cache_);
  try {
    grok_forward(*ctx_, model_, batch, cache_, ws_, logits, hidden);  // throws only bad_alloc (packing a weight slice)
  } catch (const std::exception& e) {
    if (model_.comm().size() == 1) throw;
    throw PassFailed(std::string("a forward pass failed (") + e.what() + "); the other ranks cannot continue without it");
  }
}

void Engine::eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows, int32_t seq) {
  const Config& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error("no tokens to evaluate");
  if (seq < 0 || seq >= sequences())
    throw Error("sequence " + std::to_string(seq) + " is outside [0, " + std::to_string(sequences()) + ")");
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
      throw Error("token id " + std::to_string(tokens[t]) + " (at index " + std::to_string(t) +
                  ") is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  const int64_t at = position(seq);
  if (at + T > context()) {
    throw Error("context full: " + std::to_string(at) + " tokens already in the context + " + std::to_string(T) +
                " new = " + std::to_string(at + T) + " exceeds the context of " + std::to_string(context()) + " tokens" +
                (context() < c.sequence_len ? " (raise it, up to sequence_len " + std::to_string(c.sequence_len) + ")"
                                            : " (the model's maximum sequence_len)"));
  }
  const int64_t V = c.vocab_size;
  logits.resize(static_cast<size_t>((rows == LogitRows::All ? T : 1) * V));
  int64_t written = 0;  // logit rows so far
  for (int64_t t0 = 0; t0 < T; t0 += batch()) {
    const int64_t n = std::min(batch(), T - t0);
    batch_.clear();
    for (int64_t t = t0; t < t0 + n; ++t)
      batch_.add(tokens[t], seq, position(seq) + (t - t0), rows == LogitRows::All || t == T - 1);
    forward(batch_, logits.data() + written * V);
    written += batch_.n_logits();
  }
}

std::string Engine::nonfinite_logits(const float* logits, int64_t n, int64_t pos) const {
  bool finite = true;
  for (int64_t i = 0; i < n && finite; ++i) finite = std::isfinite(logits[i]);
  if (finite) return {};
  const int64_t l = ws_.first_nonfinite_layer;
  return "the model produced non-finite logits (NaN/Inf) at position " + std::to_string(pos) +
         (l >= 0 ? "; they first appear in the output of layer " + std::to_string(l)
                 : "; the layers were finite, so the final norm or the LM head (in_out_embed) made them") +
         "; the weights hold NaN/Inf or overflow float32: find the tensor with `groak info --model M "
         "--check-weights`, then re-download or re-convert the model";
}

}  // namespace groak
