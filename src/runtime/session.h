// One conversation with a model: its KV cache, position and activation workspace, run in an engine
// context (threads, kernels). Checks what the forward pass assumes (token ids in range, context not
// exceeded) and reports violations as groak::Error. Long inputs run in chunks of at most `batch`
// tokens, which bounds the workspace.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/context.h"
#include "model/grok.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "runtime/follow.h"

namespace groak {

// Tokens per forward pass unless a session says otherwise (llama.cpp's n_batch/n_ubatch default).
inline constexpr int64_t kDefaultBatch = 512;

class Session {
 public:
  // context: positions to reserve; 0 = the model's sequence_len. Larger than sequence_len is an error.
  // threads: 0 = every core. The session owns its engine context.
  Session(const Model& model, int64_t context = 0, const Kernels& kernels = fast_kernels(), int threads = 0,
          int64_t batch = kDefaultBatch, KvType cache_type = KvType::F32);
  // Runs in a context owned by the caller (shared by several sessions, one at a time). A sharded model
  // (model.group set) needs a context on that communicator.
  Session(const Model& model, Context& ctx, int64_t context = 0, int64_t batch = kDefaultBatch,
          KvType cache_type = KvType::F32);
  // On rank 0 of a sharded model, the other ranks make and drop a session alongside (runtime/follow.h).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs tokens (a prompt, or one decode token) and returns logits: [T, vocab] for LogitRows::All,
  // [vocab] for LogitRows::LastOnly.
  void eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows);

  int64_t position() const { return cache_.length(0); }  // tokens seen so far
  int64_t context() const { return cache_.capacity(); }
  int64_t batch() const { return ws_.max_tokens(); }
  const KVCache& cache() const { return cache_; }
  void reset() { cache_.set_length(0, 0); }
  // Forgets every position from n on (n ≤ position()); the next token goes to position n.
  void rewind(int64_t n) { cache_.set_length(0, std::min(n, position())); }
  // One forward pass of a batch that follows the rule of batch.h against this session's cache; writes
  // [batch.n_logits(), vocab] logits. Throws groak::Error naming what is wrong with the batch.
  void forward(const Batch& batch, float* logits);
  // Sets sequence seq's cache length (a follower rank mirrors rank 0's cache before each pass).
  void set_length(int64_t seq, int64_t n) { cache_.set_length(seq, n); }
  const Model& model() const { return model_; }
  // The first layer whose output held NaN/Inf in any evaluation so far; -1 if none.
  int64_t first_nonfinite_layer() const { return ws_.first_nonfinite_layer; }
  size_t scratch_bytes() const { return ws_.bytes(); }  // fixed by the batch and context, not the prompt
  Context& ctx() { return *ctx_; }

 private:
  const Model& model_;
  std::unique_ptr<Context> owned_;
  Context* ctx_;
  void open();  // tells the other ranks (rank 0 of a sharded model)
  KVCache cache_;
  Workspace ws_;
  Batch batch_;
};

// The context size a session gets for `context` (0 = sequence_len); throws groak::Error when it exceeds
// the model's sequence_len or is negative.
int64_t checked_context(const Config& c, int64_t context);

}  // namespace groak
