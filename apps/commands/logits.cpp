// groak logits: the logits of every position, as little-endian float32 [n_tokens, vocab].
#include <cstdio>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "io/output_file.h"
#include "runtime/engine.h"

namespace groak::cli {

namespace {

struct LogitsArgs {
  std::string model, tokens, tokens_file, out, mode = "full";
  EngineArgs engine;
};

int run_logits(const LogitsArgs& a, Job& job) {
  std::vector<int32_t> tokens;  // rank 0 reads them; other ranks (mpirun) only need their share of the model
  InterruptHandler interrupts;  // before loading: Ctrl-C ends a long load or evaluation cleanly
  auto t0 = std::chrono::steady_clock::now();
  Model m = job.load([&] {
    if (job.leader())
      tokens = !a.tokens.empty() ? parse_token_list(a.tokens, "--tokens")
                                 : parse_token_list(read_file_text(a.tokens_file), "--tokens-file");
    return load_with_progress(a.model);
  });
  if (!job.leader()) return job.follow(m, a.engine.threads, kernels_named(a.engine.kernels));
  const double load_s = seconds_since(t0);
  checked_output_path(a.out, m.files);  // before the work: never overwrite the model with its logits
  const int64_t V = m.config.vocab_size, T = static_cast<int64_t>(tokens.size());
  if (T > m.config.sequence_len)
    throw Error(std::to_string(T) + " tokens exceed the model's context (sequence_len " +
                std::to_string(m.config.sequence_len) + "); pass at most " + std::to_string(m.config.sequence_len));
  EngineOptions eo = engine_options(a.engine, job);
  eo.context = T;
  Engine s(m, eo);
  std::vector<float> all(static_cast<size_t>(T * V)), row;
  t0 = std::chrono::steady_clock::now();
  if (a.mode == "full") {
    s.eval(tokens, all, LogitRows::All);
  } else {  // incremental: one token at a time through the KV cache
    for (int64_t t = 0; t < T; ++t) {
      check_interrupt();
      s.eval(std::span<const int32_t>(tokens.data() + t, 1), row, LogitRows::LastOnly);
      std::copy(row.begin(), row.end(), all.begin() + t * V);
    }
  }
  const double eval_s = seconds_since(t0);
  check_interrupt();
  write_file_atomic(a.out, all.data(), all.size() * sizeof(float), m.files);
  std::fprintf(stderr, "logits: %lld tokens (%s) -> %s [%lld, %lld] f32; load %.2f s, eval %.2f s\n",
               static_cast<long long>(T), a.mode.c_str(), a.out.c_str(), static_cast<long long>(T),
               static_cast<long long>(V), load_s, eval_s);
  return 0;
}

}  // namespace

Command logits_command() {
  auto a = std::make_shared<LogitsArgs>();
  Command c;
  c.name = "logits";
  c.description = "Write the logits of every position as little-endian float32 [n_tokens, vocab]";
  c.under_mpirun = true;
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    auto* tok_opt = cmd.add_option("--tokens", a->tokens, "token ids, comma separated (e.g. 1,2,3)");
    auto* tokf_opt = cmd.add_option("--tokens-file", a->tokens_file, "file of token ids separated by spaces")
                         ->check(CLI::ExistingFile);
    tok_opt->excludes(tokf_opt);
    cmd.add_option("--out", a->out, "output file (written as FILE.tmp, renamed when complete; never one of the "
                                    "inputs, a device or a FIFO; a symbolic link is followed and its target replaced)")
        ->required();
    cmd.add_option("--mode", a->mode, "full: one forward pass over all tokens; incremental: one token at a time "
                                      "through the KV cache")
        ->check(CLI::IsMember({"full", "incremental"}))
        ->capture_default_str();
    add_engine_options(cmd, a->engine, nullptr);  // the context is the number of tokens
  };
  c.check = [a] {
    if (a->tokens.empty() && a->tokens_file.empty()) throw UsageError("logits needs --tokens or --tokens-file");
  };
  c.run = [a](Job& job) { return run_logits(*a, job); };
  return c;
}

}  // namespace groak::cli
