// How the ranks of a tensor-parallel group stay in step (docs/distributed.md). Rank 0 runs the command
// (tokenizer, sampling, files, the HTTP server) with ordinary Engines; each Engine of a sharded model
// tells the other ranks what it does, at the level of forward passes:
//   open(id, shape)                        -> every rank makes an engine of the same shape (errors agreed),
//   step(id, cache lengths, batch)         -> every rank runs the same batch on its share,
//   save/load/drop a prefix copy           -> the prompt cache's copies, each rank its share,
//   close(id), and at the end quit.
// Sampling, stop strings, rewinds and any number of engines stay on rank 0: a step carries the cache
// lengths, so whatever rank 0 did to its cache between two passes, the others follow.
#pragma once
#include <cstdint>

#include "kernels/context.h"
#include "kernels/kernels.h"
#include "model/communicator.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "util/error.h"

namespace groak {

// A forward pass that failed on this rank after the other ranks started it (they wait in a reduction):
// the group cannot go on, so the job must end (parallel/job.h aborts it).
class PassFailed : public Error {
 public:
  using Error::Error;
};

// What an engine holds, as the other ranks must build it.
struct EngineShape {
  int64_t context = 0, sequences = 1, batch = 0;
  KvType cache_type = KvType::F32;
};

// Rank 0's side (called by Engine; no-ops unless comm has several ranks and this is rank 0).
void announce_open(Communicator& comm, int64_t id, const EngineShape& shape);
void announce_step(Communicator& comm, int64_t id, const Batch& batch, const KVCache& kv);
void announce_close(Communicator& comm, int64_t id);
// A prefix copy of the server's prompt cache (Engine::save_prefix …): every rank does the same to its share.
enum class PrefixOp : int64_t { Save = 5, Load = 6, Drop = 7 };
void announce_prefix(Communicator& comm, int64_t id, PrefixOp op, int64_t key, int64_t seq, int64_t n);
// Ends the other ranks' follow() (once, after the last engine of the command is closed).
void release_followers(Communicator& comm);

// The other ranks: mirror rank 0's engines on this share of `model` until rank 0 releases them.
// Runs every pass in `ctx` (the reductions go over model.group). Throws groak::Error on a broken message.
void follow(const Model& model, Context& ctx);

}  // namespace groak
