// Writes small valid inputs for each fuzz target into OUT/<target>/ (scripts/fuzz.sh runs it). Valid
// seeds let the fuzzer start deep inside each format instead of rediscovering its framing.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "synth/pickle_writer.h"
#include "synth/torch_zip_writer.h"
#include "util/error.h"
#ifdef GROAK_FUZZ_GGUF_WRITER
#include "io/gguf_writer.h"
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void write(const fs::path& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) throw groak::Error(path.string() + ": cannot write");
}

std::vector<uint8_t> counting(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
  return b;
}

struct StEntry {
  const char* name;
  const char* dtype;
  std::vector<int64_t> shape;
  size_t nbytes;
};

// The layout safetensors.torch.save_file produces: u64 length, JSON padded with spaces to 8, data.
std::vector<uint8_t> safetensors(const std::vector<StEntry>& entries, const json& metadata) {
  json h = json::object();
  uint64_t off = 0;
  for (const StEntry& e : entries) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.nbytes}}};
    off += e.nbytes;
  }
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  std::string text = h.dump();
  while (text.size() % 8 != 0) text += ' ';
  std::vector<uint8_t> out(8);
  for (int b = 0; b < 8; ++b) out[b] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * b));
  out.insert(out.end(), text.begin(), text.end());
  std::vector<uint8_t> data = counting(off);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

groak::pickle::NpArray array(groak::pickle::NpDType t, std::vector<int64_t> shape) {
  groak::pickle::NpArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.fill = [](uint8_t* buf, uint64_t offset, size_t n) {
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(offset + i);
  };
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  try {
    fs::create_directories(out / "fuzz_safetensors");
    write(out / "fuzz_safetensors" / "small.safetensors",
          safetensors({{"model.norm.scale", "BF16", {4}, 8}}, nullptr));
    write(out / "fuzz_safetensors" / "mixed.safetensors",
          safetensors({{"a.weight", "F32", {2, 3}, 24},
                       {"b.bias", "BF16", {3}, 6},
                       {"c.half", "F16", {}, 2},
                       {"d.ids", "I64", {2}, 16},
                       {"e.empty", "F32", {0, 4}, 0},
                       {"f.nibbles", "F4", {2, 2}, 2}},
                      json{{"format", "pt"}}));

    fs::create_directories(out / "fuzz_safetensors_index");
    json index = {{"metadata", {{"total_size", 1234}}},
                  {"weight_map",
                   {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                    {"model.norm.scale", "model-00002-of-00002.safetensors"}}}};
    std::string text = index.dump(2);
    write(out / "fuzz_safetensors_index" / "model.safetensors.index.json",
          std::vector<uint8_t>(text.begin(), text.end()));

    // Grammars and schemas as requests send them.
    auto text_seed = [&](const char* target, const char* name, const std::string& t) {
      fs::create_directories(out / target);
      write(out / target / name, std::vector<uint8_t>(t.begin(), t.end()));
    };
    text_seed("fuzz_gbnf", "yes_no", "root ::= (\"yes\" | \"no\") \"!\"{1,3}\n");
    text_seed("fuzz_gbnf", "list",
              "# a comment\nroot ::= item (\",\" ws item)*\nitem ::= [A-Za-z\\u00e9] [a-z0-9_-]{0,8} | \"\\\"\" [^\"\\\\]* \"\\\"\"\nws ::= [ \\t\\n]?\n");
    text_seed("fuzz_json_schema", "object",
              R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"},)"
              R"("kind":{"enum":["cat","dog",null]},"tags":{"type":"array","items":{"type":"boolean"},"maxItems":2}},)"
              R"("required":["name"],"additionalProperties":false})");
    text_seed("fuzz_json_schema", "refs",
              R"({"$ref":"#/$defs/n","$defs":{"n":{"type":"object","properties":{"v":{"type":["number","null"]},)"
              R"("kids":{"type":"array","items":{"$ref":"#/$defs/n"}}},"required":["v"]}}})");

    // The two object graphs of xAI's checkpoint, pickled byte for byte as CPython does.
    using groak::pickle::NpDType;
    fs::create_directories(out / "fuzz_xai_pickle");
    {
      groak::pickle::VectorSink s;
      groak::pickle::pickle_ndarray(s, array(NpDType::F32, {2, 3}));
      write(out / "fuzz_xai_pickle" / "f32_array", s.bytes);
    }
    {
      groak::pickle::VectorSink s;
      groak::pickle::pickle_ndarray(s, array(NpDType::BF16, {4}));
      write(out / "fuzz_xai_pickle" / "bf16_array", s.bytes);
    }
    {
      groak::pickle::VectorSink s;
      groak::pickle::pickle_quantized_weight(s, array(NpDType::I8, {2, 4, 3}), array(NpDType::BF16, {2, 1, 3}));
      write(out / "fuzz_xai_pickle" / "quantized_weight", s.bytes);
    }
    {  // deep nesting near the depth cap, and a list inside itself, for the fuzzer to mutate from
      std::string deep = "\x80\x04N" + std::string(99, '\x85') + "]\x94h";
      deep += '\0';  // BINGET 0
      deep += "a.";
      write(out / "fuzz_xai_pickle" / "deep_nesting", std::vector<uint8_t>(deep.begin(), deep.end()));
      const std::string deeper = "\x80\x04N" + std::string(200000, '\x85') + ".";  // issue 9's 200 KB case
      write(out / "fuzz_xai_pickle" / "deeper_than_the_cap", std::vector<uint8_t>(deeper.begin(), deeper.end()));
    }

    // torch.save archives: a plain dict in torch's zip layout, an OrderedDict with every size in ZIP64 fields
    // (views sharing a storage, an int64 buffer, an empty tensor), and one stripped to bare zip records.
    fs::create_directories(out / "fuzz_torch_zip");
    {
      auto storage = [](const char* type, uint64_t element_size, uint64_t numel) {
        return groak::TorchStorage{type, element_size, numel, [](uint8_t* buf, uint64_t offset, size_t n) {
                                     for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(offset + i);
                                   }};
      };
      const std::vector<groak::TorchStorage> storages = {storage("BFloat16Storage", 2, 8), storage("FloatStorage", 4, 3),
                                                         storage("LongStorage", 8, 2)};
      const std::vector<groak::TorchTensorSpec> tensors = {{"model.norm.scale", 0, 0, {8}, {}},
                                                           {"model.layers.0.attn.q_proj.weight", 0, 2, {2, 3}, {}},
                                                           {"router.weight", 1, 0, {3, 1}, {}},
                                                           {"ids", 2, 0, {2}, {}},
                                                           {"empty", 1, 0, {0, 4}, {}}};
      groak::TorchSaveOptions torch_like, zip64, bare;
      zip64.dict = groak::pickle::StateDictType::OrderedDict;
      zip64.zip = groak::ZipStyle::Zip64Everywhere;
      bare.zip = groak::ZipStyle::Classic;
      bare.alignment = 1;
      for (auto [name, opt] : {std::pair{"dict.bin", torch_like}, {"ordered_zip64.bin", zip64}, {"bare.bin", bare}}) {
        groak::pickle::VectorSink s;
        groak::write_torch_zip(s, storages, tensors, opt);
        write(out / "fuzz_torch_zip" / name, s.bytes);
      }
    }

#ifdef GROAK_FUZZ_GGUF_WRITER
    fs::create_directories(out / "fuzz_gguf");
    {
      groak::GgufWriter w((out / "fuzz_gguf" / "small.gguf").string());
      w.add_string("general.architecture", "grok");
      w.add_u32("grok.block_count", 1);
      w.add_f32("grok.attention.layer_norm_rms_epsilon", 1e-5f);
      w.add_bool("flag", true);
      w.add_strings("tokenizer.ggml.tokens", {"<pad>", "a", "b"});
      w.add_i32s("tokenizer.ggml.token_type", {3, 1, 1});
      constexpr uint32_t kF32 = 0, kF16 = 1;
      w.add_tensor("output_norm.weight", {4}, kF32, 16);
      w.add_tensor("token_embd.weight", {4, 3}, kF16, 24);
      w.write_header();
      std::vector<uint8_t> d = counting(24);
      w.write_data(d.data(), 16);
      w.end_tensor();
      w.write_data(d.data(), 24);
      w.end_tensor();
      w.finish();
      w.commit();  // the writer works under FILE.tmp; without this the seed is removed
    }
    {  // one block of each codebook / ternary / MXFP4 type, so the fuzzer starts inside their decoders
      groak::GgufWriter w((out / "fuzz_gguf" / "iquants.gguf").string());
      w.add_string("general.architecture", "grok");
      struct Block { const char* name; uint32_t type; int64_t n; uint64_t bytes; };  // ggml.h numbers, ggml-common.h sizes
      const Block blocks[] = {{"iq2_xxs", 16, 256, 66}, {"iq2_xs", 17, 256, 74}, {"iq3_xxs", 18, 256, 98},
                              {"iq1_s", 19, 256, 50},   {"iq4_nl", 20, 32, 18},   {"iq3_s", 21, 256, 110},
                              {"iq2_s", 22, 256, 82},   {"iq4_xs", 23, 256, 136}, {"iq1_m", 29, 256, 56},
                              {"tq1_0", 34, 256, 54},   {"tq2_0", 35, 256, 66},   {"mxfp4", 39, 32, 17}};
      for (const Block& b : blocks) w.add_tensor(b.name, {b.n}, b.type, b.bytes);
      w.write_header();
      const std::vector<uint8_t> d = counting(136);
      for (const Block& b : blocks) {
        w.write_data(d.data(), b.bytes);
        w.end_tensor();
      }
      w.finish();
      w.commit();  // the writer works under FILE.tmp; without this the seed is removed
    }
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
