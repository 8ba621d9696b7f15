// groak serve: the OpenAI-compatible HTTP server with continuous batching and a chat page.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "../cli.h"
#include "../options.h"
#include "kernels/probe.h"
#include "model/model_path.h"
#include "server/server.h"
#include "tokenizer/discover.h"

namespace groak::cli {

namespace {

struct ServeArgs {
  std::string model, tokenizer, chat_template, alias;
  int64_t cache_ram_mb = -1;  // -1: the default share of memory
  ServerOptions opt;
  EngineArgs engine;
};

std::atomic<bool> g_serve_stop{false};
extern "C" void on_serve_signal(int) { g_serve_stop.store(true); }

// Under mpirun, rank 0 learns that the job ends from a signal: mpirun sends SIGTERM to every rank when
// one dies (or when mpirun itself is stopped), and SIGKILL a second later. In that second the requests in
// flight get their 503; then rank 0 leaves without touching MPI (its scheduler may be inside a pass the
// other ranks will never finish).
constexpr auto kAnswerInFlight = std::chrono::milliseconds(300);

[[noreturn]] void leave_lost_group(HttpServer& server, const std::string& why) {
  server.abandon(why);
  std::fprintf(stderr, "groak serve: error: %s; requests in flight were answered 503\n", server.lost().c_str());
  std::this_thread::sleep_for(kAnswerInFlight);
  std::fflush(stderr);
  std::_Exit(kExitError);
}

// The prompt cache's bound: --cache-ram MB, or by default a quarter of the memory this process may take,
// at most 8 GiB (llama-server's default). More than that memory is refused (the copies would be swapped
// or killed, not kept).
uint64_t prompt_cache_bytes(int64_t mb) {
  constexpr uint64_t kMiB = uint64_t{1} << 20, kDefaultMax = uint64_t{8192} * kMiB;
  const uint64_t budget = memory_budget_bytes();
  if (mb < 0) return budget ? std::min(kDefaultMax, budget / 4) : kDefaultMax;
  const uint64_t want = static_cast<uint64_t>(mb) * kMiB;
  if (budget && want > budget)
    throw Error("--cache-ram " + std::to_string(mb) + " MB is more than the memory this process may use (" +
                std::to_string(budget / kMiB) + " MB available, counting its memory cgroup's limit): give at most "
                "that, less the model's own, or 0 to turn the prompt cache off");
  return want;
}

int run_serve(ServeArgs& a, Job& job) {
  ServerOptions& o = a.opt;
  const bool group = job.size() > 1;
  if (group && o.allow_inspect)  // every rank parsed the same flags: each throws, rank 0 says it
    throw GroupError("--allow-inspect needs the whole model in one process (the logit lens applies the whole LM "
                     "head, each rank holds 1/" + std::to_string(job.size()) + " of it); serve without mpirun to inspect");
  if (!a.chat_template.empty()) o.chat_template = ChatTemplate::load(a.chat_template);
  if (o.api_key.empty())
    if (const char* k = std::getenv("GROAK_API_KEY")) o.api_key = k;
  SchedulerOptions& so = o.scheduler;
  so.context = a.engine.ctx;
  so.threads = a.engine.threads ? a.engine.threads : job.default_threads();
  so.kernels = &kernels_named(a.engine.kernels);
  so.cache_type = cache_type_named(a.engine.cache_type);
  so.cache_ram = prompt_cache_bytes(a.cache_ram_mb);
  o.model_id = a.alias.empty() ? model_id_of(a.model) : a.alias;
  o.random_weights = has_random_weights(a.model);
  // Rank 0 serves HTTP from the start (/health says "loading"); a port in use fails the whole group.
  std::unique_ptr<HttpServer> server;
  std::shared_ptr<Tokenizer> tok;
  int port = 0;
  auto model = std::make_shared<Model>(job.load([&] {
    if (job.leader()) {
      server = std::make_unique<HttpServer>(o);
      port = server->start();
      std::fprintf(stderr, "groak serve: listening on http://%s:%d/ (loading the model; /health answers 503 until ready)\n",
                   o.host.c_str(), port);
    }
    Model m = load_with_progress(a.model);
    if (job.leader()) tok = std::make_shared<Tokenizer>(open_tokenizer(a.tokenizer, a.model));
    return m;
  }));
  if (!job.leader()) return job.follow(*model, so.threads, *so.kernels);
  try {
    server->set_model(model, tok);
    Scheduler* s = server->scheduler();
    std::fprintf(stderr,
                 "groak serve: ready: %s (%s%s), %d slots x %lld tokens of context each (-c is per slot; "
                 "llama-server's -c is the total over its slots), KV cache %s (%s, allocated up front%s), queue %d, "
                 "prompt cache up to %s\n",
                 o.model_id.c_str(), model->format.c_str(), o.random_weights ? ", RANDOM weights" : "", s->parallel(),
                 static_cast<long long>(s->context()), human_bytes(static_cast<double>(s->kv_bytes())).c_str(),
                 a.engine.cache_type.c_str(), group ? (", this rank's share of " + std::to_string(job.size())).c_str() : "",
                 so.queue, so.cache_ram ? human_bytes(static_cast<double>(so.cache_ram)).c_str() : "0 (off)");
    std::fprintf(stderr, "groak serve: chat page http://%s:%d/  API http://%s:%d/v1  (Ctrl-C stops)\n", o.host.c_str(),
                 port, o.host.c_str(), port);
  } catch (...) {
    server->stop();  // a model that cannot load ends the command: the error, exit 1
    throw;
  }
  std::signal(SIGINT, on_serve_signal);
  std::signal(SIGTERM, on_serve_signal);
  constexpr auto kWatch = std::chrono::milliseconds(20);
  while (!g_serve_stop.load()) {
    if (group && !server->lost().empty()) leave_lost_group(*server, server->lost());
    std::this_thread::sleep_for(kWatch);
  }
  if (group)
    leave_lost_group(*server, "the tensor-parallel job is ending (mpirun stopped rank 0: another rank died, which "
                              "mpirun names, or mpirun itself was stopped)");
  std::fprintf(stderr, "groak serve: stopping\n");
  server->stop();
  return 0;
}

}  // namespace

Command serve_command() {
  auto a = std::make_shared<ServeArgs>();
  Command c;
  c.name = "serve";
  c.description = "Serve the model over an OpenAI-compatible HTTP API with continuous batching, and a chat page at /";
  c.options = [a](CLI::App& cmd) {
    SchedulerOptions& so = a->opt.scheduler;
    add_model_option(cmd, a->model);
    add_tokenizer_option(cmd, a->tokenizer, "SentencePiece tokenizer.model (default: the model's own)");
    cmd.add_option("--host", a->opt.host, "address to listen on (loopback unless told otherwise)")->capture_default_str();
    cmd.add_option("--port", a->opt.port, "port (0 = any free port, printed)")->capture_default_str()
        ->check(CLI::Range(0, 65535));
    cmd.add_option("--parallel", so.parallel, "slots: requests decoded together in one pass over the weights")
        ->capture_default_str()->check(CLI::Range(1, 256));
    cmd.add_option("--queue", so.queue, "requests that may wait for a slot; beyond that, 503")->capture_default_str()
        ->check(CLI::Range(0, 4096));
    cmd.add_option("--api-key", a->opt.api_key, "require Authorization: Bearer KEY on every endpoint but /health and "
                                                "the page (default: $GROAK_API_KEY)");
    cmd.add_option("--chat-template", a->chat_template, "JSON chat template replacing the built-in one (README)")
        ->check(CLI::ExistingFile);
    cmd.add_option("--cors", a->opt.cors_origin, "allow browsers on this origin (e.g. http://localhost:3000, or *) to "
                                                 "call the API: CORS headers and preflight answers (default: off)");
    cmd.add_flag("--allow-inspect", a->opt.allow_inspect, "let requests ask for the `inspect` extension: each token's "
                                                          "experts per layer and logit lens (off: such requests get 400)");
    cmd.add_option("--alias", a->alias, "model id shown in /v1/models (default: the model folder's name)");
    cmd.add_option("-b,--batch", so.batch, "tokens per forward pass at most (a prompt read while nobody decodes)")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxProductRows));
    cmd.add_option("--chunk", so.chunk, "prompt tokens per pass while other requests decode (bounds their stall)")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxProductRows));
    cmd.add_option("--cache-ram", a->cache_ram_mb, "MB of KV copies of earlier prompts kept for later requests that "
                                                   "start alike (0 = off; default: a quarter of the available memory, "
                                                   "at most 8192)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
    cmd.add_option("--spec-ngram", so.spec_ngram, "lookup decoding: guess each slot's next tokens from the last earlier "
                                                  "occurrence of its final N tokens and verify them in the same pass "
                                                  "(the same output; faster on text that repeats its context; 0 = off)")
        ->capture_default_str()->check(CLI::Range(0, 16));
    cmd.add_option("--draft-max", so.draft_max, "lookup decoding: guessed tokens per slot and pass at most")
        ->capture_default_str()->check(CLI::Range(1, 64));
    cmd.add_option("--max-body", a->opt.max_body, "largest request body in bytes (larger: 413)")->capture_default_str()
        ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
    add_engine_options(cmd, a->engine, "context per slot in tokens (default: the model's sequence_len; llama-server's "
                                       "-c is the total over its slots); every slot's KV cache is allocated up front");
  };
  c.under_mpirun = true;
  c.run = [a](Job& job) { return run_serve(*a, job); };
  return c;
}

}  // namespace groak::cli
