// `groak serve` in-process on a loopback port, against a synthetic tiny model and a 512-piece tokenizer:
// the endpoints and their OpenAI shapes, every bad input of issue 7 (400 with a JSON error, the server
// keeps serving), authentication, body limits, the bounded queue, client disconnects, prefix reuse,
// logprobs against the engine's own logits, and continuous batching: a request's greedy text is the
// same batched with others as alone (and as `groak generate` gives it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <future>
#include <thread>

#include <httplib.h>

#include "model/loader.h"
#include "runtime/generate.h"
#include "runtime/chat_template.h"
#include "server/lookup.h"
#include "server/openai.h"
#include "server/prompt_cache.h"
#include "server/server.h"
#include "synth/synth.h"
#include "server_util.h"
#include "test_util.h"

namespace groak::test {

TEST_F(Serve, HealthSaysLoadingUntilTheModelArrives) {
  auto r = start(options(), /*load=*/false);
  Reply h = get(r->port, "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.body.value("status", ""), "loading") << h.raw;
  expect_error(post(r->port, "/v1/completions", json{{"prompt", "hi"}}), 503, "loading", "completion while loading");
  r->server->set_model(model_, tok_);
  h = get(r->port, "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body.value("status", ""), "ok");
}

TEST_F(Serve, ModelsTokenizeDetokenizeMetricsAndThePage) {
  auto r = start();
  Reply m = get(r->port, "/v1/models");
  ASSERT_EQ(m.status, 200) << m.raw;
  EXPECT_EQ(m.body["object"], "list");
  ASSERT_EQ(m.body["data"].size(), 1u);
  EXPECT_EQ(m.body["data"][0]["id"], "tiny-test");
  EXPECT_EQ(m.body["data"][0]["object"], "model");
  EXPECT_EQ(m.body["data"][0]["meta"]["context"], 256);
  EXPECT_EQ(get(r->port, "/v1/models/tiny-test").status, 200);
  expect_error(get(r->port, "/v1/models/gpt-4"), 404, "tiny-test", "retrieve another model");

  const std::string text = "The answer to life";
  Reply t = post(r->port, "/tokenize", json{{"content", text}});
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body["tokens"].get<std::vector<int32_t>>(), tok_->encode(text));
  Reply d = post(r->port, "/detokenize", json{{"tokens", t.body["tokens"]}});
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["content"], text);
  expect_error(post(r->port, "/detokenize", json{{"tokens", {1, 512}}}), 400, "outside the vocabulary", "detokenize 512");

  ASSERT_EQ(post(r->port, "/v1/completions", json{{"prompt", text}, {"max_tokens", 3}, {"ignore_eos", true}}).status, 200);
  // The reply can reach the client a moment before the scheduler thread frees the slot, and before the
  // server's logger counts the request (it runs after the response is written): poll briefly.
  Reply met = get(r->port, "/metrics");
  const std::string counted = "groak_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1";
  for (int i = 0; i < 200 && (met.raw.find("groak_slots_busy 0") == std::string::npos ||
                              met.raw.find(counted) == std::string::npos); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    met = get(r->port, "/metrics");
  }
  ASSERT_EQ(met.status, 200);
  for (const char* name : {"groak_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1",
                           "groak_generation_tokens_total 3", "groak_queue_length 0", "groak_slots_busy 0",
                           "groak_slots_total 4", "groak_kv_cache_capacity_tokens 1024", "groak_tokens_per_second",
                           "# TYPE groak_prompt_tokens_total counter"})
    EXPECT_NE(met.raw.find(name), std::string::npos) << name << " not in:\n" << met.raw;

  Reply page = get(r->port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.raw.find("<title>groak chat</title>"), std::string::npos);
  EXPECT_NE(page.raw.find("random-banner"), std::string::npos);
}

TEST_F(Serve, GreedyCompletionIsWhatGenerateGivesStreamedOrNot) {
  auto r = start();
  const std::string prompt = "Once upon a time";
  const std::string want = solo(prompt, 24);
  const json body = {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}, {"model", "whatever"}};
  Reply c = post(r->port, "/v1/completions", body);
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.body["object"], "text_completion");
  EXPECT_EQ(c.body["model"], "tiny-test");
  EXPECT_EQ(c.body["choices"][0]["text"], want);
  EXPECT_EQ(c.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c.body["usage"]["prompt_tokens"], tok_->encode(prompt).size());
  EXPECT_EQ(c.body["usage"]["completion_tokens"], 24);
  EXPECT_EQ(c.body["usage"]["total_tokens"], tok_->encode(prompt).size() + 24);

  json sbody = body;
  sbody["stream"] = true;
  sbody["stream_options"] = {{"include_usage", true}};
  bool done = false;
  int status = 0;
  const auto events = sse_events(stream(r->port, "/v1/completions", sbody, &status), &done);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(done) << "the stream must end with data: [DONE]";
  std::string text, finish;
  bool usage = false;
  for (const json& e : events) {
    EXPECT_EQ(e["object"], "text_completion");
    for (const json& ch : e["choices"]) {
      text += ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
    }
    if (e.contains("usage")) usage = e["usage"]["completion_tokens"] == 24;
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(finish, "length");
  EXPECT_TRUE(usage) << "stream_options.include_usage: the last chunk carries usage";
  EXPECT_GT(events.size(), 5u) << "tokens arrive as separate chunks";
}

TEST_F(Serve, BatchedGreedyTextEqualsSoloText) {
  auto r = start();
  // Different lengths: the long ones are read 4 tokens per step while the others decode.
  const std::vector<std::string> prompts = {
      "Hello", "The quick brown fox jumps over the lazy dog and keeps running far away",
      "In the beginning there was nothing but a long and quiet sea of numbers, tokens and weights",
      "Grok"};
  std::vector<std::string> want;
  for (const auto& p : prompts) want.push_back(solo(p, 20));
  // Hold the scheduler so all four join the same steps.
  r->sched().pause(true);
  std::vector<std::future<Reply>> replies;
  for (const auto& p : prompts)
    replies.push_back(std::async(std::launch::async, [&, p] {
      return post(r->port, "/v1/completions",
                  json{{"prompt", p}, {"max_tokens", 20}, {"temperature", 0}, {"ignore_eos", true}});
    }));
  ASSERT_TRUE(eventually([&] { return r->sched().stats().queued == 4; })) << "the four requests never queued";
  r->sched().pause(false);
  for (size_t i = 0; i < prompts.size(); ++i) {
    Reply c = replies[i].get();
    ASSERT_EQ(c.status, 200) << c.raw;
    EXPECT_EQ(c.body["choices"][0]["text"], want[i]) << "prompt " << i << " batched differs from alone";
  }
  const SchedulerStats s = r->sched().stats();
  EXPECT_EQ(s.max_sequences_in_step, 4) << "the four requests never shared a forward pass";
  EXPECT_GT(s.batched_steps, 10u);
}

TEST_F(Serve, EveryBadInputIsA400AndTheServerKeepsServing) {
  auto r = start();
  const int port = r->port;
  struct Case {
    const char* path;
    std::string body;
    const char* needle;
  };
  const std::string long_prompt(3000, 'x');  // far more than 256 tokens
  std::vector<Case> cases = {
      {"/v1/completions", "{\"prompt\": \"hi\",", "not valid JSON"},
      {"/v1/completions", "[1, 2]", "must be a JSON object"},
      {"/v1/completions", "", "empty"},
      {"/v1/completions", R"({"max_tokens": 4})", "prompt is required"},
      {"/v1/completions", R"({"prompt": 42})", "prompt must be a string"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": "ten"})", "max_tokens must be an integer"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": "hot"})", "temperature must be a number"},
      {"/v1/completions", R"({"prompt": "hi", "stream": "yes"})", "stream must be true or false"},
      {"/v1/completions", R"({"prompt": "hi", "stop": 7})", "stop must be a string"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 0})", "max_tokens must be >= 1"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": -5})", "max_tokens must be >= 1"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 100000})", "lower max_tokens to at most"},
      {"/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 1}}.dump(), "the context holds 256"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": -0.5})", "temperature must be >= 0"},
      {"/v1/completions", R"({"prompt": "hi", "top_p": 0})", "top_p must be in (0, 1]"},
      {"/v1/completions", R"({"prompt": "hi", "top_p": 1.5})", "top_p must be in (0, 1]"},
      {"/v1/completions", R"({"prompt": "hi", "top_k": -1})", "top_k must be >= 0"},
      {"/v1/completions", R"({"prompt": "hi", "min_p": 2})", "min_p must be in [0, 1]"},
      {"/v1/completions", R"({"prompt": "hi", "repetition_penalty": 0})", "repetition_penalty must be > 0"},
      {"/v1/completions", R"({"prompt": [1, 2, 512]})", "token id 512 at index 2 is outside the vocabulary [0, 512)"},
      {"/v1/completions", R"({"prompt": [1, -3]})", "outside the vocabulary"},
      {"/v1/completions", R"({"prompt": [[1, 2], [7, 99999]]})", "prompt[1] token id 99999"},
      {"/v1/completions", R"({"prompt": "hi", "n": 0})", "n must be >= 1"},
      {"/v1/completions", R"({"prompt": "hi", "n": 1000})", "per request"},
      {"/v1/completions", R"({"prompt": "hi", "logprobs": 50})", "logprobs must be in [0, 20]"},
      {"/v1/completions", R"({"prompt": "hi", "presence_penalty": 0.5})", "not supported"},
      {"/v1/chat/completions", R"({"messages": []})", "messages is empty"},
      {"/v1/chat/completions", R"({"model": "x"})", "messages is required"},
      {"/v1/chat/completions", R"({"messages": "hello"})", "messages must be an array"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "hi"}]})", "'wizard' is not a role"},
      {"/v1/chat/completions", R"({"messages": [{"content": "hi"}]})", "messages[0].role is required"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content must be"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3})",
       "needs \"logprobs\": true"},
      {"/v1/chat/completions", json{{"messages", {{{"role", "user"}, {"content", long_prompt}}}}}.dump(),
       "the context holds 256"},
  };
  for (const Case& c : cases) expect_error(post(port, c.path, c.body), 400, c.needle, std::string(c.path) + " " + c.body.substr(0, 80));
  // Unknown fields are ignored; any model name is served by the one model.
  Reply ok = post(port, "/v1/completions",
                  json{{"prompt", "hi"}, {"max_tokens", 2}, {"model", "gpt-9"}, {"frobnicate", {1, 2}}, {"user", "me"}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
  Reply chat = post(port, "/v1/chat/completions",
                    json{{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
                         {"max_tokens", 3}});
  EXPECT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["object"], "chat.completion");
  EXPECT_EQ(chat.body["choices"][0]["message"]["role"], "assistant");
  expect_error(get(port, "/v2/nothing"), 404, "no such endpoint", "unknown path");
}

TEST_F(Serve, ApiKeyGuardsEverythingButHealthAndThePage) {
  ServerOptions o = options();
  o.api_key = "sekret";
  auto r = start(o);
  expect_error(get(r->port, "/v1/models"), 401, "API key", "no key");
  expect_error(get(r->port, "/v1/models", "wrong"), 401, "API key", "wrong key");
  expect_error(post(r->port, "/v1/completions", json{{"prompt", "hi"}}), 401, "API key", "completion without key");
  expect_error(get(r->port, "/metrics"), 401, "API key", "metrics without key");
  EXPECT_EQ(get(r->port, "/health").status, 200);
  EXPECT_EQ(get(r->port, "/").status, 200);
  EXPECT_EQ(get(r->port, "/v1/models", "sekret").status, 200);
  EXPECT_EQ(post(r->port, "/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 1}}, "sekret").status, 200);
}

TEST_F(Serve, OversizedBodiesGet413BeforeTheyAreRead) {
  ServerOptions o = options();
  o.max_body = 4096;
  auto r = start(o);
  // Declared too large: answered from the headers alone.
  RawConn c(r->port);
  ASSERT_TRUE(c.ok());
  c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n");
  const std::string head = c.read_until("}}");
  EXPECT_NE(head.find("HTTP/1.1 413"), std::string::npos) << head;
  EXPECT_NE(head.find("larger than this server's limit of 4096 bytes"), std::string::npos) << head;
  // A real body just over the limit, through a client library.
  expect_error(post(r->port, "/v1/completions", json{{"prompt", std::string(5000, 'a')}}), 413, "limit", "5 KB body");
  EXPECT_EQ(post(r->port, "/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 1}}).status, 200);
}

TEST_F(Serve, BeyondTheQueueRequestsGet503AndQueuedOnesComplete) {
  ServerOptions o = options();
  o.scheduler.parallel = 1;
  o.scheduler.queue = 2;
  auto r = start(o);
  r->sched().pause(true);
  const json body = {{"prompt", "hi"}, {"max_tokens", 4}, {"ignore_eos", true}};
  std::vector<std::future<Reply>> held;
  for (int i = 0; i < 3; ++i)  // one for the slot, two for the queue
    held.push_back(std::async(std::launch::async, [&] { return post(r->port, "/v1/completions", body); }));
  ASSERT_TRUE(eventually([&] { return r->sched().stats().queued == 3; }));
  Reply busy = post(r->port, "/v1/completions", body);
  expect_error(busy, 503, "busy", "fourth request");
  EXPECT_EQ(busy.body["error"]["type"], "server_error");
  EXPECT_EQ(busy.headers.count("Retry-After"), 1u);
  // n counts against the queue too: a request for 2 choices does not fit either.
  expect_error(post(r->port, "/v1/completions", json{{"prompt", "hi"}, {"n", 2}}), 503, "busy", "n = 2");
  r->sched().pause(false);
  for (auto& f : held) EXPECT_EQ(f.get().status, 200);
  EXPECT_EQ(post(r->port, "/v1/completions", body).status, 200);
}

// What a server of several ranks does when one dies (Scheduler::abandon): every request, running or
// waiting, gets 503 with the reason at once, without the scheduler thread (which may be stuck in a pass);
// so do later requests and /health.
TEST_F(Serve, AnAbandonedServerAnswers503ToEveryRequestAtOnce) {
  ServerOptions o = options();
  o.scheduler.parallel = 1;
  auto r = start(o);
  int stream_status = 0;
  std::string streamed;
  auto running = std::async(std::launch::async, [&] {
    streamed = stream(r->port, "/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 200}, {"ignore_eos", true},
                                                        {"stream", true}}, &stream_status);
  });
  ASSERT_TRUE(eventually([&] { return r->sched().stats().generated_tokens > 0; }));
  r->sched().pause(true);  // the running job stays in its slot, as if its pass never ended
  const json body = {{"prompt", "hi"}, {"max_tokens", 4}};
  std::vector<std::future<Reply>> waiting;
  for (int i = 0; i < 2; ++i)
    waiting.push_back(std::async(std::launch::async, [&] { return post(r->port, "/v1/completions", body); }));
  ASSERT_TRUE(eventually([&] { return r->sched().stats().queued == 2; }));
  r->server->abandon("rank 1 is gone");
  for (auto& f : waiting) expect_error(f.get(), 503, "rank 1 is gone", "a waiting request");
  running.get();
  EXPECT_EQ(stream_status, 200);
  EXPECT_NE(streamed.find("\"finish_reason\":\"error\""), std::string::npos) << streamed;
  EXPECT_NE(streamed.find("rank 1 is gone"), std::string::npos) << streamed;
  expect_error(post(r->port, "/v1/completions", body), 503, "rank 1 is gone", "a later request");
  const Reply health = get(r->port, "/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body["status"], "error") << health.raw;
  EXPECT_EQ(r->server->lost(), "rank 1 is gone");
}

TEST_F(Serve, AClientThatHangsUpFreesItsSlot) {
  ServerOptions o = options();
  o.scheduler.parallel = 1;
  o.scheduler.context = 4096;
  auto r = start(o);
  const int64_t max_tokens = 4000;
  RawConn c(r->port);
  ASSERT_TRUE(c.ok());
  c.send(request_text("/v1/completions", json{{"prompt", "hi"}, {"max_tokens", max_tokens}, {"ignore_eos", true},
                                               {"stream", true}}.dump()));
  // Wait for the first token, then hang up while the slot still has most of its tokens to go.
  const std::string first = c.read_until("\"text\"");
  r->sched().pause(true);
  ASSERT_NE(first.find("data: "), std::string::npos) << first;
  c.close();
  r->sched().pause(false);
  ASSERT_TRUE(eventually([&] { return r->sched().stats().busy_slots == 0; }));
  const SchedulerStats s = r->sched().stats();
  EXPECT_EQ(s.finished[static_cast<int>(FinishReason::Cancelled)], 1u) << "the gone client's sequence was not cancelled";
  EXPECT_LT(s.generated_tokens, static_cast<uint64_t>(max_tokens)) << "it ran to the end instead of stopping";
  // The slot serves the next request.
  EXPECT_EQ(post(r->port, "/v1/completions", json{{"prompt", "again"}, {"max_tokens", 2}}).status, 200);
}

TEST_F(Serve, AGrowingChatReusesItsCachedPrefix) {
  auto r = start();
  json msgs = {{{"role", "system"}, {"content", "You are terse."}}, {{"role", "user"}, {"content", "Name a colour."}}};
  const json first = {{"messages", msgs}, {"max_tokens", 8}, {"temperature", 0}};
  Reply a = post(r->port, "/v1/chat/completions", first);
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const int64_t p1 = a.body["usage"]["prompt_tokens"];
  // The same request again: all but the last prompt token come from the cache, and the text is the same.
  Reply again = post(r->port, "/v1/chat/completions", first);
  EXPECT_EQ(again.body["usage"]["prompt_tokens_details"]["cached_tokens"], p1 - 1);
  EXPECT_EQ(again.body["choices"][0]["message"]["content"], a.body["choices"][0]["message"]["content"]);
  // The next turn: the history is not read again.
  msgs.push_back({{"role", "assistant"}, {"content", a.body["choices"][0]["message"]["content"]}});
  msgs.push_back({{"role", "user"}, {"content", "Another one."}});
  Reply b = post(r->port, "/v1/chat/completions", json{{"messages", msgs}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(b.status, 200) << b.raw;
  EXPECT_GE(b.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), p1 - 1);
  // And the reused cache gives the text a fresh server gives.
  auto fresh = start();
  Reply c = post(fresh->port, "/v1/chat/completions", json{{"messages", msgs}, {"max_tokens", 8}, {"temperature", 0}});
  EXPECT_EQ(c.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(b.body["choices"][0]["message"]["content"], c.body["choices"][0]["message"]["content"]);
}

TEST_F(Serve, ThePromptCacheServesAPrefixAfterItsSlotServedOthers) {
  // One slot: B takes it over from A, so C (A's long prefix, another ending) finds that prefix only in the
  // prompt cache; its text is the uncached server's, with the f32 and the f16 KV cache.
  const std::string shared = "In the beginning God created the heaven and the earth. And the earth was without form, "
                             "and void; and darkness was upon the face of the deep. And the Spirit of God moved upon "
                             "the face of the waters.";
  const std::string a = shared + " And God said", b = "Once upon a time there was a quick brown fox who jumped over "
                                                      "the lazy dog again and again and again, every single day",
                    c = shared + " Then the evening came";
  const int64_t prefix = static_cast<int64_t>(tok_->encode(shared).size());
  ASSERT_GE(prefix, 40);
  for (const KvType type : {KvType::F32, KvType::F16}) {
    auto complete = [&](int port, const std::string& prompt) {
      Reply r = post(port, "/v1/completions", json{{"prompt", prompt}, {"max_tokens", 8}, {"temperature", 0},
                                                   {"ignore_eos", true}});
      EXPECT_EQ(r.status, 200) << r.raw;
      return r;
    };
    ServerOptions o = options();
    o.scheduler.parallel = 1;
    o.scheduler.cache_type = type;
    o.scheduler.cache_ram = 0;
    auto off = start(o);
    complete(off->port, a);
    complete(off->port, b);
    const Reply want = complete(off->port, c);
    EXPECT_EQ(want.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << "one slot, taken over by b";
    o.scheduler.cache_ram = 64 << 20;
    auto on = start(o);
    const Reply first = complete(on->port, a);
    complete(on->port, b);
    const Reply got = complete(on->port, c);
    EXPECT_GE(got.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), prefix - 2) << got.raw;
    EXPECT_EQ(got.body["choices"][0]["text"], want.body["choices"][0]["text"]) << kv_type_name(type);
    // a again: the whole of it (but its last token) comes back from the cache, with a's text.
    const Reply again = complete(on->port, a);
    EXPECT_EQ(again.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(),
              first.body["usage"]["prompt_tokens"].get<int64_t>() - 1);
    EXPECT_EQ(again.body["choices"][0]["text"], first.body["choices"][0]["text"]);
    const std::string m = get(on->port, "/metrics").raw;
    EXPECT_NE(m.find("groak_prompt_cache_hits_total 2\n"), std::string::npos) << m;
    EXPECT_NE(m.find("groak_prompt_cache_capacity_bytes 67108864\n"), std::string::npos) << m;
    EXPECT_EQ(m.find("groak_prompt_cache_entries 0\n"), std::string::npos) << m;
    EXPECT_NE(get(off->port, "/metrics").raw.find("groak_prompt_cache_hits_total 0\n"), std::string::npos);
  }
}

// Anthropic's Messages API (its official client is tests/e2e/anthropic_test.mjs): the message shape, the
// text /v1/chat/completions gives, stop_sequences named, streamed events, errors in its shape, x-api-key.
TEST_F(Serve, MessagesApiSpeaksAnthropicsShapes) {
  ServerOptions o = options();
  o.api_key = "k";
  auto r = start(o);
  auto messages = [&](const json& body, const std::string& key = "k") {
    httplib::Client c("127.0.0.1", r->port);
    c.set_read_timeout(120, 0);
    return to_reply(c.Post("/v1/messages", {{"x-api-key", key}, {"anthropic-version", "2023-06-01"}}, body.dump(),
                           "application/json"));
  };
  const json ask = {{"model", "m"}, {"max_tokens", 12}, {"temperature", 0}, {"system", "Be brief."},
                    {"messages", {{{"role", "user"}, {"content", "Name a colour."}}}}};
  Reply m = messages(ask);
  ASSERT_EQ(m.status, 200) << m.raw;
  EXPECT_EQ(m.body["type"], "message");
  EXPECT_EQ(m.body["role"], "assistant");
  EXPECT_EQ(m.body["content"][0]["type"], "text");
  EXPECT_EQ(m.body["stop_reason"], "max_tokens");
  EXPECT_EQ(m.body["usage"]["output_tokens"], 12);
  const std::string text = m.body["content"][0]["text"];
  // The OpenAI chat endpoint, with x-api-key too, gives the same greedy text.
  httplib::Client c("127.0.0.1", r->port);
  Reply chat = to_reply(c.Post("/v1/chat/completions", {{"x-api-key", "k"}},
                               json{{"max_tokens", 12}, {"temperature", 0},
                                    {"messages", {{{"role", "system"}, {"content", "Be brief."}},
                                                  {{"role", "user"}, {"content", "Name a colour."}}}}}.dump(),
                               "application/json"));
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["choices"][0]["message"]["content"], text);
  // A stop sequence from inside the text ends it there and is named.
  ASSERT_GE(text.size(), 5u);
  json stopped = ask;
  stopped["stop_sequences"] = {text.substr(3, 2)};
  Reply s = messages(stopped);
  EXPECT_EQ(s.body["stop_reason"], "stop_sequence") << s.raw;
  EXPECT_EQ(s.body["stop_sequence"], text.substr(3, 2));
  EXPECT_EQ(text.rfind(s.body["content"][0]["text"].get<std::string>(), 0), 0u) << s.raw;
  // Streamed: Anthropic's named events, in order, with the same text.
  json streamed = ask;
  streamed["stream"] = true;
  Reply st = messages(streamed);
  std::vector<std::string> names;
  std::string joined;
  for (size_t at = 0; (at = st.raw.find("event: ", at)) != std::string::npos;) {
    const size_t eol = st.raw.find('\n', at);
    names.push_back(st.raw.substr(at + 7, eol - at - 7));
    const json data = json::parse(st.raw.substr(eol + 7, st.raw.find('\n', eol + 1) - eol - 7));
    if (names.back() == "content_block_delta") joined += data["delta"]["text"].get<std::string>();
    at = eol;
  }
  ASSERT_GE(names.size(), 6u) << st.raw;
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names[names.size() - 3], "content_block_stop");
  EXPECT_EQ(names[names.size() - 2], "message_delta");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_EQ(joined, text);
  EXPECT_EQ(st.raw.find("[DONE]"), std::string::npos);
  // Errors: Anthropic's shape, the field named.
  auto expect_anthropic_error = [&](const Reply& e, int status, const std::string& type, const std::string& needle) {
    EXPECT_EQ(e.status, status) << e.raw;
    EXPECT_EQ(e.body["type"], "error") << e.raw;
    EXPECT_EQ(e.body["error"]["type"], type) << e.raw;
    EXPECT_NE(e.body["error"]["message"].get<std::string>().find(needle), std::string::npos) << e.raw;
  };
  json no_max = ask;
  no_max.erase("max_tokens");
  expect_anthropic_error(messages(no_max), 400, "invalid_request_error", "max_tokens is required");
  json image = ask;
  image["messages"][0]["content"] = {{{"type", "image"}, {"source", json::object()}}};
  expect_anthropic_error(messages(image), 400, "invalid_request_error", "messages[0].content[0].type 'image' blocks");
  json tools = ask;
  tools["tools"] = json::array({json::object()});
  expect_anthropic_error(messages(tools), 400, "invalid_request_error", "tools[0].input_schema is required");
  json thinking = ask;
  thinking["thinking"] = {{"type", "enabled"}, {"budget_tokens", 1024}};
  expect_anthropic_error(messages(thinking), 400, "invalid_request_error", "thinking is not supported");
  json system_role = ask;
  system_role["messages"][0]["role"] = "system";
  expect_anthropic_error(messages(system_role), 400, "invalid_request_error", "top-level `system` field");
  // A last assistant message is a prefill: the reply continues it, as a completion of the whole text does.
  json prefill = ask;
  prefill["messages"].push_back({{"role", "assistant"}, {"content", "My favourite colour is"}});
  Reply pf = messages(prefill);
  ASSERT_EQ(pf.status, 200) << pf.raw;
  Reply raw = to_reply(c.Post("/v1/completions", {{"x-api-key", "k"}},
                              json{{"prompt", "System: Be brief.\n\nUser: Name a colour.\n\nAssistant: My favourite colour is"},
                                   {"max_tokens", 12}, {"temperature", 0}}.dump(), "application/json"));
  ASSERT_EQ(raw.status, 200) << raw.raw;
  EXPECT_EQ(pf.body["content"][0]["text"], raw.body["choices"][0]["text"]) << "the continuation, its first space kept";
  EXPECT_EQ(pf.body["usage"]["output_tokens"], 12) << pf.raw;
  EXPECT_EQ(pf.body["usage"]["input_tokens"].get<int64_t>() + pf.body["usage"]["cache_read_input_tokens"].get<int64_t>(),
            raw.body["usage"]["prompt_tokens"].get<int64_t>());
  prefill["messages"].back()["content"] = "My favourite colour is ";
  expect_anthropic_error(messages(prefill), 400, "invalid_request_error", "cannot end with whitespace");
  expect_anthropic_error(messages(ask, "wrong"), 401, "authentication_error", "x-api-key: KEY");
  expect_anthropic_error(to_reply(c.Post("/v1/messages", {{"x-api-key", "k"}}, "{nope", "application/json")), 400,
                         "invalid_request_error", "not valid JSON");
  // The OpenAI paths keep OpenAI's error shape.
  Reply openai = to_reply(c.Post("/v1/chat/completions", {{"x-api-key", "wrong"}}, "{}", "application/json"));
  EXPECT_EQ(openai.status, 401);
  EXPECT_TRUE(openai.body["error"].contains("code")) << openai.raw;
}

// Lookup decoding keeps only the guesses the sampler would have picked: the same text as plain decoding,
// greedy and sampled with a seed, on text that repeats its prompt (guesses hold) and text that does not.
// The shipped trained model, whose text does repeat what it has read.
TEST(LookupDecoding, GivesTheTextOfPlainDecodingAndKeepsSomeGuesses) {
  const std::string dir = std::string(GROAK_SOURCE_DIR) + "/models/grok-kjv";
  auto model = std::make_shared<Model>(load_model(dir));
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(dir + "/tokenizer.model"));
  const std::string verse = "And the sons of Dedan were Asshurim, and Letushim, and Leummim. And the sons of Midian; "
                            "Ephah, and Epher, and Hanoch, and Abidah, and Eldaah. ";
  const std::vector<json> asks = {
      {{"prompt", verse + verse + "And the sons of Dedan were"}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}},
      {{"prompt", "In the beginning"}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}},
      {{"prompt", verse + verse}, {"max_tokens", 40}, {"temperature", 0.8}, {"seed", 7}, {"n", 2}, {"ignore_eos", true}},
  };
  auto serve = [&](int ngram) {
    ServerOptions o;
    o.port = 0;
    o.scheduler.parallel = 4;
    o.scheduler.context = 512;
    o.scheduler.threads = 2;
    o.scheduler.spec_ngram = ngram;
    o.scheduler.draft_max = 6;
    auto server = std::make_unique<HttpServer>(o);
    const int port = server->start();
    server->set_model(model, tok);
    std::vector<json> out;
    for (const json& a : asks) {
      Reply r = post(port, "/v1/completions", a);
      EXPECT_EQ(r.status, 200) << r.raw;
      out.push_back(r.body["choices"]);
    }
    const SchedulerStats st = server->scheduler()->stats();
    server->stop();
    return std::make_pair(out, st);
  };
  const auto [plain, plain_stats] = serve(0);
  const auto [spec, spec_stats] = serve(3);
  for (size_t i = 0; i < asks.size(); ++i)
    for (size_t c = 0; c < plain[i].size(); ++c)
      EXPECT_EQ(spec[i][c]["text"], plain[i][c]["text"]) << asks[i].dump();
  EXPECT_EQ(plain_stats.drafted_tokens, 0u);
  EXPECT_GT(spec_stats.accepted_tokens, 0u) << "the repeated verse is guessed";
  EXPECT_LT(spec_stats.accepted_tokens, spec_stats.drafted_tokens);
  EXPECT_LT(spec_stats.steps, plain_stats.steps) << "kept guesses save passes";
}

TEST(LookupDecoding, DraftsFollowTheLatestEarlierOccurrence) {
  const std::vector<int32_t> h = {1, 2, 3, 9, 1, 2, 3, 4, 5, 6, 1, 2, 3};
  EXPECT_EQ(lookup_draft(h, 3, 2), (std::vector<int32_t>{4, 5}));      // the later "1 2 3" (then 4 5), not the first
  EXPECT_EQ(lookup_draft(h, 3, 10), (std::vector<int32_t>{4, 5, 6, 1, 2, 3}));
  EXPECT_EQ(lookup_draft(std::vector<int32_t>{7, 8, 1, 2, 5, 1, 2}, 3, 4), (std::vector<int32_t>{5, 1, 2}));  // n = 2
  EXPECT_TRUE(lookup_draft(std::vector<int32_t>{7, 8, 1, 2, 5, 3, 2}, 3, 4).empty());  // n = 1 is not tried
  EXPECT_EQ(lookup_draft(std::vector<int32_t>{4, 8, 4}, 1, 4), (std::vector<int32_t>{8, 4}));
  EXPECT_TRUE(lookup_draft(h, 3, 0).empty());
}

TEST(PromptCache, LongestPrefixWinsExtendedEntriesGoAndTheLeastRecentlyUsedIsDroppedFirst) {
  PromptCache cache(1000);
  std::vector<int64_t> dropped;
  const int64_t a = cache.add({1, 2, 3, 4}, 400, dropped);
  EXPECT_TRUE(dropped.empty());
  const int64_t b = cache.add({7, 8, 9}, 300, dropped);
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(cache.find(std::vector<int32_t>{1, 2, 3, 9}).key, a);
  EXPECT_EQ(cache.find(std::vector<int32_t>{1, 2, 3, 9}).tokens, 3u);
  EXPECT_EQ(cache.find(std::vector<int32_t>{5}).tokens, 0u);
  EXPECT_TRUE(cache.covers(std::vector<int32_t>{1, 2}));
  EXPECT_FALSE(cache.covers(std::vector<int32_t>{1, 2, 3, 4, 5}));
  // a was used last: b goes to make room for 500 bytes.
  EXPECT_EQ(cache.find(std::vector<int32_t>{1}).key, a);
  const int64_t c = cache.add({4, 4, 4}, 500, dropped);
  EXPECT_EQ(dropped, std::vector<int64_t>{b});
  EXPECT_EQ(cache.bytes(), 900u);
  // An entry that extends a takes its place (a's prompts are served by it).
  const int64_t d = cache.add({1, 2, 3, 4, 5, 6}, 100, dropped);
  EXPECT_EQ(dropped, std::vector<int64_t>{a});
  EXPECT_EQ(cache.find(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}).key, d);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.add({9}, 1001, dropped), -1) << "larger than the whole cache";
  // An entry about to be used (`keep`) is never dropped: 950 bytes fit only without d, so nothing is added;
  // with c kept, the least recently used other entry (d) makes room.
  EXPECT_EQ(cache.add({9, 9}, 950, dropped, /*keep=*/d), -1);
  EXPECT_TRUE(dropped.empty());
  EXPECT_GT(cache.add({9, 9}, 450, dropped, /*keep=*/c), d);
  EXPECT_EQ(dropped, std::vector<int64_t>{d});
  EXPECT_EQ(cache.bytes(), 950u);
  cache.remove(c);
  EXPECT_EQ(cache.bytes(), 450u);
}

TEST_F(Serve, LogprobsAreTheModelsLogSoftmax) {
  auto r = start();
  const std::string prompt = "The answer is";
  const std::vector<int32_t> ids = tok_->encode(prompt);
  Reply c = post(r->port, "/v1/completions",
                 json{{"prompt", prompt}, {"max_tokens", 2}, {"temperature", 0}, {"logprobs", 3}, {"echo", true},
                      {"ignore_eos", true}});
  ASSERT_EQ(c.status, 200) << c.raw;
  const json& lp = c.body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size() + 2) << lp;
  EXPECT_TRUE(lp["token_logprobs"][0].is_null()) << "nothing predicts the first prompt token";
  EXPECT_EQ(c.body["choices"][0]["text"].get<std::string>().rfind(prompt, 0), 0u) << "echo puts the prompt first";
  // The engine's logits for the prompt: row t predicts token t + 1.
  Engine s(*model_, {.context = 64});
  std::vector<float> logits;
  s.eval(ids, logits, LogitRows::All);
  const int64_t V = model_->config.vocab_size;
  auto logprob = [&](size_t row, int32_t id) {
    const float* z = logits.data() + row * static_cast<size_t>(V);
    double m = -1e30, sum = 0;
    for (int64_t i = 0; i < V; ++i) m = std::max(m, static_cast<double>(z[i]));
    for (int64_t i = 0; i < V; ++i) sum += std::exp(z[i] - m);
    return z[id] - m - std::log(sum);
  };
  for (size_t t = 1; t < ids.size(); ++t)
    EXPECT_NEAR(lp["token_logprobs"][t].get<double>(), logprob(t - 1, ids[t]), 1e-4) << "prompt token " << t;
  // The first generated token is the greedy one: its logprob is the largest of the top 3.
  const double first = lp["token_logprobs"][ids.size()];
  EXPECT_NEAR(first, logprob(ids.size() - 1, static_cast<int32_t>(argmax_rows(logits, V).back())), 1e-4);
  ASSERT_EQ(lp["top_logprobs"][ids.size()].size(), 3u);
  for (const auto& [k, v] : lp["top_logprobs"][ids.size()].items()) EXPECT_LE(v.get<double>(), first + 1e-6) << k;

  // Chat logprobs: the newer shape.
  Reply chat = post(r->port, "/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}, {"logprobs", true},
                         {"top_logprobs", 2}, {"ignore_eos", true}});
  ASSERT_EQ(chat.status, 200) << chat.raw;
  const json& content = chat.body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u) << chat.raw;
  for (const json& t : content) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_TRUE(t["bytes"].is_array());
  }
}

TEST_F(Serve, SeedsChoicesAndStopStrings) {
  auto r = start();
  const json body = {{"prompt", "Once"}, {"max_tokens", 12}, {"temperature", 1.0}, {"top_k", 0}, {"min_p", 0},
                     {"seed", 11}, {"n", 2}, {"ignore_eos", true}};
  Reply a = post(r->port, "/v1/completions", body);
  Reply b = post(r->port, "/v1/completions", body);
  ASSERT_EQ(a.status, 200) << a.raw;
  ASSERT_EQ(a.body["choices"].size(), 2u);
  EXPECT_EQ(a.body["choices"][0]["index"], 0);
  EXPECT_EQ(a.body["choices"][1]["index"], 1);
  EXPECT_EQ(a.body["choices"], b.body["choices"]) << "the same seed gives the same text";
  EXPECT_NE(a.body["choices"][0]["text"], a.body["choices"][1]["text"]) << "the n choices draw differently";
  EXPECT_EQ(a.body["usage"]["completion_tokens"], 24);

  // A stop string taken from the greedy text itself: the reply ends just before it.
  const std::string full = solo("Once upon", 30);
  ASSERT_GT(full.size(), 12u);
  // Three ASCII letters of it (a cut inside a UTF-8 character would not be a valid stop string).
  size_t from = 6;
  while (from + 3 < full.size() && !(std::isalpha(static_cast<unsigned char>(full[from])) &&
                                     std::isalpha(static_cast<unsigned char>(full[from + 1])) &&
                                     std::isalpha(static_cast<unsigned char>(full[from + 2]))))
    ++from;
  ASSERT_LT(from + 3, full.size()) << "no three letters in a row in: " << full;
  const std::string stop = full.substr(from, 3);
  const size_t cut = full.find(stop);
  Reply s = post(r->port, "/v1/completions",
                 json{{"prompt", "Once upon"}, {"max_tokens", 30}, {"temperature", 0}, {"ignore_eos", true}, {"stop", {stop}}});
  ASSERT_EQ(s.status, 200) << s.raw;
  EXPECT_EQ(s.body["choices"][0]["text"], full.substr(0, cut));
  EXPECT_EQ(s.body["choices"][0]["finish_reason"], "stop");
  // Several prompts at once: choices in prompt order.
  Reply m = post(r->port, "/v1/completions",
                 json{{"prompt", {"Once upon", "Hello"}}, {"max_tokens", 5}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(m.status, 200) << m.raw;
  ASSERT_EQ(m.body["choices"].size(), 2u);
  EXPECT_EQ(m.body["choices"][0]["text"], solo("Once upon", 5));
  EXPECT_EQ(m.body["choices"][1]["text"], solo("Hello", 5));
}

TEST_F(Serve, StreamedChatSendsTheRoleThenDeltas) {
  auto r = start();
  const json msgs = {{{"role", "user"}, {"content", "Tell me a story."}}};
  Reply whole = post(r->port, "/v1/chat/completions", json{{"messages", msgs}, {"max_tokens", 10}, {"temperature", 0}});
  ASSERT_EQ(whole.status, 200) << whole.raw;
  bool done = false;
  const auto events = sse_events(
      stream(r->port, "/v1/chat/completions", json{{"messages", msgs}, {"max_tokens", 10}, {"temperature", 0}, {"stream", true}}),
      &done);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(done);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (const json& e : events) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    for (const json& ch : e["choices"])
      if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, whole.body["choices"][0]["message"]["content"]);
}

TEST_F(Serve, ChatCommandReadsPipedTurnsResetsAndExits) {
  const std::string chat = std::string(GROAK_BIN) + " chat --model " + (*dir_ / "model") + " --tokenizer " +
                           (*dir_ / "tok.model") + " -n 6 --temp 0 -t 2";
  std::string fresh, talk;
  ASSERT_EQ(run_command("printf 'Hi there\\n' | " + chat + " 2>/dev/null", &fresh), 0) << fresh;
  ASSERT_GT(fresh.size(), 1u) << "an empty reply";
  // After /reset the same message gets the reply a fresh conversation gets; /exit ends before "Ignored".
  ASSERT_EQ(run_command("printf 'Tell me more\\n/reset\\nHi there\\n/exit\\nIgnored\\n' | " + chat + " 2>/dev/null", &talk), 0)
      << talk;
  std::vector<std::string> lines;
  std::istringstream in(talk);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << "one line per reply, nothing for /reset, /exit and after it:\n" << talk;
  EXPECT_EQ(lines[1] + "\n", fresh) << "the reply after /reset differs from a fresh conversation's";
}

TEST_F(Serve, ServeCommandRefusesBadSettingsClearly) {
  std::string out;
  const std::string bad = *dir_ / "bad-template.json";
  { std::ofstream(bad) << R"({"user": "no placeholder"})"; }
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " serve --model " + (*dir_ / "model") + " --chat-template " + bad, &out), 1)
      << out;
  EXPECT_NE(out.find("must contain {content}"), std::string::npos) << out;
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " serve --model x --port 70000", &out), 2) << out;
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " serve --model x --parallel 0", &out), 2) << out;
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " serve --model " + (*dir_ / "model") + " --cache-ram 1000000000", &out), 1)
      << out;
  EXPECT_NE(out.find("--cache-ram 1000000000 MB is more than the memory this process may use"), std::string::npos) << out;
}

TEST(ChatTemplate, RendersTheDocumentedPlainFormat) {
  ChatTemplate t;
  EXPECT_EQ(t.render({{"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}}),
            "System: Be kind.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Bye\n\nAssistant:");
  EXPECT_EQ(t.render({{"tool", "18 C"}}), "Tool: 18 C\n\nAssistant:");
  error_of([&] { t.render({{"robot", "x"}}); }, {"unknown chat role 'robot'"});
  EXPECT_EQ(ChatTemplate::parse(R"({"tool": "<t>{content}</t>"})", "t.json").render({{"tool", "r"}}), "<t>r</t>Assistant:");
  ChatTemplate c = ChatTemplate::parse(R"({"user": "<u>{content}</u>", "generation": "<a>", "stop": ["</a>"], "bos": true})", "t.json");
  EXPECT_EQ(c.render({{"user", "x"}}), "<u>x</u><a>");
  EXPECT_EQ(c.stop, std::vector<std::string>{"</a>"});
  EXPECT_TRUE(c.bos);
  error_of([] { ChatTemplate::parse("{", "t.json"); }, {"t.json", "not valid JSON"});
  error_of([] { ChatTemplate::parse(R"({"user": "no placeholder"})", "t.json"); }, {"\"user\"", "{content}"});
  error_of([] { ChatTemplate::parse(R"({"usr": "{content}"})", "t.json"); }, {"\"usr\" is unknown"});
  error_of([] { ChatTemplate::parse(R"({"stop": [""]})", "t.json"); }, {"non-empty"});
}

}  // namespace groak::test
