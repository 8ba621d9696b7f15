#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "server/transport.h"
#include "util/error.h"

namespace groak {

namespace {

// Why host:port cannot be bound, in words (the listener's own bind only says that it failed).
std::string bind_failure(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ipv4 = ::inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1;
  int err = 0;
  if (fd >= 0 && ipv4 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) err = errno;
  if (fd >= 0) ::close(fd);
  if (err == EADDRINUSE)
    return "port " + std::to_string(port) + " is in use (another groak serve, or another server); pick another with --port";
  if (err == EACCES) return "port " + std::to_string(port) + " needs privileges; pick one above 1023 with --port";
  return "cannot listen on " + host + ":" + std::to_string(port) +
         ": the address is not this machine's or the port is taken; pick another with --port/--host";
}

}  // namespace

// ---- construction --------------------------------------------------------------------------------------

HttpServer::HttpServer(ServerOptions opt) : opt_(std::move(opt)), http_(std::make_unique<HttpTransport>()) {
  const int threads = opt_.http_threads > 0 ? opt_.http_threads : opt_.scheduler.parallel + opt_.scheduler.queue + 16;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(opt_.max_body);
  // SO_REUSEADDR only (httplib's default adds SO_REUSEPORT, which lets a second server bind the same
  // port and take half of the requests).
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  install_transport(*http_, {opt_.api_key, opt_.max_body, opt_.cors_origin, &HttpServer::allowed_methods},
                    [this](const std::string& path, int status) { count(path, status); });
  routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::start() {
  if (opt_.port < 0 || opt_.port > 65535) throw Error("--port must be in [0, 65535], got " + std::to_string(opt_.port));
  int port = opt_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(opt_.host);
    if (port < 0) throw Error("cannot listen on " + opt_.host + " (any port): is the address one of this machine's?");
  } else if (!http_->bind_to_port(opt_.host, port)) {
    throw Error(bind_failure(opt_.host, port));
  }
  static_cast<HttpTransport&>(*http_).raise_backlog();
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  // stop() only ends a listener that is running: wait for it, so a failure right after start() (a model
  // that cannot load) never leaves a listener behind that nobody can stop.
  constexpr auto kStartLimit = std::chrono::seconds(10);
  const auto t0 = std::chrono::steady_clock::now();
  while (!http_->is_running()) {
    if (std::chrono::steady_clock::now() - t0 > kStartLimit) throw Error("the HTTP listener did not start within 10 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return port;
}

void HttpServer::set_model(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tok) {
  model_ = std::move(model);
  tok_ = std::move(tok);
  scheduler_ = std::make_unique<Scheduler>(*model_, *tok_, opt_.scheduler);
  grammars_ = std::make_unique<GrammarCache>(TokenVocab::of(*tok_));
  ready_.store(true);
}

void HttpServer::stop() {
  if (stopped_.exchange(true)) return;
  // Finish every job first, so handlers waiting on them return and the listener can join its threads.
  if (scheduler_) scheduler_->shutdown();
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

void HttpServer::abandon(const std::string& why) {
  if (ready_) scheduler_->abandon(why);
}

std::string HttpServer::lost() const { return ready_ ? scheduler_->lost() : std::string(); }

void HttpServer::count(const std::string& path, int status) {
  std::lock_guard<std::mutex> lock(counts_mu_);
  // Unknown paths share one counter, so the table stays bounded.
  const std::string endpoint = path.rfind("/v1/models/", 0) == 0 ? "/v1/models" : allowed_methods(path).empty() ? "other" : path;
  ++counts_[{endpoint, status}];
}

// ---- metrics --------------------------------------------------------------------------------------------

std::string HttpServer::metrics_text() {
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << value << "\n";
  };
  o << "# HELP groak_requests_total HTTP requests answered, by endpoint and status.\n"
       "# TYPE groak_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(counts_mu_);
    for (const auto& [key, n] : counts_)
      o << "groak_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  }
  metric("groak_model_loaded", "gauge", "1 once the model is loaded and requests are served.", ready_ ? "1" : "0");
  if (!ready_) return o.str();
  const SchedulerStats s = scheduler_->stats();
  auto num = [](double v) {
    std::ostringstream x;
    x << v;
    return x.str();
  };
  metric("groak_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", std::to_string(s.prompt_tokens));
  metric("groak_prompt_tokens_evaluated_total", "counter",
         "Prompt tokens run through the model (the others were reused from a slot's cache).",
         std::to_string(s.prompt_tokens_evaluated));
  metric("groak_generation_tokens_total", "counter", "Generated tokens.", std::to_string(s.generated_tokens));
  metric("groak_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s (all slots).",
         num(s.recent_tokens_per_second));
  metric("groak_queue_length", "gauge", "Requests waiting for a slot.", std::to_string(s.queued));
  metric("groak_slots_busy", "gauge", "Slots running a request.", std::to_string(s.busy_slots));
  metric("groak_slots_total", "gauge", "Slots (--parallel).", std::to_string(s.parallel));
  metric("groak_kv_cache_used_tokens", "gauge", "KV-cache positions held by running requests.", std::to_string(s.kv_used));
  metric("groak_kv_cache_capacity_tokens", "gauge", "KV-cache positions of all slots.", std::to_string(s.kv_capacity));
  metric("groak_kv_cache_usage_ratio", "gauge", "Used / capacity.",
         num(s.kv_capacity ? static_cast<double>(s.kv_used) / static_cast<double>(s.kv_capacity) : 0.0));
  metric("groak_kv_cache_bytes", "gauge", "Bytes of the KV cache (allocated up front).", std::to_string(s.kv_bytes));
  metric("groak_prompt_cache_capacity_bytes", "gauge", "Bound of the prompt cache (--cache-ram; 0 = off).",
         std::to_string(s.prompt_cache_capacity));
  metric("groak_prompt_cache_bytes", "gauge", "Bytes of KV the prompt cache holds.", std::to_string(s.prompt_cache_bytes));
  metric("groak_prompt_cache_entries", "gauge", "Prompts (token runs from position 0) the prompt cache holds.",
         std::to_string(s.prompt_cache_entries));
  metric("groak_prompt_cache_saves_total", "counter", "Slot contents saved to the prompt cache.",
         std::to_string(s.prompt_cache_saves));
  metric("groak_prompt_cache_hits_total", "counter", "Requests whose prompt took a prefix from the prompt cache.",
         std::to_string(s.prompt_cache_hits));
  metric("groak_prompt_cache_hit_tokens_total", "counter", "Prompt tokens taken from the prompt cache.",
         std::to_string(s.prompt_cache_hit_tokens));
  metric("groak_draft_tokens_total", "counter", "Lookup decoding: guessed tokens run through the model.",
         std::to_string(s.drafted_tokens));
  metric("groak_draft_tokens_accepted_total", "counter", "Lookup decoding: guessed tokens kept (the sampler picked them).",
         std::to_string(s.accepted_tokens));
  metric("groak_draft_acceptance_ratio", "gauge", "Accepted / guessed tokens (0 before any guess).",
         num(s.drafted_tokens ? static_cast<double>(s.accepted_tokens) / static_cast<double>(s.drafted_tokens) : 0.0));
  metric("groak_steps_total", "counter", "Forward passes run.", std::to_string(s.steps));
  metric("groak_batched_steps_total", "counter", "Forward passes that served two or more sequences.",
         std::to_string(s.batched_steps));
  metric("groak_step_seconds_total", "counter", "Seconds spent in forward passes and sampling.", num(s.step_seconds));
  o << "# HELP groak_sequences_finished_total Sequences (choices) finished, by reason.\n"
       "# TYPE groak_sequences_finished_total counter\n";
  for (FinishReason r : {FinishReason::Stop, FinishReason::Length, FinishReason::Cancelled, FinishReason::Error})
    o << "groak_sequences_finished_total{reason=\"" << finish_reason_name(r) << "\"} "
      << s.finished[static_cast<int>(r)] << "\n";
  return o.str();
}

}  // namespace groak
