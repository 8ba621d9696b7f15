// A model larger than the memory it runs in (docs/perf.md, "A model bigger than RAM"): the weights stay
// mapped and the page cache holds what fits, so every token re-reads from disk whatever was evicted. Two
// aids: the dense weights (attention, routers, the embedding / LM head: read by every token) can be
// locked in RAM so that only experts are ever re-read, and the experts a layer's router chose can be
// announced to the kernel before they are used, so the disk reads the second expert while the first
// one computes.
#pragma once
#include <cstdint>
#include <string>

#include "model/weights.h"

namespace groak {

// Bytes of the weights a model maps (every tensor as stored).
uint64_t weight_file_bytes(const Model& m);

// Locks the pages of the dense weights in RAM (mlock: they are faulted in now and never evicted) and
// returns the bytes locked. Throws groak::Error naming the limit (ulimit -l, the memory cgroup) when the
// kernel refuses.
uint64_t lock_dense_weights(const Model& m);

// MADV_WILLNEED over the weights of the experts with routed[e] > 0 of a layer: the kernel starts reading
// the ones not in the page cache and returns (a few system calls when they are all resident).
void read_ahead_experts(const LayerWeights& L, const int32_t* routed, int64_t E);

}  // namespace groak
