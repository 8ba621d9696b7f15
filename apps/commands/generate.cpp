// groak generate: text from a prompt, streamed to stdout, with a summary on stderr.
#include <cstdio>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "runtime/generate.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

struct GenerateArgs {
  std::string model, tokenizer, prompt, prompt_file;
  bool bos = false, escape = false, echo = false;
  const CLI::Option* prompt_opt = nullptr;  // given, even as "" (-p "" --bos is the BOS token alone)
  const CLI::Option* prompt_file_opt = nullptr;
  SamplingArgs sampling;
  EngineArgs engine;
};

int run_generate(GenerateArgs& a, Job& job) {
  std::string text;  // rank 0 owns the prompt, the tokenizer and the output (mpirun)
  InterruptHandler interrupts;
  Model m = job.load([&] {
    if (!job.leader()) return load_with_progress(a.model);
    if (!a.prompt_file.empty())
      text = a.prompt_file == "-" ? read_stdin() : read_file_text(a.prompt_file);
    else
      text = a.prompt;
    if (a.escape) text = process_escapes(text);
    resolve_seed(a.sampling);
    return load_with_progress(a.model);
  });
  if (!job.leader()) return job.follow(m, a.engine.threads, kernels_named(a.engine.kernels));
  Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
  resolve_grammar(a.sampling, tok);
  std::vector<int32_t> prompt;
  if (a.bos) prompt.push_back(tok.bos_id());
  for (int32_t id : tok.encode(text)) prompt.push_back(id);
  if (static_cast<int64_t>(prompt.size()) > m.config.sequence_len)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens but the model's context is " +
                std::to_string(m.config.sequence_len) + " (sequence_len); shorten the prompt");
  Engine engine(m, engine_options(a.engine, job));
  if (a.echo) write_stdout(text);
  GenerateStats st = generate(engine, tok, prompt, a.sampling.decode, [](const std::string& t) {
    write_stdout(t);
    check_stdout();
  }, &g_interrupted);
  write_stdout("\n");
  check_stdout();
  // The first generated token comes from the prefill; the decode rate counts the ones after it.
  const double decode_tps = st.decode_seconds > 0 && st.generated_tokens > 1
                                ? static_cast<double>(st.generated_tokens - 1) / st.decode_seconds
                                : 0;
  std::fprintf(stderr,
               "\n[groak] stopped: %s%s\n"
               "[groak] prompt: %s, %.2f s (%.1f tok/s)\n"
               "[groak] generated: %s, %.2f s (%.1f tok/s); time to first token %.2f s\n",
               stop_reason_text(st.reason),
               st.reason == StopReason::ContextFull ? (" (" + count_of(engine.context(), "token") + ")").c_str() : "",
               count_of(st.prompt_tokens, "token").c_str(), st.prefill_seconds,
               st.prefill_seconds > 0 ? static_cast<double>(st.prompt_tokens) / st.prefill_seconds : 0.0,
               count_of(st.generated_tokens, "token").c_str(), st.decode_seconds, decode_tps, st.first_token_seconds);
  return st.reason == StopReason::Cancelled ? kExitInterrupted : 0;
}

}  // namespace

Command generate_command() {
  auto a = std::make_shared<GenerateArgs>();
  Command c;
  c.name = "generate";
  c.description = "Generate text from a prompt, streaming it to stdout";
  c.under_mpirun = true;
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: beside ckpt-0/ or in its parent folder)");
    auto* p_opt = cmd.add_option("-p,--prompt", a->prompt, "prompt text");
    auto* pf_opt = cmd.add_option("-f,--prompt-file", a->prompt_file, "read the prompt from a file ('-' = stdin)");
    p_opt->excludes(pf_opt);
    a->prompt_opt = p_opt;
    a->prompt_file_opt = pf_opt;
    add_predict_option(cmd, a->sampling, "tokens to generate at most; -1 = until EOS or the end of the context");
    add_sampling_options(cmd, a->sampling);
    cmd.add_flag("-e,--escape", a->escape, "process escapes in the prompt: \\n \\t \\\\ \\\" \\' (as llama.cpp's -e)");
    cmd.add_flag("--echo", a->echo, "print the prompt before the continuation (off: stdout holds only the new text)");
    cmd.add_flag("--bos", a->bos, "prepend the BOS token (the official runner does not)");
    add_stop_options(cmd, a->sampling);
    add_grammar_options(cmd, a->sampling);
    add_engine_options(cmd, a->engine, "context size in tokens (default: the model's sequence_len)");
  };
  c.check = [a] {
    if (a->prompt_opt->count() == 0 && a->prompt_file_opt->count() == 0)
      throw UsageError("generate needs a prompt: -p TEXT, or -f FILE ('-' for stdin)");
  };
  c.run = [a](Job& job) { return run_generate(*a, job); };
  return c;
}

}  // namespace groak::cli
