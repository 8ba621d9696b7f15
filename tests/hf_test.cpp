// Hugging Face ports: a tiny model written here as safetensors under both ports' tensor names (torch
// layout [out, in], f32 or bf16, single file or sharded) must give the raw checkpoint's logits.
#include "hf_util.h"
#include "kernels/kernels.h"
#include "model/loader.h"
#include "model_util.h"
#include "runtime/engine.h"
#include "synth/synth.h"
#include "test_util.h"
#include "util/error.h"

namespace groak::test {

namespace {

std::vector<float> logits(const std::string& path, const Kernels& k) {
  return logits_of(path, {5, 17, 42, 300, 2, 77, 1, 9, 400, 511, 33, 8}, k);
}

class HfPorts : public ::testing::Test {
 protected:
  void SetUp() override {
    write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 11, tmp_ / "raw", {});
    raw_ = std::make_unique<Model>(load_model(tmp_ / "raw"));
    ref_ = logits(tmp_ / "raw", reference_kernels());
  }
  TempDir tmp_;
  std::unique_ptr<Model> raw_;
  std::vector<float> ref_;
};

}  // namespace

TEST_F(HfPorts, BothPortsInF32GiveTheRawLogits) {
  for (HfPort port : {HfPort::Keyfan, HfPort::HpcaiTech}) {
    const std::string dir = tmp_ / (port == HfPort::Keyfan ? "keyfan" : "hpcai");
    fs::create_directories(dir);
    write_config(dir + "/config.json", raw_->config);
    write_safetensors(dir + "/model.safetensors", hf_tensors(*raw_, port), false);
    auto got = logits(dir, reference_kernels());
    EXPECT_LE(max_rel_err(got, ref_), 1e-6) << hf_port_name(port);
    // A single shard under another name, given as the folder or as the file.
    fs::rename(dir + "/model.safetensors", dir + "/grok-tiny.safetensors");
    EXPECT_EQ(logits(dir, reference_kernels()), got);
    EXPECT_EQ(logits(dir + "/grok-tiny.safetensors", reference_kernels()), got);
    Model m = load_model(dir);
    EXPECT_NE(m.format.find("Hugging Face"), std::string::npos);
  }
}

TEST_F(HfPorts, ShardedBf16WithIndex) {
  const std::string dir = tmp_ / "sharded";
  fs::create_directories(dir);
  write_config(dir + "/config.json", raw_->config);
  auto all = hf_tensors(*raw_, HfPort::Keyfan);
  std::map<std::string, HfTensor> a, b;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  size_t i = 0;
  for (auto& [name, t] : all) {
    const bool first = i++ % 2 == 0;
    (first ? a : b)[name] = t;
    index["weight_map"][name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", a, true);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", b, true);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto got = logits(dir, fast_kernels());
  // The index file itself is accepted as --model too.
  EXPECT_EQ(logits(dir + "/model.safetensors.index.json", fast_kernels()), got);
  // The bf16-exact reference: the same values rounded to bf16 here, stored as f32 in one file, run by the
  // scalar reference kernels. Reading bf16 shards must lose nothing more than that rounding.
  auto exact = all;
  round_to_bf16(exact);
  const std::string ref_dir = tmp_ / "bf16-exact";
  fs::create_directories(ref_dir);
  write_config(ref_dir + "/config.json", raw_->config);
  write_safetensors(ref_dir + "/model.safetensors", exact, false);
  const auto ref_bf16 = logits(ref_dir, reference_kernels());
  for (const Kernels* k : {&reference_kernels(), &fast_kernels()}) {
    const auto g = logits(dir, *k);
    const double err = max_rel_err(g, ref_bf16);
    std::printf("[sharded bf16, %s] max rel err %.3g vs the bf16 values (bar 2e-05)\n", k->name, err);
    EXPECT_LE(err, 2e-5) << k->name;
    EXPECT_EQ(argmax_rows(g, 512), argmax_rows(ref_bf16, 512)) << k->name;
  }
  // And the rounding is real: the f32 model's logits differ (else this test could not tell bf16 from f32).
  EXPECT_GT(max_rel_err(ref_bf16, ref_), 1e-4);
  // A shard named in the index but absent is reported by name.
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
  }
}

TEST_F(HfPorts, WrongShapeAndMissingConfigAreClear) {
  const std::string dir = tmp_ / "bad";
  fs::create_directories(dir);
  auto ts = hf_tensors(*raw_, HfPort::HpcaiTech);
  write_safetensors(dir + "/model.safetensors", ts, false);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  Config c = raw_->config;
  c.ffn_size_override = 340;
  write_config(dir + "/config.json", c);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape should be [340, 64]"), std::string::npos) << e.what();
  }
}

}  // namespace groak::test
