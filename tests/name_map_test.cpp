// The name table: xAI's file order (spelled out here independently of the table) and spot checks of the
// GGUF and Hugging Face names against spec §9.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "model/name_map.h"

namespace groak {
namespace {

std::vector<std::string> xai_order_names(int64_t layers) {
  std::vector<std::string> v;
  for (const RoleAt& at : xai_file_order(layers)) v.push_back(xai_name(at.role, at.layer));
  return v;
}

TEST(NameMap, XaiFileOrderIsTheCheckpointOrder) {
  // GROK1.md §7: the two global tensors, then each layer's 12 parameters, layers in the lexicographic
  // order of their number.
  const std::vector<std::string> per_layer = {
      "moe/linear/w", "moe/linear_1/w", "moe/linear_v/w", "multi_head_attention/key/w",
      "multi_head_attention/linear/w", "multi_head_attention/query/w", "multi_head_attention/value/w",
      "rms_norm/scale", "rms_norm_1/scale", "rms_norm_2/scale", "rms_norm_3/scale", "router/w"};
  std::vector<std::string> expected = {"language_model/in_out_embed/embeddings", "language_model/rms_norm/scale"};
  for (int layer : {0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9})
    for (const auto& p : per_layer) expected.push_back("transformer/decoder_layer_" + std::to_string(layer) + "/" + p);
  EXPECT_EQ(xai_order_names(12), expected);

  const auto big = xai_order_names(64);
  ASSERT_EQ(big.size(), 2u + 12u * 64u);
  EXPECT_TRUE(std::is_sorted(big.begin(), big.end()));
  EXPECT_EQ(std::set<std::string>(big.begin(), big.end()).size(), big.size());
  EXPECT_EQ(big[2 + 12 * 2], "transformer/decoder_layer_10/moe/linear/w");  // 0, 1, then 10
  EXPECT_EQ(xai_file_order(0).size(), 2u);
}

TEST(NameMap, GgufAndHfNames) {
  EXPECT_EQ(gguf_name(Role::InOutEmbed, -1), "token_embd.weight");
  EXPECT_EQ(gguf_name(Role::MoeLinear, 3), "blk.3.ffn_gate_exps.weight");
  EXPECT_EQ(gguf_name(Role::RmsNorm3, 0), "blk.0.layer_output_norm.weight");
  EXPECT_EQ(gguf_expert_name(Role::MoeLinear1, 2, 5), "blk.2.ffn_down.5.weight");
  EXPECT_EQ(hf_name(HfPort::Keyfan, Role::MoeLinear1, 2, 5), "transformer.decoder_layer.2.moe.5.linear_1.weight");
  EXPECT_EQ(hf_name(HfPort::Keyfan, Role::FinalNorm, -1), "transformer.rms_norm.weight");
  EXPECT_EQ(hf_name(HfPort::HpcaiTech, Role::MoeLinearV, 7, 1), "model.layers.7.moe_block.experts.1.linear_v.weight");
  EXPECT_EQ(hf_name(HfPort::HpcaiTech, Role::RmsNorm1, 0), "model.layers.0.post_attn_norm.scale");
  EXPECT_EQ(hf_name(HfPort::HpcaiTech, Role::InOutEmbed, -1), "model.embed_tokens.weight");
  EXPECT_EQ(layer_roles().size(), 12u);
}

}  // namespace
}  // namespace groak
