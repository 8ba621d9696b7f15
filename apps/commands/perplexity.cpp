// groak perplexity: llama-perplexity's method, and the KL divergence of a model to a saved one.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "../cli.h"
#include "../options.h"
#include "io/output_file.h"
#include "runtime/perplexity.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

constexpr int64_t kPerplexityWindow = 512;

struct PerplexityArgs {
  std::string model, tokenizer, file, kld_base;
  int64_t chunks = 0, batch = kDefaultBatch;
  bool kld = false;
  EngineArgs engine{.ctx = kPerplexityWindow};
};

// The base file is an output: never one of the inputs, written as .tmp and renamed once complete; an
// error or Ctrl-C leaves no partial file.
class BaseFileOut {
 public:
  BaseFileOut(const std::string& path, const std::vector<std::string>& inputs) : path_(path) {
    final_ = checked_output_path(path, inputs);
    out_.open(final_ + ".tmp", std::ios::binary | std::ios::trunc);
    if (!out_) throw Error(path + ": cannot create " + final_ + ".tmp (" + std::strerror(errno) + ")");
  }
  ~BaseFileOut() {
    std::error_code ec;
    if (!done_) std::filesystem::remove(final_ + ".tmp", ec);
  }
  std::ofstream& stream() { return out_; }
  void commit() {
    out_.close();
    if (!out_) throw Error(path_ + ": writing failed (disk full?)");
    std::error_code ec;
    std::filesystem::rename(final_ + ".tmp", final_, ec);
    if (ec) throw Error(path_ + ": cannot rename the finished file into place (" + ec.message() + ")");
    done_ = true;
  }

 private:
  std::string path_, final_;
  std::ofstream out_;
  bool done_ = false;
};

int run_perplexity(const PerplexityArgs& a, Job& job) {
  InterruptHandler interrupts;
  Model m = load_with_progress(a.model);
  std::vector<int32_t> tokens;
  std::optional<KldBaseHeader> base;
  std::ifstream base_in;
  if (a.kld) {  // compare against a saved model: its windows' tokens come from the file
    base_in.open(a.kld_base, std::ios::binary);
    if (!base_in) throw Error(a.kld_base + ": cannot read the KL base file (" + std::strerror(errno) + ")");
    base = read_kld_header(base_in, a.kld_base);
    if (static_cast<int64_t>(base->vocab) != m.config.vocab_size)
      throw Error(a.kld_base + ": made by a model with a vocabulary of " + std::to_string(base->vocab) +
                  " tokens, this one has " + std::to_string(m.config.vocab_size) + "; compare models of one vocabulary");
    tokens = base->tokens;
  } else {
    const std::string text = a.file == "-" ? read_stdin() : read_file_text(a.file);
    tokens = open_tokenizer(a.tokenizer, a.model).encode(text);
  }
  const int64_t ctx = base ? static_cast<int64_t>(base->ctx) : a.engine.ctx;
  if (base && a.engine.ctx != kPerplexityWindow && a.engine.ctx != ctx)
    std::fprintf(stderr, "groak: note: --ctx %lld ignored: the KL base file was made with --ctx %lld\n",
                 static_cast<long long>(a.engine.ctx), static_cast<long long>(ctx));
  EngineOptions eo = engine_options(a.engine, job);
  eo.context = ctx;
  eo.batch = a.batch;
  Engine session(m, eo);
  std::optional<BaseFileOut> save;
  if (!a.kld_base.empty() && !a.kld) {
    std::vector<std::string> inputs = input_files(m, a.tokenizer, a.model);
    if (!a.file.empty() && a.file != "-") inputs.push_back(a.file);
    save.emplace(a.kld_base, inputs);
  }

  const int64_t n_chunks = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / ctx,
                                             a.chunks > 0 ? a.chunks : INT64_MAX);
  std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld (the second half of each is scored)\n",
               tokens.size(), static_cast<long long>(n_chunks), static_cast<long long>(ctx));
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityReport r = perplexity(session, tokens, a.chunks, save ? &save->stream() : nullptr, base ? &base_in : nullptr,
                                  [&](const PerplexityReport& p) {
                                    char item[64];
                                    std::snprintf(item, sizeof item, "[%lld]%.4f,", static_cast<long long>(p.chunks),
                                                  p.chunk_ppl.back());
                                    write_stdout(item);
                                    check_stdout();
                                  }, &g_interrupted);
  write_stdout("\n");
  if (r.cancelled) throw Interrupted();
  char line[256];
  std::snprintf(line, sizeof line, "Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
  write_stdout(line);
  if (r.kld) {
    std::snprintf(line, sizeof line, "Mean KLD: %.6f +/- %.6f\nMaximum KLD: %.6f\nSame top: %.3f%% +/- %.3f%%\n",
                  r.kld->mean, r.kld->err, r.kld->max, 100 * r.kld->same_top, 100 * r.kld->same_top_err);
    write_stdout(line);
  }
  check_stdout();
  if (save) {
    save->commit();
    std::fprintf(stderr, "perplexity: saved the log-probabilities of %lld tokens to %s (compare another model with "
                         "--kl-divergence-base %s --kl-divergence)\n",
                 static_cast<long long>(r.scored), a.kld_base.c_str(), a.kld_base.c_str());
  }
  std::fprintf(stderr, "perplexity: %lld tokens scored in %.2f s\n", static_cast<long long>(r.scored), seconds_since(t0));
  return 0;
}

}  // namespace

Command perplexity_command() {
  auto a = std::make_shared<PerplexityArgs>();
  Command c;
  c.name = "perplexity";
  c.description = "Perplexity of a text (llama-perplexity's method: windows of --ctx tokens, the second half of each "
                  "scored), and KL divergence to a saved model";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    cmd.add_option("-f,--file", a->file, "the text to score ('-' = stdin); not needed with --kl-divergence (the base "
                                         "file holds its tokens)");
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: the model's own)");
    cmd.add_option("--chunks", a->chunks, "score at most this many windows (0 = all the text holds)")
        ->capture_default_str()->check(number_in(0, 1 << 30, "a whole number, 0 = all"));
    cmd.add_option("--kl-divergence-base", a->kld_base, "without --kl-divergence: save this model's log-probabilities "
                                                        "to FILE; with it: compare against FILE");
    cmd.add_flag("--kl-divergence", a->kld, "compare with the model saved in --kl-divergence-base: prints Mean KLD "
                                            "and Same top");
    cmd.add_option("-b,--batch-size", a->batch, "tokens per forward pass")->capture_default_str()
        ->check(CLI::Range(int64_t{1}, kMaxProductRows));
    add_engine_options(cmd, a->engine, "tokens per window (default 512)");
  };
  c.check = [a] {
    if (a->kld && a->kld_base.empty())
      throw UsageError("--kl-divergence needs --kl-divergence-base FILE (made by a run without --kl-divergence)");
    if (!a->kld && a->file.empty()) throw UsageError("perplexity needs --file TEXT ('-' for stdin)");
    if (a->engine.ctx < 4) throw CLI::ValidationError("--ctx", "a window needs at least 4 tokens");
  };
  c.run = [a](Job& job) { return run_perplexity(*a, job); };
  return c;
}

}  // namespace groak::cli
