// Every endpoint but the generation ones (generation.cpp): its route and its handler.
#include <sstream>

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

void HttpServer::routes() {
  httplib::Server& h = *http_;
  auto handler = [this](void (HttpServer::*f)(const httplib::Request&, httplib::Response&)) {
    return [this, f](const httplib::Request& req, httplib::Response& res) { (this->*f)(req, res); };
  };
  h.Get("/", handler(&HttpServer::page));
  h.Get("/health", handler(&HttpServer::health));
  h.Get("/v1/models", handler(&HttpServer::models));
  h.Get(R"(/v1/models/(.+))", handler(&HttpServer::model));
  h.Get("/metrics", handler(&HttpServer::metrics));
  h.Post("/tokenize", handler(&HttpServer::tokenize));
  h.Post("/detokenize", handler(&HttpServer::detokenize));
  for (const char* path : {"/v1/completions", "/completions"})
    h.Post(path, [this](const httplib::Request& req, httplib::Response& res) { generation(req, res, /*chat=*/false); });
  for (const char* path : {"/v1/chat/completions", "/chat/completions"})
    h.Post(path, [this](const httplib::Request& req, httplib::Response& res) { generation(req, res, /*chat=*/true); });
}

void HttpServer::require_ready() const {
  if (!ready_)
    throw ApiError(503, "the model is still loading; retry when GET /health answers 200", "", "server_error", "model_loading");
}

void HttpServer::page(const httplib::Request&, httplib::Response& res) {
  res.set_content(reinterpret_cast<const char*>(kChatPage), sizeof kChatPage, "text/html; charset=utf-8");
}

void HttpServer::health(const httplib::Request&, httplib::Response& res) {
  if (ready_)
    send_json(res, 200, {{"status", "ok"}});
  else
    send_json(res, 503, {{"status", "loading"}, {"error", error_body(503, "the model is loading", "", "model_loading", "")["error"]}});
}

namespace {
json model_object(const ServerOptions& opt, bool ready, const Scheduler* s, const Model* m) {
  json meta = {{"random_weights", opt.random_weights}};
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
