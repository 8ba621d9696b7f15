// groak convert: any readable model to a GGUF for llama.cpp, or to xAI's raw checkpoint, in bounded memory.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "../cli.h"
#include "../options.h"
#include "convert/convert.h"
#include "convert/xai_export.h"
#include "model/model_path.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

struct ConvertArgs {
  std::string model, out, format = "gguf", type = "Q8_0", split, tokenizer, imatrix, output_type, embedding_type;
  std::vector<std::string> tensor_types;
  bool allow_requantize = false, pure = false;
  int threads = 0;
  std::vector<const CLI::Option*> gguf_only;  // options that only a GGUF output takes
};

// "3m05s", "42s": a rough time left.
std::string eta_text(double seconds) {
  char b[32];
  if (seconds >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(seconds / 3600), static_cast<int>(seconds / 60) % 60);
  else if (seconds >= 60) std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
  else std::snprintf(b, sizeof b, "%ds", static_cast<int>(seconds));
  return b;
}

QuantPlanOptions plan_options(const ConvertArgs& a) {
  QuantPlanOptions p;
  p.file_type = &parse_file_type(a.type);
  p.pure = a.pure;
  if (!a.output_type.empty()) p.output_type = parse_tensor_type(a.output_type);
  if (!a.embedding_type.empty()) p.token_embedding_type = parse_tensor_type(a.embedding_type);
  for (const auto& r : a.tensor_types) p.tensor_types.push_back(parse_tensor_type_rule(r));
  return p;
}

// xAI's raw format: ckpt-0/ + config.json + tokenizer.model, int8 weights with bf16 scales.
int run_convert_xai(const ConvertArgs& a) {
  InterruptHandler interrupts;
  const auto t0 = std::chrono::steady_clock::now();
  Model m = load_with_progress(a.model);
  const std::string tok = tokenizer_file(a.tokenizer, a.model);
  if (tok.empty())
    std::fprintf(stderr, "groak: warning: no tokenizer.model found for %s; the checkpoint is written without one "
                 "(pass --tokenizer FILE to include it)\n", a.model.c_str());
  ProgressBar bar("convert", uint64_t{1} << 28);
  XaiExportReport rep = export_xai_checkpoint(m, {a.out, tok, has_random_weights(a.model)}, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    bar.update(done, total, "");
  });
  bar.finish();
  std::fprintf(stderr, "convert: wrote %s (%zu files: ckpt-0/, config.json%s), %s in %.1f s; "
               "largest int8 rounding error %.3g\n", a.out.c_str(), rep.files.size(), tok.empty() ? "" : ", tokenizer.model",
               human_bytes(static_cast<double>(rep.bytes)).c_str(), seconds_since(t0), rep.max_abs_error);
  return 0;
}

int run_convert(const ConvertArgs& a) {
  if (a.format == "xai") return run_convert_xai(a);
  ConvertOptions opt;
  opt.plan = plan_options(a);
  opt.threads = a.threads;
  opt.out = a.out;
  opt.allow_requantize = a.allow_requantize;
  if (!a.split.empty()) opt.split_max_bytes = parse_size(a.split, "--split-max-size");
  InterruptHandler interrupts;
  auto t0 = std::chrono::steady_clock::now();
  Model m = load_with_progress(a.model);
  opt.inputs = input_files(m, a.tokenizer, a.model);
  std::optional<Imatrix> imatrix;
  if (!a.imatrix.empty()) {
    imatrix = read_imatrix(a.imatrix);
    opt.imatrix = &*imatrix;
    opt.imatrix_file = a.imatrix;
    opt.inputs.push_back(a.imatrix);
    std::fprintf(stderr, "convert: imatrix %s: %zu entries from %d chunks of '%s'\n", a.imatrix.c_str(),
                 imatrix->entries.size(), imatrix->chunks, imatrix->dataset.c_str());
  }
  const std::optional<VocabSpec> vocab = embedded_vocab(a.tokenizer, a.model, m.config.vocab_size,
                                                        "writing a GGUF without a vocabulary (llama.cpp needs one)");
  opt.vocab = vocab ? &*vocab : nullptr;
  if (has_random_weights(a.model)) opt.extra_metadata = [](GgufWriter& w) { w.add_bool(kRandomWeightsKey, true); };
  ProgressBar bar("convert", uint64_t{1} << 28);
  const auto start = std::chrono::steady_clock::now();
  int logged_tenth = 0;  // without a terminal: a line at every 10 %
  ConvertReport rep = convert_model(m, opt, [&](uint64_t done, uint64_t total) {
    check_interrupt();
    const double s = seconds_since(start), frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1;
    const std::string eta = frac > 0.005 ? "ETA " + eta_text(s * (1 - frac) / frac) : "";
    bar.update(done, total, eta);
    if (!isatty(2) && total >= (uint64_t{1} << 28) && static_cast<int>(frac * 10) > logged_tenth) {
      logged_tenth = static_cast<int>(frac * 10);
      std::fprintf(stderr, "convert: %d %% (%s of %s) %s\n", logged_tenth * 10, human_bytes(static_cast<double>(done)).c_str(),
                   human_bytes(static_cast<double>(total)).c_str(), eta.c_str());
    }
  });
  bar.finish();
  for (const auto& f : rep.fallbacks) std::fprintf(stderr, "groak: note: %s\n", f.c_str());
  if (rep.exact_int8_blocks + rep.requantized_blocks > 0)
    std::fprintf(stderr, "convert: int8 -> q8_0: %llu blocks kept exactly, %llu re-rounded\n",
                 static_cast<unsigned long long>(rep.exact_int8_blocks), static_cast<unsigned long long>(rep.requantized_blocks));
  for (const auto& f : rep.files) std::fprintf(stderr, "convert: wrote %s\n", f.c_str());
  std::fprintf(stderr, "convert: %s%s, %s in %.1f s\n", opt.plan.file_type->name, a.pure ? " (pure)" : "", human_bytes(static_cast<double>(rep.bytes)).c_str(),
               seconds_since(t0));
  return 0;
}

}  // namespace

Command convert_command() {
  auto a = std::make_shared<ConvertArgs>();
  Command c;
  c.name = "convert";
  c.description = "Convert a model (xAI raw, GGUF, Hugging Face) into a GGUF file for llama.cpp, or into xAI's raw "
                  "checkpoint format (--format xai)";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("--out", a->out, "output .gguf file (written as FILE.tmp, renamed when complete; never one of the "
                                    "inputs, a device or a FIFO; a symbolic link is followed and its target replaced)")
        ->required();
    cmd.add_option("--format", a->format, "gguf: a GGUF file; xai: xAI's raw checkpoint (--out is a new folder that "
                                          "gets ckpt-0/, config.json and tokenizer.model; int8 weights with bf16 "
                                          "scales per output column, or per eighth of the inputs where xAI's are)")
        ->check(CLI::IsMember({"gguf", "xai"}))
        ->capture_default_str();
    auto& g = a->gguf_only;
    g.push_back(cmd.add_flag("--allow-requantize", a->allow_requantize,
                 "allow quantizing weights that are already quantized (e.g. a q8_0 GGUF to q4_k: rounded twice)"));
    g.push_back(cmd.add_option("--type", a->type, "llama-quantize's file type (case-insensitive): " + file_type_names() +
                                      "; the K and IQ types are llama.cpp's mixes (e.g. Q4_K_M keeps attn_v/attn_k "
                                      "at Q8_0 and some ffn_down at Q6_K for Grok); Q4_K = Q4_K_M")
        ->capture_default_str());
    g.push_back(cmd.add_flag("--pure", a->pure, "no per-tensor rules: every weight matrix gets the --type's base type"));
    g.push_back(cmd.add_option("--output-tensor-type", a->output_type, "type of output.weight (Grok ties it to token_embd)"));
    g.push_back(cmd.add_option("--token-embedding-type", a->embedding_type, "type of token_embd.weight"));
    g.push_back(cmd.add_option("--tensor-type", a->tensor_types, "PATTERN=TYPE: tensors whose name matches the regular "
                                                                 "expression get TYPE (repeatable; the first match wins)"));
    g.push_back(cmd.add_option("--imatrix", a->imatrix, "importance matrix (llama.cpp's imatrix.dat, e.g. from groak "
                                                        "imatrix): weights the rounding; needed for the 1-2 bit types")
                    ->check(CLI::ExistingFile));
    g.push_back(cmd.add_option("-t,--threads", a->threads, "threads (default: every core)")->check(CLI::Range(0, 4096)));
    g.push_back(cmd.add_option("--split-max-size", a->split, "split the output into files of at most this size (e.g. 2G)"));
    cmd.add_option("--tokenizer", a->tokenizer, "tokenizer.model to embed, or with --format xai to copy beside ckpt-0 (default: the model's own)")
        ->check(CLI::ExistingFile);
  };
  c.check = [a] {
    if (a->format == "xai")
      for (const CLI::Option* o : a->gguf_only)
        if (o->count() > 0)
          throw CLI::ValidationError(o->get_name() + " applies to GGUF outputs only; --format xai writes xAI's int8 "
                                     "format (drop the option, or convert to a GGUF)");
    try {
      plan_options(*a);
    } catch (const Error& e) {
      throw CLI::ValidationError(e.what());
    }
  };
  c.run = [a](Job&) { return run_convert(*a); };
  return c;
}

}  // namespace groak::cli
