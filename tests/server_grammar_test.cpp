// Constrained output through the server: response_format (json_object, json_schema) on both OpenAI
// endpoints, llama-server's grammar and json_schema fields, streamed and whole, inside continuous batching
// and with lookup decoding; what cannot be enforced is a 400 naming the field, and the server keeps serving.
#include "server_util.h"

namespace groak::test {

namespace {

const json kSchema = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 6},
    "mood": {"enum": ["calm", "angry"]},
    "n": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}
  },
  "required": ["name", "mood"],
  "additionalProperties": false
})");

// kSchema, checked by hand: "" or what is wrong.
std::string invalid(const std::string& text) {
  const json v = json::parse(text, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return "not a JSON object";
  for (const auto& [k, x] : v.items())
    if (k != "name" && k != "mood" && k != "n" && k != "tags") return "extra " + k;
  if (!v.contains("name") || !v["name"].is_string()) return "name";
  if (!v.contains("mood") || (v["mood"] != "calm" && v["mood"] != "angry")) return "mood";
  if (v.contains("n") && !v["n"].is_number_integer()) return "n";
  if (v.contains("tags") && (!v["tags"].is_array() || v["tags"].size() > 2)) return "tags";
  return "";
}

json schema_format() { return {{"type", "json_schema"}, {"json_schema", {{"name", "pet"}, {"strict", true}, {"schema", kSchema}}}}; }

}  // namespace

TEST_F(Serve, ResponseFormatIsEnforcedOnBothEndpoints) {
  auto srv = start();
  // Sampled at temperature 1 from random weights: only the grammar makes these JSON.
  json chat = {{"messages", {{{"role", "user"}, {"content", "Describe a pet."}}}}, {"max_tokens", 160},
               {"temperature", 1.0}, {"n", 6}, {"seed", 3}, {"response_format", schema_format()}};
  Reply r = post(srv->port, "/v1/chat/completions", chat);
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const json& c : r.body["choices"]) {
    const std::string text = c["message"]["content"];
    EXPECT_EQ(invalid(text), "") << text;
    EXPECT_EQ(c["finish_reason"], "stop") << text;
  }
  json comp = {{"prompt", "Once upon a time"}, {"max_tokens", 160}, {"temperature", 1.0}, {"n", 6},
               {"response_format", {{"type", "json_object"}}}};
  r = post(srv->port, "/v1/completions", comp);
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const json& c : r.body["choices"]) {
    const json v = json::parse(c["text"].get<std::string>(), nullptr, false);
    // A free-form object may still be open at max_tokens; a finished one parses.
    if (c["finish_reason"] == "stop") {
      EXPECT_TRUE(v.is_object()) << c["text"];
    }
  }
  // Greedy: the same text whole and streamed.
  json greedy = {{"prompt", "The cat"}, {"max_tokens", 120}, {"temperature", 0}, {"response_format", schema_format()}};
  r = post(srv->port, "/v1/completions", greedy);
  ASSERT_EQ(r.status, 200) << r.raw;
  const std::string whole = r.body["choices"][0]["text"];
  EXPECT_EQ(invalid(whole), "") << whole;
  greedy["stream"] = true;
  bool done = false;
  std::string streamed;
  for (const json& e : sse_events(stream(srv->port, "/v1/completions", greedy), &done))
    if (!e["choices"].empty()) streamed += e["choices"][0].value("text", "");
  EXPECT_TRUE(done);
  EXPECT_EQ(streamed, whole);
}

TEST_F(Serve, GrammarAndJsonSchemaFieldsAsLlamaServerTakesThem) {
  auto srv = start();
  json body = {{"prompt", "Answer:"}, {"max_tokens", 20}, {"temperature", 1.0}, {"n", 8},
               {"grammar", "root ::= (\"yes\" | \"no\") \"!\"{1,3}"}};
  Reply r = post(srv->port, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const json& c : r.body["choices"]) {
    const std::string t = c["text"];
    EXPECT_TRUE(t == "yes!" || t == "yes!!" || t == "yes!!!" || t == "no!" || t == "no!!" || t == "no!!!") << t;
  }
  // llama-server's /completion with json_schema.
  r = post(srv->port, "/completion", json{{"prompt", "A pet:"}, {"n_predict", 120}, {"temperature", 1.0}, {"json_schema", kSchema}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(invalid(r.body["content"]), "") << r.body["content"];
}

TEST_F(Serve, ConstrainedRequestsBatchWithOthersAndWithLookupDecoding) {
  ServerOptions o = options();
  o.scheduler.spec_ngram = 2;
  o.scheduler.draft_max = 4;
  auto srv = start(o);
  // Plain and constrained requests in flight together: each gets its own kind of output.
  std::vector<std::thread> threads;
  std::vector<Reply> replies(6);
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&, i] {
      json b = {{"prompt", "The dog and the dog and the dog"}, {"max_tokens", 230}, {"temperature", i % 2 ? 1.0 : 0.0}};
      if (i < 4) b["response_format"] = schema_format();
      replies[static_cast<size_t>(i)] = post(srv->port, "/v1/completions", b);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(replies[static_cast<size_t>(i)].status, 200) << replies[static_cast<size_t>(i)].raw;
    const std::string text = replies[static_cast<size_t>(i)].body["choices"][0]["text"];
    if (i < 4) {
      EXPECT_EQ(invalid(text), "") << text << " (" << replies[static_cast<size_t>(i)].body["choices"][0]["finish_reason"] << ")";
    }
  }
  EXPECT_GE(srv->sched().stats().max_sequences_in_step, 2);
}

TEST_F(Serve, UnenforceableConstraintsAre400sNamingTheField) {
  auto srv = start();
  const int port = srv->port;
  auto with = [](json extra) {
    json b = {{"prompt", "hi"}, {"max_tokens", 4}};
    b.update(extra);
    return b;
  };
  json pattern = schema_format();
  pattern["json_schema"]["schema"]["properties"]["name"]["pattern"] = "^[a-z]+$";
  Reply r = post(port, "/v1/completions", with({{"response_format", pattern}}));
  expect_error(r, 400, "properties.name.pattern", "pattern");
  EXPECT_EQ(r.body["error"]["param"], "response_format");
  expect_error(post(port, "/v1/completions", with({{"response_format", {{"type", "xml"}}}})), 400, "json_schema", "type");
  expect_error(post(port, "/v1/completions", with({{"response_format", {{"type", "json_schema"}}}})), 400, "json_schema", "no schema");
  expect_error(post(port, "/v1/completions", with({{"response_format", "json"}})), 400, "response_format", "not an object");
  r = post(port, "/v1/completions", with({{"grammar", "root ::= root \"a\" | \"b\""}}));
  expect_error(r, 400, "left-recursive", "left recursion");
  EXPECT_EQ(r.body["error"]["param"], "grammar");
  expect_error(post(port, "/v1/completions", with({{"grammar", "root ::= \"a\" root"}})), 400, "never finish", "endless");
  expect_error(post(port, "/v1/completions", with({{"grammar", "root ::= \"a"}})), 400, "line 1", "unclosed");
  expect_error(post(port, "/v1/completions", with({{"grammar", 5}})), 400, "grammar must be a string", "type");
  expect_error(post(port, "/v1/completions", with({{"grammar", "root ::= \"a\""}, {"json_schema", kSchema}})), 400,
               "send one of them", "two constraints");
  json one_of = {{"oneOf", {{{"type", "string"}}, {{"type", "integer"}}}}};
  expect_error(post(port, "/completion", json{{"prompt", "x"}, {"json_schema", one_of}}), 400, "anyOf", "oneOf");
  json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"response_format", pattern}};
  expect_error(post(port, "/v1/chat/completions", chat), 400, "pattern", "chat");
  // Still serving.
  EXPECT_EQ(post(port, "/v1/completions", with(json::object())).status, 200);
  EXPECT_EQ(post(port, "/v1/completions", with({{"response_format", {{"type", "text"}}}})).status, 200);
}

// Compiled grammars are kept by text, the least recently used dropped past the count or the bytes bound.
TEST(GrammarCache, KeepsRecentGrammarsWithinItsBounds) {
  std::vector<std::string> pieces{""};
  for (int b = 1; b < 128; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
  auto vocab = std::make_shared<const TokenVocab>(pieces, 0);
  GrammarCache cache(vocab);
  auto a = cache.get("root ::= \"a\"", "grammar");
  EXPECT_EQ(cache.get("root ::= \"a\"", "grammar"), a);  // the same compiled grammar
  for (int i = 0; i < static_cast<int>(GrammarCache::kEntries); ++i) cache.get("root ::= \"b\"{" + std::to_string(i) + "}", "grammar");
  EXPECT_NE(cache.get("root ::= \"a\"", "grammar"), a);  // dropped past the count, compiled again
  GrammarCache tiny(vocab, /*max_bytes=*/1);
  auto x = tiny.get("root ::= \"x\"", "grammar");
  tiny.get("root ::= \"y\"", "grammar");
  EXPECT_NE(tiny.get("root ::= \"x\"", "grammar"), x);  // dropped past the bytes bound
  try {
    cache.get("root ::= root", "grammar");
    ADD_FAILURE() << "a left-recursive grammar was compiled";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "grammar");
  }
}

}  // namespace groak::test
