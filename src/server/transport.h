// The HTTP layer beneath the API (cpp-httplib): JSON replies and errors, the checks made before a body
// is read (the API key, the body size), httplib's own errors turned into JSON, request counting, and
// server-sent events. Nothing here knows about models or OpenAI's shapes.
#pragma once
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/openai.h"

namespace groak {

// cpp-httplib listens with a backlog of 5; a burst of clients overflows that and some get reset. This
// reaches the listening socket to raise it (listen() again on a listening socket only resizes the queue).
class HttpTransport : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_, kListenBacklog); }
  static constexpr int kListenBacklog = 1024;
};

struct TransportOptions {
  std::string api_key;      // empty = no authentication
  size_t max_body = 1 << 20;
  std::string cors_origin;  // empty = no CORS headers; "*" = any origin
  // The methods a path answers ("GET", "POST", "GET, POST"); empty for an unknown path. A known path
  // asked with another method gets 405 with an Allow header, not 404.
  std::function<std::string(const std::string& path)> allowed_methods;
};

// True when an Authorization header carries `key` as a Bearer token (the scheme is case-insensitive,
// RFC 7235; spaces after it are allowed).
bool bearer_matches(const std::string& header, const std::string& key);

// Anthropic's Messages API (/v1/messages): its errors take Anthropic's shape, {"type": "error", "error":
// {"type", "message"}}, and its clients authenticate with `x-api-key: KEY`.
bool anthropic_path(const std::string& path);
// The error body a request to `path` gets: OpenAI's shape, or Anthropic's on its paths.
nlohmann::json error_json(const std::string& path, const ApiError& e);

// Text as JSON; invalid UTF-8 (a token that is one byte of a character) becomes U+FFFD.
std::string dump(const nlohmann::json& j);
void send_json(httplib::Response& res, int status, const nlohmann::json& j);
void send_error(httplib::Response& res, const ApiError& e, const std::string& path = "");
// The request's JSON body; ApiError(400) when it is empty or not JSON.
nlohmann::json parse_body(const httplib::Request& req);

// Installs on `http`: CORS (preflight answered, headers on every reply), authentication and the body
// limit before routing (answered without reading the body, on a connection then closed), httplib's own
// errors and uncaught exceptions as JSON errors (405 for a known path asked with another method), and
// `count(path, status)` after every request.
void install_transport(httplib::Server& http, const TransportOptions& opt,
                       std::function<void(const std::string& path, int status)> count);

// Server-sent events on a chunked response: `data: JSON` events, the final `data: [DONE]`, and a
// comment after a silence (clients ignore it; writing is how a gone client shows).
class SseWriter {
 public:
  explicit SseWriter(httplib::DataSink& sink) : sink_(sink) {}
  bool event(const nlohmann::json& data);  // false: the client is gone
  bool event(const std::string& name, const nlohmann::json& data);  // `event: NAME` before the data
  bool done();                             // [DONE], then the end of the stream
  bool end();                              // the end of the stream, no [DONE] (Anthropic's streams)
  bool keep_alive(std::chrono::steady_clock::time_point& last_write);
  static constexpr double kKeepAliveSeconds = 1.0;

 private:
  bool write(const std::string& s);
  httplib::DataSink& sink_;
};

}  // namespace groak
