// Repacking at first use (kernels/repack.h): every Q4_0/Q8_0 [out, in] matrix of a model gets a copy in the
// 8-row interleaved layout, made the first time a product on a table that reads it (AVX-512 VNNI) uses it,
// over that product's threads, so the first token of a large model waits only for the tensors it touches.
// The copy lives in anonymous memory; the file pages it was made from leave the resident set (the page
// cache keeps them), so resident memory stays about one copy of the weights. `--no-repack` keeps pure
// zero-copy (the in-place kernels, same results to the bit).
#pragma once
#include <cstdint>

#include "kernels/context.h"
#include "model/weights.h"

namespace groak {

// Installs the repacked-on-use copies on m's matrices (owned by m.storage) and sets m.repack_bytes to
// the anonymous memory they take once all are made. A sharded model keeps the setting (model/shard.h).
void repack_on_use(Model& m);

// Makes every copy repack_on_use installed now, over ctx's threads (nothing when ctx's table reads the
// weights in place): `groak bench` does this before measuring, as llama-bench's load repacks.
void make_repacked_copies(const Model& m, Context& ctx);

}  // namespace groak
