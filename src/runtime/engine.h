// The engine every command runs the model through: one model, its KV cache for one or more sequences,
// the activation workspace and the engine context (threads, kernels, communicator). It checks what the
// forward pass assumes (token ids in range, positions that continue each sequence, the context not
// exceeded) and reports violations as groak::Error; it tells the other ranks of a sharded model what to
// run (runtime/follow.h); and it traces non-finite logits to the first layer that produced them.
// Long inputs run in chunks of at most `batch` tokens, which bounds the workspace.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "model/grok.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace groak {

// Tokens per forward pass unless an engine says otherwise (llama.cpp's n_batch/n_ubatch default).
inline constexpr int64_t kDefaultBatch = 512;

struct EngineOptions {
  int64_t context = 0;           // positions per sequence; 0 = the model's sequence_len (larger is an error)
  int64_t sequences = 1;         // sequences the KV cache holds (server slots)
  int64_t batch = kDefaultBatch; // tokens per forward pass at most
  KvType cache_type = KvType::F32;
  int threads = 0;               // for an engine that owns its context: 0 = every core
  const Kernels* kernels = nullptr;  // likewise: null = the fastest table for this CPU
};

class Engine {
 public:
  // Owns its engine context (threads and kernels from the options).
  explicit Engine(const Model& model, const EngineOptions& opt = {});
  // Runs in a context owned by the caller (shared by several engines, one at a time). A sharded model
  // (model.group set) needs a context on that communicator.
  Engine(const Model& model, Context& ctx, const EngineOptions& opt = {});
  // On rank 0 of a sharded model, the other ranks make and drop an engine alongside (runtime/follow.h).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One forward pass of a batch that follows the rule of batch.h against this engine's cache; writes
  // [batch.n_logits(), vocab] logits, and (hidden not null) their final-normed hidden states
  // [batch.n_logits(), d]. Throws groak::Error naming what is wrong with the batch.
  void forward(const Batch& batch, float* logits, float* hidden = nullptr);
  // Runs tokens of one sequence (a prompt, or one decode token) in chunks of batch() and returns logits:
  // [T, vocab] for LogitRows::All, [vocab] for LogitRows::LastOnly.
  void eval(std::span<const int32_t> tokens, std::vector<float>& logits, LogitRows rows, int32_t seq = 0);

  int64_t position(int32_t seq = 0) const { return cache_.length(seq); }  // tokens the sequence holds
  int64_t context() const { return cache_.capacity(); }                   // positions per sequence
  int64_t sequences() const { return cache_.n_seq(); }
  int64_t batch() const { return ws_.max_tokens(); }
  const KVCache& cache() const { return cache_; }
  void reset(int32_t seq = 0) { cache_.set_length(seq, 0); }
  // Forgets every position from n on (n ≤ position(seq)); the next token goes to position n.
  void rewind(int64_t n, int32_t seq = 0) { cache_.set_length(seq, std::min(n, position(seq))); }
  // Sets a sequence's cache length (a follower rank mirrors rank 0's cache before each pass).
  void set_length(int32_t seq, int64_t n) { cache_.set_length(seq, n); }
  // Prefix copies for the server's prompt cache (server/prompt_cache.h): positions [0, n) of sequence
  // seq, every layer's K and V, kept by this engine under `key` (a key in use is replaced). On rank 0 of
  // a sharded model the other ranks keep their shares alike. Throws std::bad_alloc (nothing kept).
  void save_prefix(int64_t key, int32_t seq, int64_t n);
  // Positions [0, n) of copy `key` (n ≤ its length) into sequence seq, whose length becomes n.
  void load_prefix(int64_t key, int32_t seq, int64_t n);
  void drop_prefix(int64_t key);
  uint64_t prefix_bytes(int64_t n) const { return cache_.prefix_bytes(n); }  // a copy of n positions here
  const Model& model() const { return model_; }
  Context& ctx() { return *ctx_; }
  size_t scratch_bytes() const { return ws_.bytes(); }  // fixed by the batch and context, not the prompt
  // Not null: every forward pass adds its phases' seconds to *p (groak bench --profile); null: off.
  void profile(PhaseTimes* p) { ws_.phases = p; }
  // Not null: every forward pass is shown to *p (model/probe.h: groak inspect, groak experts); null: off.
  // A sharded model's probe on rank 0 sees rank 0's share of the heads only.
  void probe(ForwardProbe* p) { ws_.probe = p; }

  // Empty when every value of logits[0, n) is finite; otherwise why not, naming the first layer whose
  // output held NaN/Inf in any pass so far and what to do. `pos`: the position the logits belong to.
  std::string nonfinite_logits(const float* logits, int64_t n, int64_t pos) const;

 private:
  void open();  // tells the other ranks (rank 0 of a sharded model)
  struct Prefix {
    int64_t positions = 0;
    std::unique_ptr<uint8_t[]> bytes;  // [prefix_bytes(positions)]
  };
  std::map<int64_t, Prefix> prefixes_;
  const Model& model_;
  std::unique_ptr<Context> owned_;
  Context* ctx_;
  KVCache cache_;
  Workspace ws_;
  Batch batch_;
};

// The context size an engine gets for `context` (0 = sequence_len); throws groak::Error when it exceeds
// the model's sequence_len or is negative.
int64_t checked_context(const Config& c, int64_t context);

}  // namespace groak
