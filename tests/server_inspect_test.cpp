// The server's `inspect` extension: refused (400, naming --allow-inspect) unless the server allows it; with
// it, every generated token carries the experts of every layer and the logit lens of the position it was
// chosen from, whole and streamed, and the text is the same as without (probes change no logit).
#include "server_util.h"

namespace groak::test {

TEST_F(Serve, InspectIsRefusedWithoutAllowInspect) {
  auto srv = start();
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 4}, {"inspect", true}};
  expect_error(post(srv->port, "/v1/completions", body), 400, "--allow-inspect", "completions");
  json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}, {"inspect", true}};
  expect_error(post(srv->port, "/v1/chat/completions", chat), 400, "--allow-inspect", "chat");
  expect_error(post(srv->port, "/v1/completions", json{{"prompt", "x"}, {"inspect", "yes"}}), 400, "inspect", "not a bool");
  // Off is always fine.
  EXPECT_EQ(post(srv->port, "/v1/completions", json{{"prompt", "x"}, {"max_tokens", 2}, {"inspect", false}}).status, 200);
  EXPECT_FALSE(get(srv->port, "/v1/models").body["data"][0]["meta"]["allow_inspect"].get<bool>());
}

TEST_F(Serve, InspectGivesExpertsAndLogitLensPerTokenWithTheSameText) {
  ServerOptions o = options();
  o.allow_inspect = true;
  auto srv = start(o);
  EXPECT_TRUE(get(srv->port, "/v1/models").body["data"][0]["meta"]["allow_inspect"].get<bool>());
  const Config& c = model_->config;
  json body = {{"prompt", "The quick brown fox"}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
  const Reply plain = post(srv->port, "/v1/completions", body);
  ASSERT_EQ(plain.status, 200) << plain.raw;
  body["inspect"] = true;
  const Reply r = post(srv->port, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["text"], plain.body["choices"][0]["text"]) << "probes must not change the text";
  const json& toks = r.body["choices"][0]["inspect"]["tokens"];
  ASSERT_EQ(toks.size(), 6u) << r.raw;
  const int64_t prompt = r.body["usage"]["prompt_tokens"];
  for (size_t i = 0; i < toks.size(); ++i) {
    const json& t = toks[i];
    EXPECT_EQ(t["position"].get<int64_t>(), prompt - 1 + static_cast<int64_t>(i));
    ASSERT_EQ(t["experts"].size(), static_cast<size_t>(c.num_layers));
    for (const json& layer : t["experts"]) {
      ASSERT_EQ(layer.size(), 2u);
      EXPECT_NE(layer[0], layer[1]);
    }
    for (const json& g : t["gates"]) EXPECT_GE(g[0].get<double>(), g[1].get<double>());
    ASSERT_EQ(t["lens"].size(), static_cast<size_t>(c.num_layers));
    // Greedy: the last layer's lens (the model's own output) puts the chosen token first.
    EXPECT_EQ(t["lens"].back()["ids"][0], t["id"]) << "token " << i;
    EXPECT_EQ(t["lens"].back()["pieces"].size(), static_cast<size_t>(kServeLensTop));
  }
  // Streamed: one inspect entry per token chunk, the same as the whole reply's.
  body["stream"] = true;
  bool done = false;
  const auto events = sse_events(stream(srv->port, "/v1/completions", body), &done);
  EXPECT_TRUE(done);
  json streamed = json::array();
  for (const json& e : events)
    if (!e["choices"].empty() && e["choices"][0].contains("inspect"))
      for (const json& t : e["choices"][0]["inspect"]["tokens"]) streamed.push_back(t);
  EXPECT_EQ(streamed, toks);
  // Chat, beside a request that does not inspect.
  json chat = {{"messages", {{{"role", "user"}, {"content", "Hello there"}}}}, {"max_tokens", 3}, {"inspect", true}};
  const Reply rc = post(srv->port, "/v1/chat/completions", chat);
  ASSERT_EQ(rc.status, 200) << rc.raw;
  EXPECT_GE(rc.body["choices"][0]["inspect"]["tokens"].size(), 1u) << rc.raw;
}

}  // namespace groak::test
