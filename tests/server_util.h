// Helpers of the server tests: HTTP calls with httplib, SSE parsing, a raw TCP connection, and the Serve
// fixture (a synthetic tiny model with a 512-piece tokenizer, a server on a free loopback port).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include <httplib.h>

#include "model/loader.h"
#include "runtime/generate.h"
#include "server/server.h"
#include "synth/synth.h"
#include "test_util.h"

namespace groak::test {

using nlohmann::json;

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  httplib::Headers headers;
};

inline Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) {
    out.status = -1;
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.headers = r->headers;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

inline httplib::Headers auth(const std::string& key) {
  return key.empty() ? httplib::Headers{} : httplib::Headers{{"Authorization", "Bearer " + key}};
}

inline Reply post(int port, const std::string& path, const std::string& body, const std::string& key = "") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  return to_reply(c.Post(path.c_str(), auth(key), body, "application/json"));
}
inline Reply post(int port, const std::string& path, const json& body, const std::string& key = "") {
  return post(port, path, body.dump(), key);
}
inline Reply get(int port, const std::string& path, const std::string& key = "") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  return to_reply(c.Get(path.c_str(), auth(key)));
}

// The data: events of a server-sent-event stream, in order; *done says whether [DONE] closed it.
inline std::vector<json> sse_events(const std::string& text, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    const std::string event = text.substr(at, end - at);
    at = end + 2;
    if (event.rfind("data: ", 0) != 0) continue;  // comments (keep-alive)
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      *done = true;
      continue;
    }
    out.push_back(json::parse(data));
  }
  return out;
}

// POSTs and returns the raw streamed body.
inline std::string stream(int port, const std::string& path, const json& body, int* status = nullptr) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  std::string got;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    got.append(d, n);
    return true;
  };
  auto r = c.send(req);
  if (status) *status = r ? r->status : -1;
  return got;
}

// A plain TCP connection, for what an HTTP client library would not do (hang up mid-stream, lie about
// the body length).
class RawConn {
 public:
  explicit RawConn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConn() { close(); }
  bool ok() const { return ok_; }
  void send(const std::string& s) { (void)!::write(fd_, s.data(), s.size()); }
  // Reads until `needle` shows up (or the peer closes / 30 s pass); returns everything read.
  std::string read_until(const std::string& needle) {
    std::string got;
    char buf[4096];
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

inline std::string request_text(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Polls until pred() holds or `seconds` pass (a wait for the server thread, not a speed test).
template <class Pred>
bool eventually(Pred pred, double seconds = 30) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

inline void expect_error(const Reply& r, int status, const std::string& needle, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.raw;
  ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << what << ": not an OpenAI error object: " << r.raw;
  const json& e = r.body["error"];
  ASSERT_TRUE(e.contains("message") && e["message"].is_string()) << r.raw;
  EXPECT_TRUE(e.contains("type") && e["type"].is_string()) << r.raw;
  EXPECT_TRUE(e.contains("code")) << r.raw;
  EXPECT_NE(e["message"].get<std::string>().find(needle), std::string::npos)
      << what << ": '" << needle << "' not in: " << e["message"];
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_synthetic_checkpoint(synth_preset("tiny"), "tiny", 3, *dir_ / "model", {});
    train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, *dir_ / "tok.model");
    model_ = std::make_shared<Model>(load_model(*dir_ / "model"));
    tok_ = std::make_shared<Tokenizer>(Tokenizer::load(*dir_ / "tok.model"));
  }
  static void TearDownTestSuite() {
    model_.reset();
    tok_.reset();
    delete dir_;
  }

  static ServerOptions options() {
    ServerOptions o;
    o.port = 0;
    o.model_id = "tiny-test";
    o.scheduler.parallel = 4;
    o.scheduler.context = 256;
    o.scheduler.queue = 8;
    o.scheduler.threads = 2;
    o.scheduler.batch = 64;
    o.scheduler.chunk = 4;  // small: long prompts are read in many steps, interleaved with decoding
    return o;
  }

  // A server on a free loopback port, stopped at scope exit.
  struct Running {
    std::unique_ptr<HttpServer> server;
    int port = 0;
    ~Running() { server->stop(); }
    Scheduler& sched() { return *server->scheduler(); }
  };
  std::unique_ptr<Running> start(ServerOptions o = options(), bool load = true) {
    auto r = std::make_unique<Running>();
    r->server = std::make_unique<HttpServer>(o);
    r->port = r->server->start();
    if (load) r->server->set_model(model_, tok_);
    return r;
  }

  // What `groak generate` gives for this prompt: greedy, the Engine path.
  std::string solo(const std::string& prompt, int64_t n) {
    Engine s(*model_, {.context = 256});
    GenerateOptions o;
    o.max_tokens = n;
    o.sampling.temperature = 0;
    o.ignore_eos = true;
    std::string text;
    generate(s, *tok_, tok_->encode(prompt), o, [&](const std::string& t) { text += t; });
    return text;
  }

  inline static TempDir* dir_ = nullptr;
  inline static std::shared_ptr<Model> model_;
  inline static std::shared_ptr<Tokenizer> tok_;
};

}  // namespace groak::test
