// The two row-parallel products in parts: why the logits are the same bits on any number of ranks.
// Tensor parallelism cuts two products by their input rows, the attention output projection `linear`
// (by kv-head groups) and every expert's `linear_1` (by width), so each rank computes a partial sum of
// every output and the ranks add the partial sums up. Float addition is not associative: one process
// that summed all inputs in one run and R ranks that add R partial sums differ in the last bits, and
// with 8-bit activations a last-bit difference can move a rounding, then a token of greedy text.
// So every process computes these products as P parts, P fixed by the model (not by the number of
// ranks): the largest divisor of the kv heads whose cuts fall on whole quantisation blocks, 8 for
// Grok-1. The parts are added in the halving tree order (ops.h tree_sum); the experts' gate-weighted
// sum is taken per part, before the tree. A rank whose run of parts is a node of that tree (R a power
// of two dividing P) sums its node, and the communicator adds the ranks' nodes in the same tree order:
// the same additions, in the same order, as one process. Other R stay correct, not bit-identical.
#pragma once
#include <cstdint>
#include <functional>

#include "model/weights.h"

namespace groak {

// P of the whole model m is part of (m may be a share: its sizes are scaled back by m.shard_count).
int64_t model_parts(const Model& m);

// Sets every layer's linear_parts and moe_linear_1_parts to parts [first, first + count) of P of
// L.linear / each L.moe_linear_1, cut by input rows, each through place() (a view as it is, or a
// rank's packed copy), and config.reduction_parts to count. The matrices must be whole (P parts).
void cut_into_parts(Model& m, int64_t P, int64_t first, int64_t count,
                    const std::function<Matrix(const Matrix&)>& place);

// The parts a loaded model computes: all P of a whole model; P/R of a share file of R (one part, its
// whole share, when R does not divide P).
void cut_into_parts(Model& m);

}  // namespace groak
