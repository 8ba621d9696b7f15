// Every endpoint but the generation ones (generation.cpp): its route and its handler.
#include <span>
#include <sstream>
#include <string_view>

#include "server/openai.h"
#include "server/server.h"
#include "server/transport.h"

namespace groak {

using nlohmann::json;

namespace {

// web/chat.html, embedded at build time (cmake/embed.cmake).
const unsigned char kChatPage[] = {
#include "chat_page.inc"
};

}  // namespace

// Every route: method, path ("…/" ends a prefix: /v1/models/ID), and its handler.
struct Route {
  const char* method;
  const char* path;
  void (HttpServer::*handler)(const httplib::Request&, httplib::Response&);
};

const Route* HttpServer::route_table(size_t* n) {
  static const Route kRoutes[] = {
      {"GET", "/", &HttpServer::page},
      {"GET", "/health", &HttpServer::health},
      {"GET", "/v1/models", &HttpServer::models},
      {"GET", "/v1/models/", &HttpServer::model},
      {"GET", "/metrics", &HttpServer::metrics},
      {"GET", "/props", &HttpServer::props},
      {"GET", "/slots", &HttpServer::slots},
      {"POST", "/tokenize", &HttpServer::tokenize},
      {"POST", "/detokenize", &HttpServer::detokenize},
      {"POST", "/v1/completions", &HttpServer::completions},
      {"POST", "/completions", &HttpServer::completions},
      {"POST", "/v1/chat/completions", &HttpServer::chat_completions},
      {"POST", "/chat/completions", &HttpServer::chat_completions},
      {"POST", "/completion", &HttpServer::completion},
      {"POST", "/v1/messages", &HttpServer::messages},
      {"POST", "/v1/embeddings", &HttpServer::embeddings},
      {"POST", "/embeddings", &HttpServer::embeddings},
  };
  *n = std::size(kRoutes);
  return kRoutes;
}

void HttpServer::routes() {
  size_t n = 0;
  const Route* table = route_table(&n);
  for (const Route& r : std::span(table, n)) {
    auto f = [this, fn = r.handler](const httplib::Request& req, httplib::Response& res) { (this->*fn)(req, res); };
    const std::string path = r.path;
    const std::string pattern = path.size() > 1 && path.back() == '/' ? path + "(.+)" : path;
    if (std::string_view(r.method) == "GET")
      http_->Get(pattern, f);
    else
      http_->Post(pattern, f);
  }
}

std::string HttpServer::allowed_methods(const std::string& path) {
  size_t n = 0;
  const Route* table = route_table(&n);
  std::string methods;
  for (const Route& r : std::span(table, n)) {
    const std::string_view p = r.path;
    const bool match = p.size() > 1 && p.back() == '/' ? path.size() > p.size() && path.compare(0, p.size(), p) == 0 : path == p;
    if (match && methods.find(r.method) == std::string::npos) methods += (methods.empty() ? "" : ", ") + std::string(r.method);
  }
  return methods;
}

void HttpServer::completions(const httplib::Request& req, httplib::Response& res) { generation(req, res, /*chat=*/false); }
void HttpServer::chat_completions(const httplib::Request& req, httplib::Response& res) { generation(req, res, /*chat=*/true); }

void HttpServer::require_ready() const {
  if (!ready_)
    throw ApiError(503, "the model is still loading; retry when GET /health answers 200", "", "server_error", "model_loading");
}

void HttpServer::page(const httplib::Request&, httplib::Response& res) {
  res.set_content(reinterpret_cast<const char*>(kChatPage), sizeof kChatPage, "text/html; charset=utf-8");
}

void HttpServer::health(const httplib::Request&, httplib::Response& res) {
  if (const std::string why = ready_ ? scheduler_->lost() : ""; !why.empty())
    send_json(res, 503, {{"status", "error"}, {"error", error_body(503, why, "", "unavailable", "")["error"]}});
  else if (ready_)
    send_json(res, 200, {{"status", "ok"}});
  else
    send_json(res, 503, {{"status", "loading"}, {"error", error_body(503, "the model is loading", "", "model_loading", "")["error"]}});
}

namespace {
json model_object(const ServerOptions& opt, bool ready, const Scheduler* s, const Model* m) {
  json meta = {{"random_weights", opt.random_weights}, {"allow_inspect", opt.allow_inspect}};
  if (ready) {
    meta["context"] = s->context();
    meta["parallel"] = s->parallel();
    meta["vocab"] = m->config.vocab_size;
    meta["parameters"] = m->parameter_count();
    meta["format"] = m->format;
    meta["chat_template"] = {{"system", opt.chat_template.system}, {"user", opt.chat_template.user},
                             {"assistant", opt.chat_template.assistant},
                             {"generation", opt.chat_template.generation}, {"stop", opt.chat_template.stop}};
  }
  return json{{"id", opt.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "groak"}, {"meta", meta},
              {"note", "the one model this server runs; requests naming any model are served by it"}};
}
}  // namespace

void HttpServer::models(const httplib::Request&, httplib::Response& res) {
  send_json(res, 200, {{"object", "list"}, {"data", json::array({model_object(opt_, ready_, scheduler_.get(), model_.get())})}});
}

void HttpServer::model(const httplib::Request& req, httplib::Response& res) {
  if (req.matches[1] != opt_.model_id)
    throw ApiError(404, "no model '" + std::string(req.matches[1]) + "'; this server runs '" + opt_.model_id + "'",
                   "model", "invalid_request_error", "model_not_found");
  send_json(res, 200, model_object(opt_, ready_, scheduler_.get(), model_.get()));
}

void HttpServer::metrics(const httplib::Request&, httplib::Response& res) {
  res.set_content(metrics_text(), "text/plain; version=0.0.4");
}

void HttpServer::tokenize(const httplib::Request& req, httplib::Response& res) {
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
}

void HttpServer::detokenize(const httplib::Request& req, httplib::Response& res) {
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
}

}  // namespace groak
