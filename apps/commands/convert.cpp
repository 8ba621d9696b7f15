// groak convert: any readable model to a GGUF for llama.cpp, streaming in bounded memory.
#include <cstdio>
#include <memory>
#include <optional>

#include "../cli.h"
#include "../options.h"
#include "convert/convert.h"
#include "io/gguf.h"
#include "tokenizer/discover.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/vocab_model.h"

namespace groak::cli {

namespace {

struct ConvertArgs {
  std::string model, out, type = "q8_0", split, tokenizer;
  bool allow_requantize = false;
};

int run_convert(const ConvertArgs& a) {
  ConvertOptions opt;
  opt.type = parse_convert_type(a.type);
  opt.out = a.out;
  opt.allow_requantize = a.allow_requantize;
  if (!a.split.empty()) opt.split_max_bytes = parse_size(a.split, "--split-max-size");
  InterruptHandler interrupts;
  auto t0 = std::chrono::steady_clock::now();
  Model m = load_with_progress(a.model);
  opt.inputs = input_files(m, a.tokenizer, a.model);
  std::optional<VocabSpec> vocab;
  if (a.tokenizer.empty() && is_gguf_file(a.model)) {
    vocab = gguf_vocab(GgufFile::open(a.model));
  } else {
    try {
      vocab = vocab_from_tokenizer(open_tokenizer(a.tokenizer, a.model));
    } catch (const Error& e) {
      if (!a.tokenizer.empty()) throw;
      std::fprintf(stderr, "groak: warning: %s\ngroak: warning: writing a GGUF without a vocabulary (llama.cpp needs one)\n", e.what());
    }
  }
  if (vocab && static_cast<int64_t>(vocab->tokens.size()) != m.config.vocab_size)
    throw Error("the tokenizer has " + std::to_string(vocab->tokens.size()) + " pieces but the model's vocabulary is " +
                std::to_string(m.config.vocab_size) + "; pass the tokenizer that belongs to this model (--tokenizer)");
  opt.vocab = vocab ? &*vocab : nullptr;
  ProgressBar bar("convert", uint64_t{1} << 28);
  ConvertReport rep = convert_model(m, opt, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total);
  });
  bar.finish();
  for (const auto& f : rep.fallbacks) std::fprintf(stderr, "groak: note: %s\n", f.c_str());
  if (rep.exact_int8_blocks + rep.requantized_blocks > 0)
    std::fprintf(stderr, "convert: int8 -> q8_0: %llu blocks kept exactly, %llu re-rounded\n",
                 static_cast<unsigned long long>(rep.exact_int8_blocks), static_cast<unsigned long long>(rep.requantized_blocks));
  for (const auto& f : rep.files) std::fprintf(stderr, "convert: wrote %s\n", f.c_str());
  std::fprintf(stderr, "convert: %s, %s in %.1f s\n", a.type.c_str(), human_bytes(static_cast<double>(rep.bytes)).c_str(),
               seconds_since(t0));
  return 0;
}

}  // namespace

Command convert_command() {
  auto a = std::make_shared<ConvertArgs>();
  Command c;
  c.name = "convert";
  c.description = "Convert a model (xAI raw, GGUF, Hugging Face) into a GGUF file for llama.cpp";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("--out", a->out, "output .gguf file (written as FILE.tmp, renamed when complete; never one of the "
                                    "inputs, a device or a FIFO; a symbolic link is followed and its target replaced)")
        ->required();
    cmd.add_flag("--allow-requantize", a->allow_requantize,
                 "allow quantizing weights that are already quantized (e.g. a q8_0 GGUF to q4_k: rounded twice)");
    cmd.add_option("--type", a->type, std::string("type of the weight matrices: ") + convert_type_names())
        ->capture_default_str();
    cmd.add_option("--split-max-size", a->split, "split the output into files of at most this size (e.g. 2G)");
    cmd.add_option("--tokenizer", a->tokenizer, "tokenizer.model to embed (default: the model's own)")
        ->check(CLI::ExistingFile);
  };
  c.check = [a] {
    try {
      parse_convert_type(a->type);
    } catch (const Error& e) {
      throw CLI::ValidationError("--type", e.what());
    }
  };
  c.run = [a](Job&) { return run_convert(*a); };
  return c;
}

}  // namespace groak::cli
