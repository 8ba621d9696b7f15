#include "server/transport.h"

#include <cctype>
#include <memory>
#include <string_view>

namespace groak {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

bool anthropic_path(const std::string& path) { return path == "/v1/messages" || path.rfind("/v1/messages/", 0) == 0; }

json error_json(const std::string& path, const ApiError& e) {
  if (!anthropic_path(path)) return error_body(e.status, e.what(), e.type, e.code, e.param);
  const char* type = e.status == 401   ? "authentication_error"
                     : e.status == 403 ? "permission_error"
                     : e.status == 404 ? "not_found_error"
                     : e.status == 413 ? "request_too_large"
                     : e.status == 429 ? "rate_limit_error"
                     : e.status == 503 ? "overloaded_error"
                     : e.status >= 500 ? "api_error"
                                       : "invalid_request_error";
  return {{"type", "error"}, {"error", {{"type", type}, {"message", e.what()}}}};
}

void send_error(httplib::Response& res, const ApiError& e, const std::string& path) {
  send_json(res, e.status, error_json(path, e));
}

namespace {

// An error answered before the request's body was read, on a connection that is then closed: the unread
// body must not be taken for the next request of a kept-alive connection. (httplib closes a connection
// when a content provider reports failure; this one writes the whole error first.)
void send_error_and_close(httplib::Response& res, const ApiError& e, const std::string& path) {
  auto text = std::make_shared<std::string>(dump(error_json(path, e)));
  res.status = e.status;
  res.set_header("Connection", "close");
  res.set_content_provider(text->size(), "application/json", [text](size_t offset, size_t length, httplib::DataSink& sink) {
    sink.write(text->data() + offset, length);
    return false;
  });
}

}  // namespace

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw ApiError(400, "the request body is empty; send a JSON object");
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_request_error",
                   "invalid_json");
  }
}

bool bearer_matches(const std::string& header, const std::string& key) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  size_t at = kScheme.size();
  if (header[at] != ' ' && header[at] != '\t') return false;
  while (at < header.size() && (header[at] == ' ' || header[at] == '\t')) ++at;
  return header.compare(at, std::string::npos, key) == 0;
}

void install_transport(httplib::Server& h, const TransportOptions& opt,
                       std::function<void(const std::string& path, int status)> count) {
  // Before the body is read: CORS, authentication, then the size limit.
  h.set_pre_routing_handler([opt](const httplib::Request& req, httplib::Response& res) {
    if (!opt.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", opt.cors_origin);
      if (opt.cors_origin != "*") res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {  // a browser's preflight: what a cross-origin request may send
        const std::string allowed = opt.allowed_methods ? opt.allowed_methods(req.path) : "";
        res.set_header("Access-Control-Allow-Methods", allowed.empty() ? "GET, POST" : allowed + ", OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, x-api-key, anthropic-version");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    const bool open = req.path == "/health" || (req.path == "/" && req.method == "GET");
    const bool has_body = req.has_header("Transfer-Encoding") ||
                          (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
    auto reject = [&](const ApiError& e) { has_body ? send_error_and_close(res, e, req.path) : send_error(res, e, req.path); };
    // OpenAI's clients send Authorization: Bearer KEY, Anthropic's x-api-key: KEY; either is accepted.
    const bool key_ok = bearer_matches(req.get_header_value("Authorization"), opt.api_key) ||
                        (req.has_header("x-api-key") && req.get_header_value("x-api-key") == opt.api_key);
    if (!opt.api_key.empty() && !open && !key_ok) {
      const bool sent = req.has_header("Authorization") || req.has_header("x-api-key");
      const std::string how = anthropic_path(req.path) ? "x-api-key: KEY" : "Authorization: Bearer KEY";
      reject(ApiError(401, sent ? "the API key is wrong; send " + how : "this server needs an API key: send " + how, "",
                      "authentication_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Content-Length")) {
      const std::string v = req.get_header_value("Content-Length");
      unsigned long long n = 0;
      const bool number = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 20;
      if (number) n = std::stoull(v);
      if (!number || n > opt.max_body) {
        send_error_and_close(res, ApiError(413,
                                           "the request body (" + v + " bytes) is larger than this server's limit of " +
                                               std::to_string(opt.max_body) + " bytes (--max-body)",
                                           "", "invalid_request_error", "request_too_large"), req.path);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors raised by httplib itself (404, 413 of a chunked body, 400 of a bad request line) as JSON.
  h.set_error_handler([opt](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.has_header("Content-Type")) return;  // already an error of ours
    if (res.status == 404 && opt.allowed_methods) {
      if (const std::string allowed = opt.allowed_methods(req.path); !allowed.empty()) {
        res.status = 405;
        res.set_header("Allow", allowed);
        res.set_content(dump(error_json(req.path, ApiError(405, req.method + " " + req.path +
                                                                " is not served; this endpoint takes " + allowed,
                                                            "", "invalid_request_error", "method_not_allowed"))),
                        "application/json");
        return;
      }
    }
    std::string msg = res.status == 404   ? "no such endpoint: " + req.method + " " + req.path +
                                              " (see GET /v1/models, POST /v1/completions, POST /v1/chat/completions)"
                      : res.status == 413 && req.get_header_value("Content-Type").find("form-urlencoded") != std::string::npos
                          ? "a form-encoded body is limited to 8 KB; send JSON with Content-Type: application/json"
                      : res.status == 413 ? "the request body is larger than this server's limit"
                                          : "the request could not be served (HTTP " + std::to_string(res.status) + ")";
    res.set_content(dump(error_json(req.path, ApiError(res.status, msg, "", error_type_of(res.status)))),
                    "application/json");
  });
  h.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e, req.path);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"), req.path);
    } catch (...) {
      send_error(res, ApiError(500, "internal error", "", "server_error"), req.path);
    }
  });
  h.set_logger([count](const httplib::Request& req, const httplib::Response& res) { count(req.path, res.status); });
}

bool SseWriter::write(const std::string& s) { return sink_.write(s.data(), s.size()); }

bool SseWriter::event(const json& data) { return write("data: " + dump(data) + "\n\n"); }

bool SseWriter::event(const std::string& name, const json& data) {
  return write("event: " + name + "\ndata: " + dump(data) + "\n\n");
}

bool SseWriter::end() {
  sink_.done();
  return true;
}

bool SseWriter::done() {
  if (!write("data: [DONE]\n\n")) return false;
  sink_.done();
  return true;
}

bool SseWriter::keep_alive(std::chrono::steady_clock::time_point& last_write) {
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_write).count() <= kKeepAliveSeconds) return true;
  last_write = now;
  return write(": keep-alive\n\n");
}

}  // namespace groak
