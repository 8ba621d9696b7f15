// Grok-1's parameters as views into the model files, named as in model.py. Shapes use the official
// [in, out] convention (y = x·W); d = emb_size, f = ffn_size, E = num_experts, hd = key_size.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "model/communicator.h"
#include "model/config.h"

namespace groak {

struct LayerWeights {
  // multi_head_attention
  Matrix query;    // [d, num_q_heads·hd]
  Matrix key;      // [d, num_kv_heads·hd]
  Matrix value;    // [d, num_kv_heads·hd]
  Matrix linear;   // [num_q_heads·hd, d]  output projection
  // norms, f32 copies (tiny): [d] each
  std::vector<float> rms_norm;    // before attention
  std::vector<float> rms_norm_1;  // after attention, before the residual add
  std::vector<float> rms_norm_2;  // before the MoE
  std::vector<float> rms_norm_3;  // after the MoE, before the residual add
  // moe
  Matrix router;                // [d, E] f32
  ExpertMatrices moe_linear;    // E × [d, f]  GELU branch ("gate")
  ExpertMatrices moe_linear_v;  // E × [d, f]  linear branch ("up")
  ExpertMatrices moe_linear_1;  // E × [f, d]  down projection
  // The two row-parallel products as the forward pass computes them: this process's parts of `linear`
  // and of each expert's `linear_1`, cut by input rows (model/parts.h). n = config.reduction_parts.
  std::vector<Matrix> linear_parts;                      // n × [nq·hd / n, d]
  std::vector<std::vector<Matrix>> moe_linear_1_parts;  // E × n × [f / n, d]
};

struct Weights {
  Matrix in_out_embed;          // one row per token: OutIn, n_in = d, n_out = vocab (a rank's share: vocab / R)
  Matrix lm_head;               // output projection, OutIn [vocab rows of d]; Grok-1 ties it to in_out_embed
  int64_t vocab_begin = 0;      // token id of in_out_embed's and lm_head's first row (0 unless sharded)
  std::vector<float> rms_norm;  // final norm [d]
  std::vector<LayerWeights> layers;  // numeric layer order
  // The model does not fit in memory: each layer announces its chosen experts to the kernel before using
  // them (model/residency.h), so disk reads overlap compute.
  bool read_ahead_experts = false;
};

// One line of `groak info`'s tensor table.
struct TensorRecord {
  std::string name;
  std::string dtype;   // e.g. "int8+bf16 scales [8, 8, 64]" or "float32"
  std::vector<int64_t> shape;
  uint64_t bytes = 0;
};

// A loaded model: configuration, weight views and the mappings that keep them valid.
struct Model {
  Config config;
  Weights weights;
  std::string format;                   // e.g. "xAI raw checkpoint (ckpt-0)"
  std::string location;                 // where it was loaded from
  std::vector<TensorRecord> tensors;    // file order
  std::vector<std::string> warnings;    // settings of the file that groak overrides, for the user
  std::vector<std::string> files;       // every file it was read from (weights, index, config): never an output
  std::shared_ptr<const void> storage;  // owns the mappings
  // Anonymous memory the matrices' repacked copies take once every one has been used (model/repack.h);
  // 0 = none (--no-repack, or no Q4_0/Q8_0 matrix).
  uint64_t repack_bytes = 0;
  // Tensor parallelism (model/shard.h): this process holds share `shard_rank` of `shard_count`, and its
  // config holds the local sizes (heads, expert width). `group` joins the shares; null in one process.
  int shard_rank = 0, shard_count = 1;
  // A share written by `groak shard`: the whole model's model_fingerprint() (model/shard.h); else empty.
  std::string source_fingerprint;
  std::shared_ptr<Communicator> group;
  // The communicator the forward pass reduces over: the group, or a no-op one.
  Communicator& comm() const { return group ? *group : one_process(); }

  uint64_t parameter_count() const;
  uint64_t weight_bytes_per_token() const;  // bytes read to decode one token (attention, top-k experts, LM head)
  uint64_t kv_bytes_per_token() const;      // KV cache (f32) per token
};

}  // namespace groak
