#include "runtime/session.h"

#include <algorithm>

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
int64_t checked_batch(int64_t batch, int64_t context) {
  if (batch < 1 || batch > kMaxProductRows)
    throw Error("batch size must be in [1, " + std::to_string(kMaxProductRows) + "], got " + std::to_string(batch));
  return std::min(batch, context);
}
}  // namespace

Session::Session(const Model& model, int64_t context, const Kernels& kernels, int threads, int64_t batch,
                 KvType cache_type)
    : model_(model),
      owned_(std::make_unique<Context>(threads, &kernels, model.group)),
      ctx_(owned_.get()),
      cache_(model.config.num_layers, checked_context(model.config, context), model.config.kv_size(), 1, cache_type),
      ws_(model.config, checked_batch(batch, cache_.capacity()), cache_.capacity(), ctx_->threads()) {
  open();
}

Session::Session(const Model& model, Context& ctx, int64_t context, int64_t batch, KvType cache_type)
    : model_(model),
      ctx_(&ctx),
      cache_(model.config.num_layers, checked_context(model.config, context), model.config.kv_size(), 1, cache_type),
      ws_(model.config, checked_batch(batch, cache_.capacity()), cache_.capacity(), ctx_->threads()) {
  open();
}

void Session::open() {
  Communicator& comm = ctx_->comm();
  if (comm.size() != model_.shard_count)
    throw Error("the model holds share " + std::to_string(model_.shard_rank) + " of " + std::to_string(model_.shard_count) +
                " but the engine context joins " + std::to_string(comm.size()) + " process(es); run it in a context on "
                "the model's group");
  if (comm.size() == 1 || comm.rank() != 0) return;
  // The id is this object's address: unique among the sessions alive on rank 0.
  announce_open(comm, reinterpret_cast<int64_t>(this), cache_.capacity(), ws_.max_tokens(), cache_.type());
  const std::string failed = comm.agree("");
  if (!failed.empty()) {
    announce_close(comm, reinterpret_cast<int64_t>(this));  // the ranks that made theirs drop it
    throw Error("could not open a session on every rank:\n" + failed);
  }
}

Session::~Session() {
  if (ctx_->comm().size() > 1) announce_close(ctx_->comm(), reinterpret_cast<int64_t>(this));
}

void Session::forward(const Batch& batch, float* logits) {
  if (const std::string why = check_batch(model_, batch, cache_, ws_); !why.empty()) throw Error(why);
  announce_step(ctx_->comm(), reinterpret_cast<int64_t>(this), batch, cache_);
  try {
    grok_forward(*ctx_, model_, batch, cache_, ws_, logits);  // throws only bad_alloc (packing a weight slice)
  } catch (const std::exception& e) {
    if (ctx_->comm().size() == 1) throw;
    throw PassFailed(std::string("a forward pass failed (") + e.what() + "); the other ranks cannot continue without it");
  }
}

void Session::eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows) {
  const Config& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error("no tokens to evaluate");
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
      throw Error("token id " + std::to_string(tokens[t]) + " (at index " + std::to_string(t) +
                  ") is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  if (position() + T > context()) {
    throw Error("context full: " + std::to_string(position()) + " tokens already in the context + " +
                std::to_string(T) + " new = " + std::to_string(position() + T) + " exceeds the context of " +
                std::to_string(context()) + " tokens" +
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
      batch_.add(tokens[t], 0, position() + (t - t0), rows == LogitRows::All || t == T - 1);
    forward(batch_, logits.data() + written * V);
    written += batch_.n_logits();
  }
}

}  // namespace groak
