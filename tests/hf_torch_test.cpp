// Grok-1's Hugging Face ports as they are published: torch.save .bin archives. Both ports' layouts (as
// hf_test.cpp builds them), holding the tiny-a fixture's weights in bf16, must give the logits of those bf16
// values (held as f32 safetensors, a path checked by hf_test.cpp) to the golden bar of 2e-5; every command
// takes the folder; conversion to GGUF keeps the logits and streams in bounded memory. Where Debian's
// python3-torch is installed, the shards are also written by torch itself.
#include <cinttypes>

#include "convert/convert.h"
#include "hf_util.h"
#include "model/loader.h"
#include "model_util.h"
#include "runtime/engine.h"
#include "synth/torch_zip_writer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace groak::test {

namespace {

using pickle::StateDictType;

constexpr double kBar = 2e-5;  // golden_test.cpp's bar for an f32 engine

// Streams bf16(values[i]) little-endian.
pickle::PayloadFill bf16_fill(const std::vector<float>* values) {
  return [values](uint8_t* buf, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t b = f32_to_bf16((*values)[(off + i) / 2]);
      buf[i] = static_cast<uint8_t>((off + i) % 2 ? b >> 8 : b);
    }
  };
}

// torch.save(state_dict of `names`, path) with bf16 storages, one per tensor.
void write_torch_bin(const std::string& path, const std::map<std::string, HfTensor>& ts,
                     const std::vector<std::string>& names, StateDictType dict) {
  std::vector<TorchStorage> storages;
  std::vector<TorchTensorSpec> specs;
  for (const std::string& name : names) {
    const HfTensor& t = ts.at(name);
    storages.push_back({"BFloat16Storage", 2, t.values.size(), bf16_fill(&t.values)});
    specs.push_back({name, storages.size() - 1, 0, t.shape, {}});
  }
  TorchSaveOptions opt;
  opt.archive = fs::path(path).stem().string();
  opt.dict = dict;
  pickle::FileSink out(path);
  write_torch_zip(out, storages, specs, opt);
  out.close();
}

std::string shard_name(size_t k, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "pytorch_model-%05zu-of-%05zu.bin", k + 1, n);
  return buf;
}

// The tensors of `ts` dealt over n shards, as an index {tensor: shard}.
nlohmann::json deal(const std::map<std::string, HfTensor>& ts, size_t n, std::vector<std::vector<std::string>>& shards) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  shards.assign(n, {});
  size_t i = 0;
  for (const auto& [name, t] : ts) {
    const size_t k = i++ * n / ts.size();
    shards[k].push_back(name);
    index["weight_map"][name] = shard_name(k, n);
  }
  return index;
}

// The ports as published: keyfan/grok-1-hf in shards with pytorch_model.bin.index.json (plain dicts, as
// transformers writes shards); hpcai-tech as one pytorch_model.bin holding module.state_dict()'s OrderedDict.
void write_port(const std::string& dir, HfPort port, const std::map<std::string, HfTensor>& ts, const Config& c) {
  fs::create_directories(dir);
  write_config(dir + "/config.json", c);
  if (port == HfPort::HpcaiTech) {
    std::vector<std::string> names;
    for (const auto& [name, t] : ts) names.push_back(name);
    write_torch_bin(dir + "/pytorch_model.bin", ts, names, StateDictType::OrderedDict);
    return;
  }
  std::vector<std::vector<std::string>> shards;
  const nlohmann::json index = deal(ts, 3, shards);
  for (size_t k = 0; k < shards.size(); ++k)
    write_torch_bin(dir + "/" + shard_name(k, shards.size()), ts, shards[k], StateDictType::Dict);
  std::ofstream(dir + "/pytorch_model.bin.index.json") << index.dump(2);
}

const char* port_dir(HfPort p) { return p == HfPort::Keyfan ? "keyfan" : "hpcai"; }

// tiny-a's weights under both ports' names, rounded to bf16; the reference is the same values as f32
// safetensors.
class TorchPorts : public ::testing::Test {
 protected:
  void SetUp() override {
    GROAK_REQUIRE_SHARED(fixture_dir() + "/logits.f32");
    raw_ = std::make_unique<Model>(load_model(fixture_dir()));
    tokens_ = read_tokens(fixture_dir() + "/tokens.txt");
    for (HfPort port : {HfPort::Keyfan, HfPort::HpcaiTech}) {
      auto ts = hf_tensors(*raw_, port);
      round_to_bf16(ts);
      const std::string ref = tmp_ / (std::string("ref-") + port_dir(port));
      fs::create_directories(ref);
      write_config(ref + "/config.json", raw_->config);
      write_safetensors(ref + "/model.safetensors", ts, false);
      write_port(tmp_ / port_dir(port), port, ts, raw_->config);
      tensors_[port] = std::move(ts);
    }
  }
  std::vector<float> reference(HfPort port, const Kernels& k) {
    return logits_of(tmp_ / (std::string("ref-") + port_dir(port)), tokens_, k);
  }
  void check(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    const double err = max_rel_err(got, ref);
    std::printf("[%s] max rel err %.3g vs the bf16 values (bar %.0e)\n", what.c_str(), err, kBar);
    EXPECT_LE(err, kBar) << what;
    EXPECT_EQ(argmax_rows(got, raw_->config.vocab_size), argmax_rows(ref, raw_->config.vocab_size)) << what;
  }
  TempDir tmp_;
  std::unique_ptr<Model> raw_;
  std::vector<int32_t> tokens_;
  std::map<HfPort, std::map<std::string, HfTensor>> tensors_;
};

}  // namespace

TEST_F(TorchPorts, BothPortsGiveTheLogitsOfTheirBf16Values) {
  for (HfPort port : {HfPort::Keyfan, HfPort::HpcaiTech}) {
    const std::string dir = tmp_ / port_dir(port);
    Model m = load_model(dir);
    EXPECT_NE(m.format.find("Hugging Face PyTorch .bin"), std::string::npos) << m.format;
    EXPECT_NE(m.format.find(hf_port_name(port)), std::string::npos) << m.format;
    for (const Kernels* k : {&reference_kernels(), &fast_kernels()})
      check(logits_of(dir, tokens_, *k), reference(port, *k), std::string(port_dir(port)) + " .bin, " + k->name);
  }
  // The index, a shard and the single file are accepted as --model too (the whole folder is loaded).
  const auto ref = logits_of(tmp_ / "keyfan", tokens_, reference_kernels());
  EXPECT_EQ(logits_of(tmp_ / "keyfan/pytorch_model.bin.index.json", tokens_, reference_kernels()), ref);
  EXPECT_EQ(logits_of(tmp_ / "keyfan/pytorch_model-00002-of-00003.bin", tokens_, reference_kernels()), ref);
  EXPECT_EQ(logits_of(tmp_ / "hpcai/pytorch_model.bin", tokens_, reference_kernels()),
            logits_of(tmp_ / "hpcai", tokens_, reference_kernels()));
}

TEST_F(TorchPorts, SafetensorsWinWhenBothAreThere) {
  // transformers prefers safetensors when a folder has both; so does groak.
  const std::string dir = tmp_ / "ref-keyfan";
  write_port(dir, HfPort::Keyfan, tensors_.at(HfPort::Keyfan), raw_->config);
  EXPECT_NE(load_model(dir).format.find("Hugging Face safetensors"), std::string::npos);
  EXPECT_NE(load_model(dir + "/pytorch_model.bin.index.json").format.find("PyTorch .bin"), std::string::npos)
      << "a .bin file or index named as --model picks the .bin files";
}

TEST_F(TorchPorts, ConvertToGgufKeepsTheLogits) {
  Model m = load_model(tmp_ / "keyfan");
  ConvertOptions o;
  o.out = tmp_ / "keyfan-f32.gguf";
  o.plan.file_type = &parse_file_type("F32");
  ConvertReport r = convert_model(m, o);
  ASSERT_EQ(r.files.size(), 1u);
  check(logits_of(o.out, tokens_, reference_kernels()), reference(HfPort::Keyfan, reference_kernels()),
        "keyfan .bin -> f32 GGUF");
}

TEST_F(TorchPorts, EveryCommandTakesTheFolder) {
  const std::string g = GROAK_BIN, dir = tmp_ / "hpcai";
  std::string out;
  ASSERT_EQ(run_command(g + " info --model " + dir, &out), 0) << out;
  EXPECT_NE(out.find("Hugging Face PyTorch .bin"), std::string::npos) << out;
  EXPECT_NE(out.find("model.layers.1.moe_block.experts.7.linear_1.weight"), std::string::npos) << out;
  const std::string f = tmp_ / "l.f32";
  ASSERT_EQ(run_command(g + " logits --kernels reference --model " + dir + " --tokens-file " + fixture_dir() +
                            "/tokens.txt --out " + f, &out), 0) << out;
  check(read_f32(f), reference(HfPort::HpcaiTech, reference_kernels()), "groak logits on the hpcai .bin folder");
  ASSERT_EQ(run_command(g + " convert --model " + dir + " --type q8_0 --out " + (tmp_ / "q8.gguf"), &out), 0) << out;
  EXPECT_TRUE(fs::exists(tmp_ / "q8.gguf"));
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, tmp_ / "tok.model");
  ASSERT_EQ(run_command(g + " generate --model " + (tmp_ / "keyfan") + " --tokenizer " + (tmp_ / "tok.model") +
                            " -p 'Experts route tokens' -n 4 --seed 3", &out), 0) << out;
}

// A model of ~100 MB of bf16 converted by `groak convert` in a child process: the source is mapped and its
// pages released tile by tile, so neither anonymous nor file-backed resident memory approaches its size.
TEST(TorchConvert, StreamsInBoundedMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "resident memory is not meaningful under AddressSanitizer (shadow memory, quarantine)";
#endif
  Config c;
  c.vocab_size = 4096;
  c.emb_size = 512;
  c.num_layers = 1;
  c.num_q_heads = 8;
  c.num_kv_heads = 2;
  c.key_size = 64;
  c.ffn_size_override = 4096;
  c.sequence_len = 64;
  TempDir tmp;
  const std::string dir = tmp / "big";
  fs::create_directories(dir);
  write_config(dir + "/config.json", c);
  // Deterministic small weights (norms 1), streamed: the test never holds the model either.
  std::vector<TorchStorage> storages;
  std::vector<TorchTensorSpec> specs;
  uint64_t model_bytes = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool norm) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    const uint64_t seed = storages.size() * 0x9e3779b97f4a7c15ull;
    storages.push_back({"BFloat16Storage", 2, n, [seed, norm](uint8_t* buf, uint64_t off, size_t k) {
                          for (size_t i = 0; i < k; ++i) {
                            uint64_t x = seed + (off + i) / 2;
                            x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
                            const float v = norm ? 1.0f : (static_cast<float>(x >> 40) / 16777216.0f - 0.5f) * 0.1f;
                            const uint16_t b = f32_to_bf16(v);
                            buf[i] = static_cast<uint8_t>((off + i) % 2 ? b >> 8 : b);
                          }
                        }});
    specs.push_back({name, storages.size() - 1, 0, std::move(shape), {}});
    model_bytes += 2 * n;
  };
  const HfPort port = HfPort::Keyfan;
  const int64_t d = c.emb_size, f = c.ffn_size(), E = c.num_experts;
  add(hf_name(port, Role::InOutEmbed, -1), {c.vocab_size, d}, false);
  add(hf_name(port, Role::FinalNorm, -1), {d}, true);
  add(hf_name(port, Role::Query, 0), {c.q_size(), d}, false);
  add(hf_name(port, Role::Key, 0), {c.kv_size(), d}, false);
  add(hf_name(port, Role::Value, 0), {c.kv_size(), d}, false);
  add(hf_name(port, Role::AttnLinear, 0), {d, c.q_size()}, false);
  for (Role r : {Role::RmsNorm, Role::RmsNorm1, Role::RmsNorm2, Role::RmsNorm3}) add(hf_name(port, r, 0), {d}, true);
  add(hf_name(port, Role::Router, 0), {E, d}, false);
  for (int64_t e = 0; e < E; ++e) {
    add(hf_name(port, Role::MoeLinear, 0, e), {f, d}, false);
    add(hf_name(port, Role::MoeLinearV, 0, e), {f, d}, false);
    add(hf_name(port, Role::MoeLinear1, 0, e), {d, f}, false);
  }
  {
    pickle::FileSink out(dir + "/pytorch_model.bin");
    write_torch_zip(out, storages, specs);
    out.close();
  }
  std::string out;
  ASSERT_EQ(run_command(std::string(GROAK_SOURCE_DIR) + "/scripts/peak_rss.sh " + GROAK_BIN + " convert --model " + dir +
                            " --type q8_0 --out " + (tmp / "big.gguf"), &out), 0) << out;
  unsigned anon_mb = 0, file_mb = 0;
  const size_t at = out.find("peak RssAnon");
  ASSERT_NE(at, std::string::npos) << out;
  ASSERT_EQ(std::sscanf(out.c_str() + at, "peak RssAnon %u MB, peak RssFile %u MB", &anon_mb, &file_mb), 2) << out;
  const unsigned model_mb = static_cast<unsigned>(model_bytes >> 20);
  std::printf("convert of a %u MB .bin model: peak RssAnon %u MB, peak RssFile %u MB\n", model_mb, anon_mb, file_mb);
  EXPECT_LT(anon_mb + file_mb, model_mb / 2) << out;
}

// ---- files written by torch itself (Debian's python3-torch) ------------------------------------------

TEST_F(TorchPorts, RealTorchSaveOfBothPortsGivesTheSameLogits) {
  GROAK_REQUIRE_PYTHON_TORCH();
  for (HfPort port : {HfPort::Keyfan, HfPort::HpcaiTech}) {
    const auto& ts = tensors_.at(port);
    const std::string dir = tmp_ / (std::string("torch-") + port_dir(port)), raw = tmp_ / "raw";
    fs::create_directories(dir);
    fs::create_directories(raw);
    write_config(dir + "/config.json", raw_->config);
    // Raw bf16 bytes per tensor; torch builds the state dicts and saves them.
    std::vector<std::vector<std::string>> shards;
    const size_t n = port == HfPort::Keyfan ? 3 : 1;
    const nlohmann::json index = deal(ts, n, shards);
    nlohmann::json manifest = {{"shards", nlohmann::json::array()}};
    size_t i = 0;
    for (size_t k = 0; k < n; ++k) {
      nlohmann::json shard = {{"file", dir + "/" + (n == 1 ? std::string("pytorch_model.bin") : shard_name(k, n))},
                              {"ordered", n == 1}, {"tensors", nlohmann::json::array()}};
      for (const std::string& name : shards[k]) {
        const HfTensor& t = ts.at(name);
        const std::string path = raw + "/" + std::to_string(i++);
        std::vector<uint8_t> bytes(t.values.size() * 2);
        bf16_fill(&t.values)(bytes.data(), 0, bytes.size());
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                    static_cast<std::streamsize>(bytes.size()));
        shard["tensors"].push_back({{"name", name}, {"shape", t.shape}, {"raw", path}});
      }
      manifest["shards"].push_back(shard);
    }
    std::ofstream(tmp_ / "manifest.json") << manifest.dump();
    if (n > 1) std::ofstream(dir + "/pytorch_model.bin.index.json") << index.dump(2);
    std::string out;
    ASSERT_EQ(run_command(torch_save_py() + " ports " + (tmp_ / "manifest.json"), &out), 0) << out;
    for (const Kernels* k : {&reference_kernels(), &fast_kernels()})
      check(logits_of(dir, tokens_, *k), reference(port, *k), std::string("torch-written ") + port_dir(port) + ", " + k->name);
  }
}

}  // namespace groak::test
