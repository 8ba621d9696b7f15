// Tool calls on /v1/chat/completions: the reply's calls name listed tools and their arguments follow the
// tool's parameters (sampled at temperature 1 from random weights: only the grammar makes them so), whole
// and streamed; earlier calls and tool results go into the prompt; bad tools are 400s naming the field.
#include "grammar/gbnf.h"
#include "server/tools.h"
#include "server_util.h"

namespace groak::test {

namespace {

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
                  "unit": {"enum": ["C", "F"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
   "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false}}}
])");

// A call's arguments against its tool's schema, by hand: "" or what is wrong.
std::string bad_call(const json& call) {
  if (call.value("type", "") != "function" || !call.contains("id") || !call["id"].is_string()) return "shape";
  const json& f = call["function"];
  const json args = json::parse(f["arguments"].get<std::string>(), nullptr, false);
  if (!args.is_object()) return "arguments not an object";
  if (f["name"] == "get_weather") {
    if (args.size() != 2 || !args["city"].is_string() || !(args["unit"] == "C" || args["unit"] == "F")) return "get_weather args";
  } else if (f["name"] == "add") {
    if (args.size() != 2 || !args["a"].is_number_integer() || !args["b"].is_number_integer()) return "add args";
  } else {
    return "unknown tool";
  }
  return "";
}

json ask(json extra = json::object()) {
  json b = {{"messages", {{{"role", "user"}, {"content", "What is the weather in Paris?"}}}}, {"max_tokens", 200},
            {"temperature", 1.0}, {"tools", kTools}};
  b.update(extra);
  return b;
}

}  // namespace

// The tools' list takes ~250 tokens of the 512-piece tokenizer: more context than Serve's 256.
class ServeTools : public Serve {
 protected:
  static ServerOptions wide() {
    ServerOptions o = options();
    o.scheduler.context = 1024;
    return o;
  }
};

TEST(Tools, SplitAndStreamFindTheCalls) {
  const std::string text = "Let me check. " + tool_call_text("add", json{{"a", 1}, {"b", 2}}) + "\n" +
                           tool_call_text("get_weather", json{{"city", "Oslo"}, {"unit", "C"}});
  const ToolReply r = split_tool_calls(text);
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0]["name"], "add");
  EXPECT_EQ(json::parse(r.calls[1]["arguments"].get<std::string>())["city"], "Oslo");
  // A cut call is text.
  EXPECT_EQ(split_tool_calls("hi <tool_call>\n{\"name\": \"add\", \"argu").calls.size(), 0u);
  EXPECT_EQ(split_tool_calls("plain").content, "plain");
  // Streamed piece by piece: the text before the tag comes out, a partial tag is held until it is not.
  ToolCallStream s;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 3) out += s.push(text.substr(i, 3));
  out += s.finish();
  EXPECT_EQ(out, "Let me check. ");
  EXPECT_TRUE(s.in_calls());
  EXPECT_EQ(s.all(), text);
  ToolCallStream t;
  EXPECT_EQ(t.push("a <tool"), "a ");
  EXPECT_EQ(t.push("box>"), "<toolbox>");
  EXPECT_EQ(t.push("<"), "");
  EXPECT_EQ(t.finish(), "<");
}

// Definitions named like the rules around the arguments (root, call, calls, text-0) get names of their own.
TEST(Tools, SchemaDefinitionsDoNotClashWithTheCallRules) {
  const auto body = nlohmann::ordered_json::parse(R"({"tool_choice": "auto", "tools": [{"type": "function", "function": {
    "name": "f", "parameters": {"type": "object", "required": ["a", "b", "c", "d"],
      "properties": {"a": {"$ref": "#/$defs/call"}, "b": {"$ref": "#/$defs/root"}, "c": {"$ref": "#/$defs/calls"},
                     "d": {"$ref": "#/$defs/text-0"}},
      "$defs": {"call": {"type": "integer"}, "root": {"type": "boolean"}, "calls": {"type": "null"},
                "text-0": {"enum": ["x"]}}}}}]})");
  const auto t = parse_tools(body);
  ASSERT_TRUE(t);
  EXPECT_NO_THROW(parse_gbnf(tools_grammar(*t))) << tools_grammar(*t);
}

TEST(Tools, EarlierCallsAndResultsGoIntoThePrompt) {
  const TempDir dir;
  train_tokenizer(std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt", 512, dir / "tok.model");
  const Tokenizer tok = Tokenizer::load(dir / "tok.model");
  json body = ask();
  body["messages"] = json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"C\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}])");
  RequestLimits lim;
  lim.vocab = tok.vocab_size();
  lim.context = 4096;
  const auto tools = parse_tools(nlohmann::ordered_json::parse(body.dump()));
  ASSERT_TRUE(tools);
  const GenerationRequest g = parse_generation_request(body, /*chat=*/true, tok, ChatTemplate{}, lim, tools);
  const std::string& p = g.prompt_texts[0];
  EXPECT_EQ(p.rfind("System: Be brief.\n\nYou can call functions.", 0), 0u) << p;
  EXPECT_NE(p.find("{\"name\":\"get_weather\",\"description\":\"The weather in a city\""), std::string::npos) << p;
  EXPECT_NE(p.find("Assistant: " + tool_call_text("get_weather", json{{"city", "Paris"}, {"unit", "C"}}) + "\n\n"),
            std::string::npos) << p;
  EXPECT_NE(p.find("Tool: 18 C, sunny\n\nAssistant:"), std::string::npos) << p;
  EXPECT_TRUE(g.tools.has_value());
  // tool_choice none: no list of tools, no grammar.
  body["tool_choice"] = "none";
  const auto none = parse_tools(nlohmann::ordered_json::parse(body.dump()));
  const GenerationRequest n = parse_generation_request(body, true, tok, ChatTemplate{}, lim, none);
  EXPECT_EQ(n.prompt_texts[0].find("You can call functions"), std::string::npos);
  EXPECT_EQ(tools_grammar(*none), "");
}

TEST_F(ServeTools, RequiredAndNamedToolChoicesGiveValidCalls) {
  auto srv = start(wide());
  Reply r = post(srv->port, "/v1/chat/completions", ask({{"tool_choice", "required"}, {"n", 6}, {"seed", 1}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  std::set<std::string> names;
  for (const json& c : r.body["choices"]) {
    EXPECT_EQ(c["finish_reason"], "tool_calls") << c;
    EXPECT_TRUE(c["message"]["content"].is_null()) << c;
    ASSERT_TRUE(c["message"]["tool_calls"].is_array() && !c["message"]["tool_calls"].empty()) << c;
    for (const json& call : c["message"]["tool_calls"]) {
      EXPECT_EQ(bad_call(call), "") << call;
      names.insert(call["function"]["name"]);
    }
  }
  EXPECT_EQ(names.size(), 2u);  // random sampling picked both tools somewhere
  json named = {{"type", "function"}, {"function", {{"name", "add"}}}};
  r = post(srv->port, "/v1/chat/completions", ask({{"tool_choice", named}, {"n", 4}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const json& c : r.body["choices"]) {
    ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << c;
    EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["name"], "add");
    EXPECT_EQ(bad_call(c["message"]["tool_calls"][0]), "");
  }
  // Streamed: the same calls (greedy), in one tool_calls delta, then finish_reason tool_calls.
  json greedy = ask({{"tool_choice", "required"}, {"temperature", 0}});
  r = post(srv->port, "/v1/chat/completions", greedy);
  ASSERT_EQ(r.status, 200) << r.raw;
  greedy["stream"] = true;
  bool done = false;
  json streamed = json::array();
  std::string finish;
  for (const json& e : sse_events(stream(srv->port, "/v1/chat/completions", greedy), &done)) {
    if (e["choices"].empty()) continue;
    const json& ch = e["choices"][0];
    if (ch["delta"].contains("tool_calls"))
      for (const json& call : ch["delta"]["tool_calls"]) streamed.push_back(call);
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(finish, "tool_calls");
  const json& whole = r.body["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(streamed.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(streamed[i]["index"], i);
    EXPECT_EQ(streamed[i]["function"], whole[i]["function"]);
  }
}

TEST_F(ServeTools, AutoToolChoiceGivesTextOrValidCalls) {
  auto srv = start(wide());
  // Random weights mostly write text; whatever comes, a call in it is valid and text holds no opening tag.
  const Reply r = post(srv->port, "/v1/chat/completions", ask({{"n", 8}, {"seed", 2}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const json& c : r.body["choices"]) {
    const json& m = c["message"];
    if (m.contains("tool_calls")) {
      for (const json& call : m["tool_calls"]) EXPECT_EQ(bad_call(call), "") << call;
    }
    if (m["content"].is_string()) {
      EXPECT_EQ(m["content"].get<std::string>().find("<tool_call>"), std::string::npos);
    }
  }
}

TEST_F(ServeTools, BadToolsAre400sNamingTheField) {
  auto srv = start(wide());
  const int port = srv->port;
  json tools = kTools;
  tools[1]["function"]["parameters"]["properties"]["a"]["minimum"] = 0;
  Reply r = post(port, "/v1/chat/completions", ask({{"tools", tools}}));
  expect_error(r, 400, "properties.a.minimum", "unenforceable parameters");
  EXPECT_EQ(r.body["error"]["param"], "tools[1].function.parameters");
  expect_error(post(port, "/v1/chat/completions", ask({{"tools", "all"}})), 400, "tools must be an array", "not an array");
  json no_name = kTools;
  no_name[0]["function"].erase("name");
  expect_error(post(port, "/v1/chat/completions", ask({{"tools", no_name}})), 400, "tools[0].function.name", "no name");
  json twice = kTools;
  twice[1]["function"]["name"] = "get_weather";
  expect_error(post(port, "/v1/chat/completions", ask({{"tools", twice}})), 400, "names two tools", "duplicate");
  json kind = kTools;
  kind[0]["type"] = "retrieval";
  expect_error(post(port, "/v1/chat/completions", ask({{"tools", kind}})), 400, "tools[0].type", "type");
  json unknown = {{"type", "function"}, {"function", {{"name", "nope"}}}};
  expect_error(post(port, "/v1/chat/completions", ask({{"tool_choice", unknown}})), 400, "not one of the tools", "named");
  expect_error(post(port, "/v1/chat/completions", ask({{"tool_choice", "always"}})), 400, "tool_choice", "choice");
  json no_tools = ask({{"tool_choice", "required"}});
  no_tools.erase("tools");
  expect_error(post(port, "/v1/chat/completions", no_tools), 400, "needs tools", "choice without tools");
  expect_error(post(port, "/v1/chat/completions", ask({{"response_format", {{"type", "json_object"}}}})), 400,
               "cannot go with tools", "tools and a format");
  expect_error(post(port, "/v1/completions", json{{"prompt", "x"}, {"tools", kTools}}), 400, "/v1/chat/completions", "completions");
  json bad_args = ask();
  bad_args["messages"].push_back({{"role", "assistant"}, {"content", nullptr},
                                  {"tool_calls", {{{"id", "c"}, {"type", "function"},
                                                   {"function", {{"name", "add"}, {"arguments", "{not json"}}}}}}});
  expect_error(post(port, "/v1/chat/completions", bad_args), 400, "tool_calls[0].function.arguments", "arguments");
  EXPECT_EQ(post(port, "/v1/chat/completions", ask({{"tool_choice", "none"}, {"max_tokens", 4}})).status, 200);
}

// The Messages API's tools: Anthropic's shapes over the same grammar (input_schema, tool_choice any/tool,
// tool_use blocks, tool_result blocks back), errors naming Anthropic's fields.
TEST_F(ServeTools, MessagesApiToolUse) {
  auto srv = start(wide());
  json tools = json::array();
  for (const json& t : kTools)
    tools.push_back({{"name", t["function"]["name"]}, {"input_schema", t["function"]["parameters"]}});
  json body = {{"model", "m"}, {"max_tokens", 200}, {"temperature", 1.0}, {"tools", tools},
               {"tool_choice", {{"type", "any"}}}, {"messages", {{{"role", "user"}, {"content", "Weather in Oslo?"}}}}};
  Reply r = post(srv->port, "/v1/messages", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["stop_reason"], "tool_use") << r.raw;
  json uses = json::array();
  for (const json& b : r.body["content"])
    if (b["type"] == "tool_use") {
      uses.push_back(b);
      const json call = {{"id", b["id"]}, {"type", "function"}, {"function", {{"name", b["name"]}, {"arguments", b["input"].dump()}}}};
      EXPECT_EQ(bad_call(call), "") << b;
      EXPECT_EQ(b["id"].get<std::string>().rfind("toolu_", 0), 0u);
    }
  ASSERT_FALSE(uses.empty()) << r.raw;
  // Named, then the result back.
  body["tool_choice"] = {{"type", "tool"}, {"name", "add"}};
  r = post(srv->port, "/v1/messages", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["content"].back()["name"], "add");
  json results = json::array();
  for (const json& u : uses) results.push_back({{"type", "tool_result"}, {"tool_use_id", u["id"]}, {"content", "5 C"}});
  body["messages"].push_back({{"role", "assistant"}, {"content", uses}});
  body["messages"].push_back({{"role", "user"}, {"content", results}});
  body["tool_choice"] = {{"type", "none"}};
  body["max_tokens"] = 4;
  EXPECT_EQ(post(srv->port, "/v1/messages", body).status, 200);
  // Errors in Anthropic's names.
  json bad = body;
  bad["tools"][1]["input_schema"]["properties"]["a"]["minimum"] = 0;
  r = post(srv->port, "/v1/messages", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("tools[1].input_schema"), std::string::npos) << r.raw;
  bad = body;
  bad["tool_choice"] = {{"type", "sometimes"}};
  r = post(srv->port, "/v1/messages", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("tool_choice.type"), std::string::npos) << r.raw;
}

}  // namespace groak::test
