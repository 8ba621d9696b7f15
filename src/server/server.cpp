#include "server/server.h"

#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/openai.h"
#include "util/error.h"

namespace groak {

using nlohmann::json;

namespace {

// cpp-httplib listens with a backlog of 5; a burst of clients overflows that and some get reset. This
// reaches the listening socket to raise it (listen() again on a listening socket only resizes the queue).
class Http : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_, kListenBacklog); }
  static constexpr int kListenBacklog = 1024;
};

// web/chat.html, embedded at build time (cmake/embed.cmake).
const unsigned char kChatPage[] = {
#include "chat_page.inc"
};

constexpr auto kPoll = std::chrono::milliseconds(100);  // how often a waiting handler looks again
constexpr double kKeepAliveSeconds = 1.0;  // an SSE comment after this much silence (finds gone clients)

// Text as JSON; invalid UTF-8 (a token that is one byte of a character) becomes U+FFFD.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e.status, e.what(), e.type, e.code, e.param));
}

// An error answered before the request's body was read, on a connection that is then closed: the unread
// body must not be taken for the next request of a kept-alive connection. (httplib closes a connection
// when a content provider reports failure; this one writes the whole error first.)
void send_error_and_close(httplib::Response& res, const ApiError& e) {
  auto text = std::make_shared<std::string>(dump(error_body(e.status, e.what(), e.type, e.code, e.param)));
  res.status = e.status;
  res.set_header("Connection", "close");
  res.set_content_provider(text->size(), "application/json", [text](size_t offset, size_t length, httplib::DataSink& sink) {
    sink.write(text->data() + offset, length);
    return false;
  });
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw ApiError(400, "the request body is empty; send a JSON object");
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_request_error",
                   "invalid_json");
  }
}

// Which counter a path belongs to (unknown paths share one, so the table stays bounded).
std::string endpoint_of(const std::string& path) {
  static const char* known[] = {"/", "/health", "/v1/models", "/v1/completions", "/v1/chat/completions", "/completions",
                                "/chat/completions", "/tokenize", "/detokenize", "/metrics"};
  for (const char* k : known)
    if (path == k) return k;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
  return "other";
}

// One choice of a generation being assembled (text, tokens for logprobs, finish).
struct Choice {
  std::shared_ptr<ServeJob> job;
  int index = 0;
  size_t prompt = 0;          // which prompt
  std::string text;           // generated text so far
  std::vector<TokenOut> tokens, prompt_tokens;
  bool finished = false;
  bool started = false;       // chat: the leading space of the reply has been dropped
};

// OpenAI's legacy logprobs object for a run of tokens; `offset` is the text offset of the first.
json legacy_logprobs(const Tokenizer& tok, const std::vector<TokenOut>& toks, size_t offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TokenOut& t : toks) {
    const std::string s = token_text(tok, t.id);
    tokens.push_back(s);
    lps.push_back(t.has_logprob ? json(t.logprob) : json(nullptr));
    if (!t.has_logprob) {
      tops.push_back(nullptr);
    } else {
      json top = json::object();
      for (const TokenLogprob& c : t.top) {
        const std::string k = token_text(tok, c.id);
        if (!top.contains(k)) top[k] = c.logprob;
      }
      tops.push_back(top);
    }
    offs.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

// The chat logprobs object: {"content": [{"token", "logprob", "bytes", "top_logprobs"}]}.
json chat_logprobs(const Tokenizer& tok, const std::vector<TokenOut>& toks) {
  auto entry = [&](int32_t id, float lp) {
    const std::string s = token_text(tok, id);
    json bytes = json::array();
    for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
    return json{{"token", s}, {"logprob", lp}, {"bytes", bytes}};
  };
  json content = json::array();
  for (const TokenOut& t : toks) {
    json e = entry(t.id, t.logprob);
    json top = json::array();
    for (const TokenLogprob& c : t.top) top.push_back(entry(c.id, c.logprob));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return {{"content", content}};
}

// Drops the space a reply starts with after "Assistant:" (the template's own separator).
std::string chat_delta(Choice& c, std::string text) {
  if (!c.started) {
    const size_t at = text.find_first_not_of(' ');
    if (at == std::string::npos) return "";
    text.erase(0, at);
    c.started = true;
  }
  return text;
}

json timings(const std::vector<Choice>& choices) {
  int64_t prompt_n = 0, predicted_n = 0;
  double prompt_s = 0, decode_s = 0;
  for (const Choice& c : choices) {
    const JobResult& r = c.job->result();
    prompt_n += r.prompt_tokens - r.cached_tokens;
    predicted_n += r.completion_tokens;
    prompt_s = std::max(prompt_s, r.prompt_seconds);
    decode_s = std::max(decode_s, r.decode_seconds);
  }
  // The first token comes from the prompt pass; the decode rate counts the ones after it.
  const double per_second = decode_s > 0 && predicted_n > static_cast<int64_t>(choices.size())
                                ? static_cast<double>(predicted_n - static_cast<int64_t>(choices.size())) / decode_s
                                : 0.0;
  return {{"prompt_n", prompt_n},       {"prompt_ms", prompt_s * 1e3},     {"predicted_n", predicted_n},
          {"predicted_ms", decode_s * 1e3}, {"predicted_per_second", per_second}};
}

json usage(const std::vector<Choice>& choices, size_t n_prompts) {
  int64_t prompt = 0, cached = 0, completion = 0;
  std::vector<bool> seen(n_prompts, false);
  for (const Choice& c : choices) {
    const JobResult& r = c.job->result();
    completion += r.completion_tokens;
    if (!seen[c.prompt]) {  // a prompt counts once however many choices it has
      seen[c.prompt] = true;
      prompt += r.prompt_tokens;
      cached += r.cached_tokens;
    }
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

// Takes a job's news into its choice. Returns the tokens that arrived (prompt tokens go to prompt_tokens).
std::vector<TokenOut> take(Choice& c, std::chrono::milliseconds timeout) {
  std::vector<TokenOut> got;
  c.finished = c.job->wait(got, timeout);
  std::vector<TokenOut> generated;
  for (TokenOut& t : got) {
    if (t.prompt)
      c.prompt_tokens.push_back(std::move(t));
    else
      generated.push_back(std::move(t));
  }
  return generated;
}

}  // namespace

// ---- construction --------------------------------------------------------------------------------------

HttpServer::HttpServer(ServerOptions opt) : opt_(std::move(opt)), http_(std::make_unique<Http>()) {
  const int threads = opt_.http_threads > 0 ? opt_.http_threads : opt_.scheduler.parallel + opt_.scheduler.queue + 16;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(opt_.max_body);
  routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  if (opt_.port < 0 || opt_.port > 65535) throw Error("--port must be in [0, 65535], got " + std::to_string(opt_.port));
  int port = opt_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(opt_.host);
    if (port < 0) throw Error("cannot listen on " + opt_.host + " (any port): is the address one of this machine's?");
  } else if (!http_->bind_to_port(opt_.host, port)) {
    throw Error("cannot listen on " + opt_.host + ":" + std::to_string(port) +
                ": the port is taken or the address is not this machine's; pick another with --port/--host");
  }
  static_cast<Http&>(*http_).raise_backlog();
  return port;
}

void HttpServer::listen() { http_->listen_after_bind(); }

void HttpServer::set_model(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tok) {
  model_ = std::move(model);
  tok_ = std::move(tok);
  scheduler_ = std::make_unique<Scheduler>(*model_, *tok_, opt_.scheduler);
  ready_.store(true);
}

void HttpServer::stop() {
  if (stopped_.exchange(true)) return;
  // Finish every job first, so handlers waiting on them return and the listener can join its threads.
  if (scheduler_) scheduler_->shutdown();
  http_->stop();
}

void HttpServer::count(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(counts_mu_);
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

// ---- routes ---------------------------------------------------------------------------------------------

void HttpServer::routes() {
  httplib::Server& h = *http_;

  // Before the body is read: authentication, then the size limit.
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool open = req.path == "/health" || (req.path == "/" && req.method == "GET");
    const bool has_body = req.has_header("Transfer-Encoding") ||
                          (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
    auto reject = [&](const ApiError& e) { has_body ? send_error_and_close(res, e) : send_error(res, e); };
    if (!opt_.api_key.empty() && !open && req.get_header_value("Authorization") != "Bearer " + opt_.api_key) {
      reject(ApiError(401,
                               req.has_header("Authorization") ? "the API key is wrong; send Authorization: Bearer KEY"
                                                               : "this server needs an API key: send Authorization: Bearer KEY",
                               "", "authentication_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Content-Length")) {
      const std::string v = req.get_header_value("Content-Length");
      unsigned long long n = 0;
      const bool number = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 20;
      if (number) n = std::stoull(v);
      if (!number || n > opt_.max_body) {
        send_error_and_close(res, ApiError(413,
                                 "the request body (" + v + " bytes) is larger than this server's limit of " +
                                     std::to_string(opt_.max_body) + " bytes (--max-body)",
                                 "", "invalid_request_error", "request_too_large"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors raised by httplib itself (404, 413 of a chunked body, 400 of a bad request line) as JSON.
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.has_header("Content-Type")) return;  // already an error of ours
    std::string msg = res.status == 404   ? "no such endpoint: " + req.method + " " + req.path +
                                              " (see GET /v1/models, POST /v1/completions, POST /v1/chat/completions)"
                      : res.status == 413 && req.get_header_value("Content-Type").find("form-urlencoded") != std::string::npos
                          ? "a form-encoded body is limited to 8 KB; send JSON with Content-Type: application/json"
                      : res.status == 413 ? "the request body is larger than this server's limit"
                                          : "the request could not be served (HTTP " + std::to_string(res.status) + ")";
    res.set_content(dump(error_body(res.status, msg, "", "", "")), "application/json");
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"));
    } catch (...) {
      send_error(res, ApiError(500, "internal error", "", "server_error"));
    }
  });
  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) { count(endpoint_of(req.path), res.status); });

  auto require_ready = [this]() {
    if (!ready_) throw ApiError(503, "the model is still loading; retry when GET /health answers 200", "", "server_error",
                                "model_loading");
  };

  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kChatPage), sizeof kChatPage, "text/html; charset=utf-8");
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready_)
      send_json(res, 200, {{"status", "ok"}});
    else
      send_json(res, 503, {{"status", "loading"}, {"error", error_body(503, "the model is loading", "", "model_loading", "")["error"]}});
  });

  auto model_object = [this]() {
    json meta = {{"random_weights", opt_.random_weights}};
    if (ready_) {
      meta["context"] = scheduler_->context();
      meta["parallel"] = scheduler_->parallel();
      meta["vocab"] = model_->config.vocab_size;
      meta["parameters"] = model_->parameter_count();
      meta["format"] = model_->format;
      meta["chat_template"] = {{"system", opt_.chat_template.system}, {"user", opt_.chat_template.user},
                               {"assistant", opt_.chat_template.assistant},
                               {"generation", opt_.chat_template.generation}, {"stop", opt_.chat_template.stop}};
    }
    return json{{"id", opt_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "groak"}, {"meta", meta},
                {"note", "the one model this server runs; requests naming any model are served by it"}};
  };
  h.Get("/v1/models", [model_object](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"object", "list"}, {"data", json::array({model_object()})}});
  });
  h.Get(R"(/v1/models/(.+))", [this, model_object](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != opt_.model_id)
      throw ApiError(404, "no model '" + std::string(req.matches[1]) + "'; this server runs '" + opt_.model_id + "'",
                     "model", "invalid_request_error", "model_not_found");
    send_json(res, 200, model_object());
  });

  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });

  h.Post("/tokenize", [this, require_ready](const httplib::Request& req, httplib::Response& res) {
    require_ready();
    const json body = parse_body(req);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object {\"content\": \"text\"}");
    auto it = body.find("content");
    if (it == body.end()) it = body.find("text");
    if (it == body.end() || !it->is_string()) throw ApiError(400, "content must be a string (the text to tokenize)", "content");
    std::vector<int32_t> ids;
    if (body.value("add_bos", false)) ids.push_back(tok_->bos_id());
    for (int32_t id : tok_->encode(it->get<std::string>())) ids.push_back(id);
    json out = {{"tokens", ids}};
    if (body.value("with_pieces", false)) {
      json pieces = json::array();
      for (int32_t id : ids) pieces.push_back({{"id", id}, {"piece", token_text(*tok_, id)}});
      out["pieces"] = pieces;
    }
    send_json(res, 200, out);
  });

  h.Post("/detokenize", [this, require_ready](const httplib::Request& req, httplib::Response& res) {
    require_ready();
    const json body = parse_body(req);
    if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
      throw ApiError(400, "tokens must be an array of token ids", "tokens");
    std::vector<int32_t> ids;
    const json& arr = body["tokens"];
    for (size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_number_integer() && !arr[i].is_number_unsigned())
        throw ApiError(400, "tokens must hold integers; element " + std::to_string(i) + " is not one", "tokens");
      const int64_t id = arr[i].is_number_unsigned() && arr[i].get<uint64_t>() > INT32_MAX ? INT64_MAX : arr[i].get<int64_t>();
      if (id < 0 || id >= tok_->vocab_size())
        throw ApiError(400, "token id " + std::to_string(id) + " at index " + std::to_string(i) +
                                " is outside the vocabulary [0, " + std::to_string(tok_->vocab_size()) + ")",
                       "tokens");
      ids.push_back(static_cast<int32_t>(id));
    }
    send_json(res, 200, {{"content", tok_->decode(ids)}});
  });

  // ---- generation
  auto generate = [this, require_ready](bool chat) {
    return [this, require_ready, chat](const httplib::Request& req, httplib::Response& res) {
      require_ready();
      const json body = parse_body(req);
      RequestLimits limits;
      limits.vocab = std::min<int64_t>(model_->config.vocab_size, tok_->vocab_size());
      limits.context = scheduler_->context();
      limits.max_choices = std::min(64, opt_.scheduler.parallel + opt_.scheduler.queue);
      const GenerationRequest g = parse_generation_request(body, chat, *tok_, opt_.chat_template, limits);

      auto choices = std::make_shared<std::vector<Choice>>();
      std::vector<std::shared_ptr<ServeJob>> jobs;
      for (size_t p = 0; p < g.prompts.size(); ++p)
        for (int i = 0; i < g.n; ++i) {
          JobParams params = g.params;
          params.prompt = g.prompts[p];
          params.decode.sampling.seed += static_cast<uint64_t>(i);  // the n choices of a prompt differ when sampling
          Choice c;
          c.job = std::make_shared<ServeJob>(std::move(params));
          c.index = static_cast<int>(choices->size());
          c.prompt = p;
          jobs.push_back(c.job);
          choices->push_back(std::move(c));
        }
      switch (scheduler_->submit(jobs)) {
        case Scheduler::Submit::Ok: break;
        case Scheduler::Submit::QueueFull: {
          const SchedulerStats s = scheduler_->stats();
          res.set_header("Retry-After", "1");
          throw ApiError(503,
                         "the server is busy: " + std::to_string(s.busy_slots) + " of " + std::to_string(s.parallel) +
                             " slots are working and " + std::to_string(s.queued) +
                             " requests are waiting (--parallel, --queue); retry later",
                         "", "server_error", "server_busy");
        }
        case Scheduler::Submit::ShuttingDown:
          throw ApiError(503, "the server is shutting down", "", "server_error", "shutting_down");
      }

      const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
      const int64_t created = unix_now();
      const std::string model = opt_.model_id;
      const Tokenizer& tok = *tok_;

      if (!g.stream) {
        for (Choice& c : *choices) {
          while (!c.finished) {
            for (TokenOut& t : take(c, kPoll)) {
              c.text += chat ? chat_delta(c, t.text) : t.text;
              if (t.id >= 0) c.tokens.push_back(std::move(t));
            }
          }
          const JobResult& r = c.job->result();
          if (r.finish == FinishReason::Cancelled)
            throw ApiError(503, "the server is shutting down", "", "server_error", "shutting_down");
          if (r.finish == FinishReason::Error) throw ApiError(500, "generation failed: " + r.error, "", "server_error");
        }
        json out_choices = json::array();
        for (Choice& c : *choices) {
          const char* finish = finish_reason_name(c.job->result().finish);
          if (chat) {
            out_choices.push_back({{"index", c.index},
                                   {"message", {{"role", "assistant"}, {"content", c.text}}},
                                   {"logprobs", g.logprobs ? chat_logprobs(tok, c.tokens) : json(nullptr)},
                                   {"finish_reason", finish}});
          } else {
            const std::string& prompt_text = g.prompt_texts[c.prompt];
            json lp = nullptr;
            if (g.logprobs) {
              std::vector<TokenOut> all = g.echo ? c.prompt_tokens : std::vector<TokenOut>{};
              all.insert(all.end(), c.tokens.begin(), c.tokens.end());
              lp = legacy_logprobs(tok, all, 0);
            }
            out_choices.push_back({{"text", g.echo ? prompt_text + c.text : c.text},
                                   {"index", c.index},
                                   {"logprobs", lp},
                                   {"finish_reason", finish}});
          }
        }
        send_json(res, 200,
                  {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                   {"model", model}, {"choices", out_choices}, {"usage", usage(*choices, g.prompts.size())},
                   {"timings", timings(*choices)}});
        return;
      }

      // ---- streaming: server-sent events, one chunk per token and choice, then [DONE].
      auto last_write = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
      auto opened = std::make_shared<bool>(false);
      auto provider = [=, &tok](size_t, httplib::DataSink& sink) -> bool {
        auto send = [&](const json& chunk) {
          const std::string s = "data: " + dump(chunk) + "\n\n";
          *last_write = std::chrono::steady_clock::now();
          return sink.write(s.data(), s.size());
        };
        auto chunk_of = [&](json choice) {
          return json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                      {"model", model}, {"choices", json::array({std::move(choice)})}};
        };
        if (!*opened) {  // chat: the role first; completions with echo: the prompt first (unless its logprobs must come)
          *opened = true;
          for (Choice& c : *choices) {
            if (chat) {
              if (!send(chunk_of({{"index", c.index}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                  {"logprobs", nullptr}, {"finish_reason", nullptr}})))
                return false;
            } else if (g.echo && !g.logprobs) {
              if (!send(chunk_of({{"text", g.prompt_texts[c.prompt]}, {"index", c.index}, {"logprobs", nullptr},
                                  {"finish_reason", nullptr}})))
                return false;
            }
          }
        }
        bool all_done = true, any_news = false;
        for (Choice& c : *choices) {
          if (c.finished) continue;
          const auto timeout = choices->size() == 1 ? kPoll : std::chrono::milliseconds(0);
          const size_t had_prompt = c.prompt_tokens.size();
          std::vector<TokenOut> toks = take(c, timeout);
          if (!chat && g.echo && g.logprobs && had_prompt == 0 && !c.prompt_tokens.empty()) {
            any_news = true;
            if (!send(chunk_of({{"text", g.prompt_texts[c.prompt]}, {"index", c.index},
                                {"logprobs", legacy_logprobs(tok, c.prompt_tokens, 0)}, {"finish_reason", nullptr}})))
              return false;
          }
          for (TokenOut& t : toks) {
            any_news = true;
            std::string text = chat ? chat_delta(c, t.text) : t.text;
            if (t.id < 0 && text.empty()) continue;
            std::vector<TokenOut> one;
            if (t.id >= 0) one.push_back(t);
            json choice;
            if (chat) {
              choice = {{"index", c.index}, {"delta", {{"content", text}}},
                        {"logprobs", g.logprobs && t.id >= 0 ? chat_logprobs(tok, one) : json(nullptr)},
                        {"finish_reason", nullptr}};
            } else {
              choice = {{"text", text}, {"index", c.index},
                        {"logprobs", g.logprobs && t.id >= 0 ? legacy_logprobs(tok, one, c.text.size()) : json(nullptr)},
                        {"finish_reason", nullptr}};
            }
            c.text += text;
            if (!send(chunk_of(choice))) return false;
          }
          if (c.finished) {
            any_news = true;
            const JobResult& r = c.job->result();
            const char* finish = finish_reason_name(r.finish);
            json choice = chat ? json{{"index", c.index}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish}}
                               : json{{"text", ""}, {"index", c.index}, {"logprobs", nullptr}, {"finish_reason", finish}};
            if (r.finish == FinishReason::Error) choice["error"] = r.error;
            if (!send(chunk_of(choice))) return false;
          } else {
            all_done = false;
          }
        }
        if (all_done) {
          json last = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                       {"model", model}, {"choices", json::array()}, {"timings", timings(*choices)}};
          if (g.include_usage) last["usage"] = usage(*choices, g.prompts.size());
          if (!send(last)) return false;
          const std::string done = "data: [DONE]\n\n";
          if (!sink.write(done.data(), done.size())) return false;
          sink.done();
          return true;
        }
        // Several choices are polled without blocking; rest a moment when none had news.
        if (!any_news && choices->size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        // A comment line now and then: SSE clients ignore it, and writing is how a gone client shows.
        const double silent = std::chrono::duration<double>(std::chrono::steady_clock::now() - *last_write).count();
        if (silent > kKeepAliveSeconds) {
          *last_write = std::chrono::steady_clock::now();
          const std::string ping = ": keep-alive\n\n";
          if (!sink.write(ping.data(), ping.size())) return false;
        }
        return true;
      };
      // Whatever ends the response (done, client gone, server stopping), no job outlives it.
      auto release = [choices](bool) {
        for (Choice& c : *choices)
          if (!c.job->done()) c.job->cancel();
      };
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
      res.set_chunked_content_provider("text/event-stream", provider, release);
    };
  };
  h.Post("/v1/completions", generate(false));
  h.Post("/completions", generate(false));
  h.Post("/v1/chat/completions", generate(true));
  h.Post("/chat/completions", generate(true));
}

}  // namespace groak
