// groak imatrix: llama-imatrix's importance matrix (mean x² of each weight's input columns over a text),
// written in its imatrix.dat format for groak convert --imatrix and llama-quantize --imatrix alike.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "convert/imatrix.h"
#include "io/output_file.h"
#include "runtime/perplexity.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

struct ImatrixArgs {
  std::string model, tokenizer, file, out = "imatrix.dat";
  int64_t chunks = 0, batch = kDefaultBatch;
  EngineArgs engine{.ctx = 512};
};

int run_imatrix(const ImatrixArgs& a, Job& job) {
  InterruptHandler interrupts;
  Model m = load_with_progress(a.model);
  std::vector<std::string> inputs = input_files(m, a.tokenizer, a.model);
  if (a.file != "-") inputs.push_back(a.file);
  checked_output_path(a.out, inputs);  // refuse a bad output before the long run, not after it
  const std::string text = a.file == "-" ? read_stdin() : read_file_text(a.file);
  const std::vector<int32_t> tokens = open_tokenizer(a.tokenizer, a.model).encode(text);
  EngineOptions eo = engine_options(a.engine, job);
  eo.batch = a.batch;
  Engine session(m, eo);
  if (static_cast<int64_t>(tokens.size()) < 2 * session.context())
    throw Error(a.file + ": the text has " + std::to_string(tokens.size()) + " tokens; the importance matrix needs "
                "at least two windows of --ctx " + std::to_string(session.context()) + " (use a longer text or a "
                "smaller --ctx)");
  ImatrixCollector collector(m);
  session.ctx().set_observer(&collector);
  const int64_t n_chunks = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / session.context(),
                                             a.chunks > 0 ? a.chunks : INT64_MAX);
  std::fprintf(stderr, "imatrix: %zu tokens, %lld chunks of %lld\n", tokens.size(), static_cast<long long>(n_chunks),
               static_cast<long long>(session.context()));
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityReport r = perplexity(session, tokens, a.chunks, nullptr, nullptr, [&](const PerplexityReport& p) {
    collector.end_chunk();
    std::fprintf(stderr, "imatrix: chunk %lld/%lld, PPL %.4f, %.1f s\n", static_cast<long long>(p.chunks),
                 static_cast<long long>(n_chunks), p.chunk_ppl.back(), seconds_since(t0));
  }, &g_interrupted);
  session.ctx().set_observer(nullptr);
  if (r.cancelled) throw Interrupted();
  std::vector<std::string> notes;
  const Imatrix im = collector.result(std::filesystem::path(a.file).filename().string(), &notes);
  for (const auto& n : notes) std::fprintf(stderr, "groak: note: %s\n", n.c_str());
  write_imatrix(a.out, im, inputs);
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
  std::fprintf(stderr, "imatrix: wrote %zu entries from %d chunks to %s in %.1f s\n", im.entries.size(), im.chunks,
               a.out.c_str(), seconds_since(t0));
  return 0;
}

}  // namespace

Command imatrix_command() {
  auto a = std::make_shared<ImatrixArgs>();
  Command c;
  c.name = "imatrix";
  c.description = "Importance matrix of a model over a text (llama-imatrix's imatrix.dat), for convert --imatrix";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("-f,--file", a->file, "calibration text ('-' = stdin)")->required();
    cmd.add_option("-o,--output", a->out, "the imatrix file to write")->capture_default_str();
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: the model's own)");
    cmd.add_option("--chunks", a->chunks, "use at most this many windows of the text (0 = all)")
        ->capture_default_str()->check(number_in(0, 1 << 30, "a whole number, 0 = all"));
    cmd.add_option("-b,--batch-size", a->batch, "tokens per forward pass")->capture_default_str()
        ->check(CLI::Range(int64_t{1}, kMaxProductRows));
    add_engine_options(cmd, a->engine, "tokens per window (default 512)");
  };
  c.check = [a] {
    if (a->engine.ctx < 4) throw CLI::ValidationError("--ctx", "a window needs at least 4 tokens");
    if (a->file != "-" && !std::filesystem::is_regular_file(a->file))
      throw UsageError("-f " + a->file + ": no such text file (the calibration text; '-' reads stdin)");
  };
  c.run = [a](Job& job) { return run_imatrix(*a, job); };
  return c;
}

}  // namespace groak::cli
