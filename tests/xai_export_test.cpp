// groak convert --format xai: any model back into xAI's raw checkpoint (int8 weights, bf16 scales).
#include <cmath>
#include <limits>

#include "convert/xai_export.h"
#include "hf_util.h"
#include "model/loader.h"
#include "model/model_path.h"
#include "model_util.h"
#include "synth/synth.h"
#include "test_util.h"

namespace groak::test {

namespace {

std::vector<int32_t> tokens_of(int64_t vocab, size_t n) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 131 + 7) % static_cast<size_t>(vocab - 3)));
  return t;
}

// The int8 values and scales of one expert's [in, out] matrix as stored.
int8_t q_at(const Matrix& m, int64_t i, int64_t o) { return reinterpret_cast<const int8_t*>(m.data)[i * m.n_out + o]; }
uint16_t s_bits(const Matrix& m, int64_t b, int64_t o) {
  uint16_t v;
  std::memcpy(&v, m.scales + 2 * static_cast<size_t>(b * m.n_out + o), 2);
  return v;
}

}  // namespace

TEST(XaiExport, QuantizesLikeXaiPerColumnAndPerRowBlock) {
  // w_rows [n_out 2, n_in 4]; 2 row blocks of 2 inputs
  const float w[8] = {1.0f, -2.0f, 0.5f, 0.25f,  // output 0
                      0.0f, 0.0f, 3.0f, -3.0f};  // output 1
  int8_t q[8];
  uint16_t s[4];
  quantize_xai_int8(w, 4, 2, 2, q, s);
  EXPECT_EQ(s[0], f32_to_bf16(2.0f / 127));  // block 0, output 0
  EXPECT_EQ(s[1], 0);                        // block 0, output 1: all zero
  EXPECT_EQ(s[2], f32_to_bf16(0.5f / 127));
  EXPECT_EQ(s[3], f32_to_bf16(3.0f / 127));
  EXPECT_EQ(q[1 * 2 + 0], -127);  // [in 1, out 0]: the absmax
  EXPECT_EQ(q[0 * 2 + 0], static_cast<int8_t>(std::nearbyint(1.0f / bf16_to_f32(s[0]))));
  EXPECT_EQ(q[0 * 2 + 1], 0);
  EXPECT_EQ(q[2 * 2 + 1], 127);
  EXPECT_EQ(q[3 * 2 + 1], -127);
  // One block over all inputs: one scale per column.
  quantize_xai_int8(w, 4, 2, 1, q, s);
  EXPECT_EQ(s[0], f32_to_bf16(2.0f / 127));
  EXPECT_EQ(q[3 * 2 + 0], static_cast<int8_t>(std::nearbyint(0.25f / bf16_to_f32(s[0]))));
  float bad[8] = {1, 2, 3, std::numeric_limits<float>::quiet_NaN(), 0, 0, 0, 0};
  EXPECT_THROW(quantize_xai_int8(bad, 4, 2, 1, q, s), Error);
}

// From xAI's own int8, every block whose largest |q| is 127 comes back bit for bit (scale absmax/127
// rounds to the same bf16), and the whole model computes what the source does up to that rounding.
TEST(XaiExport, RawToRawKeepsXaiBlocksAndLogits) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 5, tmp / "raw", {});
  {
    Model src = load_model(tmp / "raw");
    XaiExportReport rep = export_xai_checkpoint(src, {tmp / "out", "", true});
    EXPECT_EQ(rep.files.size(), 2u + 12 * 2 + 1);  // ckpt-0 files + config.json
  }
  Model a = load_model(tmp / "raw"), b = load_model(tmp / "out");
  EXPECT_NE(b.format.find("xAI"), std::string::npos);
  EXPECT_TRUE(has_random_weights(tmp / "out"));  // synthetic in, synthetic out
  size_t kept = 0, blocks = 0;
  for (const auto* pair : {&a.weights.layers[1].moe_linear_1, &a.weights.layers[0].moe_linear}) {
    const bool down = pair == &a.weights.layers[1].moe_linear_1;
    const ExpertMatrices& other = down ? b.weights.layers[1].moe_linear_1 : b.weights.layers[0].moe_linear;
    for (int64_t e = 0; e < 8; ++e) {
      const Matrix &x = pair->expert(e), &y = other.expert(e);
      ASSERT_EQ(x.scale_blocks, y.scale_blocks);
      const int64_t len = x.n_in / x.scale_blocks;
      for (int64_t blk = 0; blk < x.scale_blocks; ++blk)
        for (int64_t o = 0; o < x.n_out; ++o) {
          int amax = 0;
          for (int64_t i = blk * len; i < (blk + 1) * len; ++i) amax = std::max(amax, std::abs(int{q_at(x, i, o)}));
          if (amax != 127) continue;
          ++blocks;
          bool same = s_bits(x, blk, o) == s_bits(y, blk, o);
          for (int64_t i = blk * len; i < (blk + 1) * len && same; ++i) same = q_at(x, i, o) == q_at(y, i, o);
          kept += same;
        }
    }
  }
  EXPECT_GT(blocks, 100u);
  EXPECT_EQ(kept, blocks);
  const auto toks = tokens_of(512, 24);
  const auto ref = logits_of(tmp / "raw", toks, reference_kernels());
  const auto got = logits_of(tmp / "out", toks, reference_kernels());
  const auto [kl, top] = kl_and_top1(ref, got, 512);
  EXPECT_LT(kl, 1e-3);
  EXPECT_GE(top, 0.9);
}

// A float model (a Hugging Face port in F32, as the training script writes) becomes an xAI checkpoint
// whose config states the expert width as run.py does (a widening factor) and whose tokenizer is copied.
TEST(XaiExport, HfF32ToRawWithItsTokenizer) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("small-k"), "small-k", 2, tmp / "raw", {});
  Model raw = load_model(tmp / "raw");
  fs::create_directories(tmp / "hf");
  write_config(tmp / "hf/config.json", raw.config);
  write_safetensors(tmp / "hf/model.safetensors", hf_tensors(raw, HfPort::HpcaiTech), false);
  { std::ofstream(tmp / "tok.model") << "not a real tokenizer, copied as is"; }
  Model hf = load_model(tmp / "hf");
  ASSERT_GT(hf.config.ffn_size_override, 0);
  export_xai_checkpoint(hf, {tmp / "out", tmp / "tok.model"});
  EXPECT_EQ(read_text(tmp / "out/tokenizer.model"), "not a real tokenizer, copied as is");
  EXPECT_FALSE(has_random_weights(tmp / "out"));
  Model out = load_model(tmp / "out");
  EXPECT_EQ(out.config.ffn_size(), raw.config.ffn_size());
  EXPECT_EQ(out.config.widening_factor, 4.5);
  const auto toks = tokens_of(raw.config.vocab_size, 16);
  const auto [kl, top] = kl_and_top1(logits_of(tmp / "hf", toks, reference_kernels()),
                                     logits_of(tmp / "out", toks, reference_kernels()), raw.config.vocab_size);
  EXPECT_LT(kl, 1e-3);
  EXPECT_GE(top, 0.9);
}

TEST(XaiExport, RefusesAFullFolderAndCleansUpAfterAnInterrupt) {
  TempDir tmp;
  write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 5, tmp / "raw", {});
  Model src = load_model(tmp / "raw");
  EXPECT_THROW(export_xai_checkpoint(src, {tmp / "raw", ""}), Error);  // not empty (and the source itself)
  int calls = 0;
  EXPECT_THROW(export_xai_checkpoint(src, {tmp / "out", ""},
                                     [&](uint64_t done, uint64_t) {
                                       if (done > 0 && ++calls == 1) throw Error("interrupted");
                                     }),
               Error);
  // Nothing half-written stays behind: no tensor files, no config.json.
  EXPECT_FALSE(fs::exists(tmp / "out/config.json"));
  EXPECT_TRUE(!fs::exists(tmp / "out/ckpt-0") || fs::is_empty(tmp / "out/ckpt-0"));
}

}  // namespace groak::test
