// groak chat: a conversation in the terminal, held in the KV cache (runtime/chat.h).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "model/model_path.h"
#include "runtime/chat.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

struct ChatArgs {
  std::string model, tokenizer, chat_template, system;
  bool escape = false;
  SamplingArgs sampling;
  EngineArgs engine;
};

std::atomic<bool> g_chat_replying{false};
extern "C" void on_sigint_chat(int) {
  if (g_chat_replying.load()) {
    g_interrupted.store(true);  // stops the reply at the next token
  } else {
    const char nl = '\n';
    (void)!::write(STDERR_FILENO, &nl, 1);
    std::_Exit(kExitInterrupted);  // at the prompt: quit, as llama-cli does
  }
}

int run_chat(ChatArgs& a, Job& job) {
  const ChatTemplate tmpl = a.chat_template.empty() ? ChatTemplate{} : ChatTemplate::load(a.chat_template);
  resolve_seed(a.sampling);
  Model m = load_with_progress(a.model);
  Tokenizer tok = open_tokenizer(a.tokenizer, a.model);
  resolve_grammar(a.sampling, tok);  // every reply follows it
  Engine engine(m, engine_options(a.engine, job));
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (tty)
    std::fprintf(stderr, "groak chat: %s, %lld tokens of context%s. /reset clears, /exit or Ctrl-D quits, Ctrl-C stops "
                         "a reply.\n",
                 m.location.c_str(), static_cast<long long>(engine.context()),
                 has_random_weights(a.model) ? " (RANDOM weights: the replies are gibberish)" : "");
  Chat chat(engine, tok, tmpl, a.escape ? process_escapes(a.system) : a.system);
  std::signal(SIGINT, on_sigint_chat);
  for (std::string line;;) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      if (tty) std::fprintf(stderr, "(conversation cleared)\n");
      continue;
    }
    if (line.empty()) continue;
    g_interrupted.store(false);
    g_chat_replying.store(true);
    const Chat::Reply r = chat.reply(a.escape ? process_escapes(line) : line, a.sampling.decode, [](const std::string& t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    }, &g_interrupted);
    g_chat_replying.store(false);
    if (!r.fits) {
      std::fprintf(stderr, "groak chat: the conversation fills the context (%lld tokens); /reset to start over\n",
                   static_cast<long long>(engine.context()));
      continue;
    }
    std::printf("\n");
    std::fflush(stdout);
    const GenerateStats& st = r.stats;
    if (tty)
      std::fprintf(stderr, "[%lld tokens, %.1f tok/s%s]\n", static_cast<long long>(st.generated_tokens),
                   st.decode_seconds > 0 && st.generated_tokens > 1
                       ? static_cast<double>(st.generated_tokens - 1) / st.decode_seconds
                       : 0.0,
                   st.reason == StopReason::Cancelled ? ", stopped" : "");
  }
  return 0;
}

}  // namespace

Command chat_command() {
  auto a = std::make_shared<ChatArgs>();
  a->sampling.decode.max_tokens = 512;
  Command c;
  c.name = "chat";
  c.description = "Chat in the terminal (the serve chat template; the conversation stays in the KV cache)";
  c.options = [a](CLI::App& cmd) {
    add_model_option(cmd, a->model);
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: the model's own)");
    cmd.add_option("--chat-template", a->chat_template, "JSON chat template replacing the built-in one (README)")
        ->check(CLI::ExistingFile);
    cmd.add_option("--system", a->system, "system message that opens the conversation");
    add_predict_option(cmd, a->sampling, "tokens per reply at most; -1 = until EOS, a turn marker or the end of the context");
    add_sampling_options(cmd, a->sampling);
    cmd.add_flag("-e,--escape", a->escape, "process escapes in the system message and each line: \\n \\t \\\\ \\\" \\' "
                                           "(as llama.cpp's -e)");
    add_stop_options(cmd, a->sampling);
    add_grammar_options(cmd, a->sampling);
    add_engine_options(cmd, a->engine, "context size in tokens (default: the model's sequence_len)");
  };
  c.run = [a](Job& job) { return run_chat(*a, job); };
  return c;
}

}  // namespace groak::cli
