// `groak serve`: an OpenAI-compatible HTTP server (cpp-httplib) in front of the Scheduler.
//   GET  /                     the chat page (web/chat.html, embedded in the binary)
//   GET  /health               503 {"status":"loading"} until the model is ready, then 200 {"status":"ok"}
//   GET  /v1/models            the one loaded model (any model name in a request is served by it)
//   POST /v1/completions       prompt (text, texts or token ids), sampling, stop, stream (SSE), logprobs, echo, n
//   POST /v1/chat/completions  messages through the chat template, same fields, delta chunks when streaming
//   POST /v1/embeddings        mean-pooled final hidden state (after the final norm), L2-normalised
//   POST /completion           llama-server's own completion shape (content, stop, timings; SSE without [DONE])
//   GET  /props, /slots        llama-server's server properties and slot states
//   POST /tokenize, /detokenize
//   GET  /metrics              Prometheus text format
// Every error is {"error": {"message", "type", "code", "param"}}. With an API key, everything but /health
// and the static page (which holds no data and sends the key with its requests) needs
// "Authorization: Bearer KEY". Bodies over max_body get 413 before they are read; a known path asked
// with another method gets 405 with Allow.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "model/weights.h"
#include "runtime/chat_template.h"
#include "server/constraint.h"
#include "server/openai.h"
#include "server/openai_reply.h"
#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace groak {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0 = any free port (start() returns it)
  std::string cors_origin;         // --cors: Access-Control-Allow-Origin for browsers on other origins
  std::string api_key;             // empty = no authentication
  size_t max_body = 1 << 20;       // request bodies above this many bytes get 413
  int http_threads = 0;            // 0 = parallel + queue + 16 (a streaming request holds one)
  SchedulerOptions scheduler;
  ChatTemplate chat_template;
  std::string model_id = "grok-1";  // the id /v1/models shows and responses carry
  bool random_weights = false;      // a synthetic model: the chat page says its text is gibberish
  bool allow_inspect = false;       // requests may ask for the `inspect` extension (serve --allow-inspect)
};

// The request body parsed again keeping its keys' order, when `body` (its plain parse) holds a field that
// needs it (response_format, grammar, json_schema, tools, tool_choice); an empty object otherwise.
nlohmann::ordered_json ordered_body(const httplib::Request& req, const nlohmann::json& body);

class HttpServer {
 public:
  explicit HttpServer(ServerOptions opt);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket and serves on a thread of its own; returns the port once requests are
  // answered. Throws groak::Error when it cannot listen ("port 8080 is in use"). Until set_model(),
  // /health answers 503 and the model endpoints 503 "loading".
  int start();
  // Hands over the loaded model and tokenizer (kept alive here) and starts the scheduler; prints the
  // KV-cache memory. Throws groak::Error for options the model cannot take (context, batch).
  void set_model(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tok);
  // Cancels every request, stops listening and joins the listener (safe from any thread but a handler's;
  // idempotent).
  void stop();
  // The server cannot go on (a rank of its group is gone, the job is ending): every request waiting or
  // running gets 503 with `why` now, as do later ones and /health (Scheduler::abandon). Any thread.
  void abandon(const std::string& why);
  // Why the server was abandoned (by abandon(), or by its scheduler when a pass failed); empty while it serves.
  std::string lost() const;
  // Null while loading. Tests use it to pause steps and read counters.
  Scheduler* scheduler() { return ready_.load() ? scheduler_.get() : nullptr; }
  const ServerOptions& options() const { return opt_; }

 private:
  void routes();  // endpoints.cpp: one named handler per endpoint
  // The methods a path answers ("GET", "POST"); empty for a path no route has.
  static std::string allowed_methods(const std::string& path);
  static const struct Route* route_table(size_t* n);  // endpoints.cpp: every route, one table
  void count(const std::string& path, int status);
  void require_ready() const;  // ApiError(503) while the model loads
  std::string metrics_text();
  // The handlers (endpoints.cpp, generation.cpp).
  void page(const httplib::Request& req, httplib::Response& res);
  void health(const httplib::Request& req, httplib::Response& res);
  void models(const httplib::Request& req, httplib::Response& res);
  void model(const httplib::Request& req, httplib::Response& res);
  void metrics(const httplib::Request& req, httplib::Response& res);
  void props(const httplib::Request& req, httplib::Response& res);
  void slots(const httplib::Request& req, httplib::Response& res);
  void embeddings(const httplib::Request& req, httplib::Response& res);
  void completion(const httplib::Request& req, httplib::Response& res);  // llama-server's /completion
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  void chat_completions(const httplib::Request& req, httplib::Response& res);
  void generation(const httplib::Request& req, httplib::Response& res, bool chat);
  void messages(const httplib::Request& req, httplib::Response& res);  // anthropic.cpp: Anthropic's Messages API
  // generation.cpp: a parsed request's jobs, submitted (ApiError 503 when the queue is full).
  std::vector<Choice> submit(const GenerationRequest& g, httplib::Response& res);
  RequestLimits limits() const;
  // The request's constrained output (server/constraint.h; with `tools`, their calls: server/tools.h),
  // compiled; null for none. ApiError(400) when bad.
  std::shared_ptr<CompiledGrammar> constraint(const nlohmann::ordered_json& body, const std::optional<ToolRequest>& tools);

  ServerOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tok_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<GrammarCache> grammars_;  // with the tokenizer
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopped_{false};
  std::thread listener_;
  std::mutex counts_mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;  // (endpoint, status) -> requests
};

}  // namespace groak
