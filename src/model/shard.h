// Tensor parallelism's weights (docs/distributed.md): after binding, rank r of R keeps views of its share
// of every layer and the model's config takes the local sizes, so grok.cpp runs unchanged on a share.
//   attention: kv heads [r·nkv/R, (r+1)·nkv/R) and their query heads: query/key/value by output units,
//              the output projection `linear` by input rows (the model all-reduces its d-wide sums);
//   experts:   every expert's width f split R ways: linear/linear_v by output units, linear_1 by input
//              rows (for R dividing 8 that follows the 8 row blocks of xAI's linear_1 scales);
//   vocabulary: rows [r·V/R, (r+1)·V/R) of the tied table, for the lookup and the logits;
//   replicated: router, norms (small).
// A slice that is contiguous in the file stays a view, so a rank's pages are its own. A strided slice
// (xAI's [in, out] matrices cut by output, GGUF/torch [out, in] ones cut by input) would share every
// page with the neighbouring ranks' columns; on one machine the kernel's fault-around then maps the
// neighbours' pages into each rank (they are in the shared page cache), and even alone a rank would
// touch whole pages at the edges of each row piece. Those slices are packed instead: copied into the
// rank's own memory the first time they are used (the file pages dropped again), so a rank's resident
// memory is its share of the weights it has used, on any machine.
#pragma once
#include <cstdint>

#include "io/share_set.h"
#include "model/weights.h"

namespace groak {

struct ShardReport {
  uint64_t view_bytes = 0;         // weights this rank reads in place (contiguous slices, replicated tensors)
  uint64_t packed_bytes = 0;       // strided slices it copies into its own memory on first use
  uint64_t packed_page_bytes = 0;  // the pages those strided slices cover in the file (what views would touch)
};

// Keeps share `rank` of `ranks` of a loaded model in place (weights, config, vocab_begin, shard_*).
// ranks = 1 changes nothing. Throws groak::Error when `ranks` does not divide the kv heads, the expert
// width, the vocabulary or a quantisation block along a cut.
ShardReport shard_model(Model& m, int rank, int ranks);

// What tells two loaded models apart before sharding: a hash of the configuration, the tensor list
// (names, types, shapes) and sample bytes of the embedding, the final norm and layer 0's query and
// router (different seeds of one architecture differ there). A share file carries its source's.
std::string model_fingerprint(const Model& m);


}  // namespace groak
