// POST /v1/messages: Anthropic's Messages API over the same scheduler and chat template as the OpenAI
// endpoints. The request is checked here in Anthropic's terms (system, messages of text, tool_use and
// tool_result blocks, tools and tool_choice through server/tools.h,
// max_tokens required, stop_sequences, a last assistant message as a prefill the reply continues), then
// given to the shared parser as the equivalent chat request;
// the reply is a message ({"type": "message", "content": [{"type": "text", …}], "stop_reason", "usage"}),
// or a stream of Anthropic's named events. Errors on this path take Anthropic's shape (transport.h).
#include <cctype>

#include "server/openai.h"
#include "server/openai_reply.h"
#include "server/server.h"
#include "server/transport.h"

namespace groak {

using nlohmann::json;

namespace messages_api {  // named: the server's files are compiled as one unit

[[noreturn]] void bad(const std::string& field, const std::string& what) { throw ApiError(400, field + " " + what, field); }

// The text of a content: a string, or an array of {"type": "text", "text"} blocks (joined as they are).
std::string text_of(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad(where, std::string("must be a string or an array of content blocks, got ") + type_name(content));
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& b = content[j];
    const std::string at = where + "[" + std::to_string(j) + "]";
    if (!b.is_object()) bad(at, std::string("must be a content block object, got ") + type_name(b));
    const std::string type = b.contains("type") && b["type"].is_string() ? b["type"].get<std::string>() : "";
    if (type != "text")
      bad(at + ".type", type.empty() ? std::string("is required (\"text\")")
                                     : "'" + type + "' blocks are not supported by groak (Grok-1 reads text only); send "
                                       "{\"type\": \"text\", \"text\": \"...\"} blocks");
    if (!b.contains("text") || !b["text"].is_string()) bad(at + ".text", "is required: a string");
    text += b["text"].get<std::string>();
  }
  return text;
}

// Anthropic's tools and tool_choice as OpenAI's (server/tools.h reads those): {name, description,
// input_schema} → {"type": "function", "function": {name, description, parameters}}; tool_choice auto /
// any / tool (named) / none → auto / required / {"function": {"name"}} / none; disable_parallel_tool_use →
// parallel_tool_calls false. Kept in the schemas' key order (ordered_json).
nlohmann::ordered_json openai_tools(const nlohmann::ordered_json& body) {
  using ojson = nlohmann::ordered_json;
  ojson out = ojson::object();
  const auto tools = body.find("tools");
  if (tools == body.end() || tools->is_null()) {
    // tool_choice without tools asks for nothing: ignored, as no call can be made
    return out;
  }
  if (!tools->is_array()) bad("tools", "must be an array of {\"name\", \"description\", \"input_schema\"}");
  ojson list = ojson::array();
  for (size_t i = 0; i < tools->size(); ++i) {
    const ojson& t = (*tools)[i];
    const std::string at = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) bad(at, "must be an object {\"name\", \"description\", \"input_schema\"}");
    if (t.contains("type") && t["type"].is_string() && t["type"] != "custom")
      bad(at + ".type", "'" + t["type"].get<std::string>() + "': only client tools (name, input_schema) are supported");
    if (!t.contains("input_schema") || !t["input_schema"].is_object()) bad(at + ".input_schema", "is required: a JSON Schema object");
    ojson f = {{"name", t.contains("name") ? t["name"] : ojson()}, {"parameters", t["input_schema"]}};
    if (t.contains("description")) f["description"] = t["description"];
    list.push_back({{"type", "function"}, {"function", f}});
  }
  out["tools"] = list;
  if (const auto c = body.find("tool_choice"); c != body.end() && !c->is_null()) {
    if (!c->is_object() || !c->contains("type") || !(*c)["type"].is_string())
      bad("tool_choice", "must be {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}");
    const std::string type = (*c)["type"];
    if (type == "auto" || type == "none") {
      out["tool_choice"] = type;
    } else if (type == "any") {
      out["tool_choice"] = "required";
    } else if (type == "tool") {
      if (!c->contains("name") || !(*c)["name"].is_string()) bad("tool_choice.name", "is required with type tool");
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", (*c)["name"]}}}};
    } else {
      bad("tool_choice.type", "must be auto, any, tool or none, not '" + type + "'");
    }
    if (c->contains("disable_parallel_tool_use") && (*c)["disable_parallel_tool_use"] == true) out["parallel_tool_calls"] = false;
  }
  return out;
}

// Anthropic's field names in errors from the shared tools reader: tools[i].function.parameters → input_schema.
std::optional<ToolRequest> messages_tools(const nlohmann::ordered_json& body) {
  try {
    return parse_tools(openai_tools(body));
  } catch (const ApiError& e) {
    std::string msg = e.what(), param = e.param;
    for (std::string* s : {&msg, &param}) {
      for (size_t at; (at = s->find(".function.parameters")) != std::string::npos;) s->replace(at, 20, ".input_schema");
      for (size_t at; (at = s->find(".function.name")) != std::string::npos;) s->replace(at, 14, ".name");
    }
    throw ApiError(e.status, msg, param);
  }
}

struct MessagesRequest {
  GenerationRequest g;
  std::vector<std::string> stop_sequences;  // the client's own (the template's stops end a turn)
  bool prefill = false;  // the last message was the assistant's: the reply continues its text
};

MessagesRequest parse_messages(const json& body, const Tokenizer& tok, const ChatTemplate& tmpl, const RequestLimits& lim,
                               std::optional<ToolRequest> tools) {
  if (!body.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, got ") + type_name(body));
  if (body.contains("thinking") && !body["thinking"].is_null())
    bad("thinking", "is not supported by groak's Messages API (Grok-1 has no thinking mode)");
  if (!body.contains("max_tokens")) bad("max_tokens", "is required (the Messages API has no default): the most tokens to generate");
  json chat = {{"messages", json::array()}, {"max_tokens", body["max_tokens"]}};
  for (const char* f : {"temperature", "top_p", "top_k"})
    if (body.contains(f)) chat[f] = body[f];
  if (const auto s = body.find("system"); s != body.end() && !s->is_null())
    chat["messages"].push_back({{"role", "system"}, {"content", text_of(*s, "system")}});
  const auto msgs = body.find("messages");
  if (msgs == body.end()) bad("messages", "is required: an array of {\"role\", \"content\"}");
  if (!msgs->is_array() || msgs->empty()) bad("messages", "must be a non-empty array of {\"role\", \"content\"}");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(at, std::string("must be an object, got ") + type_name(m));
    const std::string role = m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : "";
    if (role != "user" && role != "assistant")
      bad(at + ".role", role.empty() ? std::string("is required: \"user\" or \"assistant\"")
                                     : "'" + role + "' is not a Messages API role; use user or assistant (the system "
                                       "prompt is the top-level `system` field)");
    if (!m.contains("content")) bad(at + ".content", "is required: a string or an array of text blocks");
    // Tool blocks become OpenAI's shapes: an assistant's tool_use blocks its tool_calls, a user's
    // tool_result blocks tool messages (before the user's text).
    const json& content = m["content"];
    json text_blocks = json::array(), calls = json::array();
    if (content.is_array()) {
      for (size_t j = 0; j < content.size(); ++j) {
        const json& b = content[j];
        const std::string bat = at + ".content[" + std::to_string(j) + "]";
        const std::string type = b.is_object() && b.contains("type") && b["type"].is_string() ? b["type"].get<std::string>() : "";
        if (type == "tool_use" && role == "assistant") {
          if (!b.contains("name") || !b["name"].is_string()) bad(bat + ".name", "is required: the tool's name");
          if (!b.contains("input") || !b["input"].is_object()) bad(bat + ".input", "is required: the call's arguments object");
          calls.push_back({{"id", b.value("id", "")}, {"type", "function"},
                           {"function", {{"name", b["name"]}, {"arguments", b["input"].dump()}}}});
        } else if (type == "tool_result" && role == "user") {
          std::string result = b.contains("content") && !b["content"].is_null() ? text_of(b["content"], bat + ".content") : "";
          if (b.contains("is_error") && b["is_error"] == true) result = "Error: " + result;
          chat["messages"].push_back({{"role", "tool"}, {"content", result}});
        } else {
          text_blocks.push_back(b);
        }
      }
    }
    const std::string text = content.is_array() ? text_of(text_blocks, at + ".content") : text_of(content, at + ".content");
    if (!calls.empty())
      chat["messages"].push_back({{"role", role}, {"content", text}, {"tool_calls", calls}});
    else if (!text.empty() || text_blocks.size() > 0 || !content.is_array())
      chat["messages"].push_back({{"role", role}, {"content", text}});
  }
  // A last message of the assistant's is a prefill: the reply continues it (as Anthropic's API does).
  std::string prefill;
  const bool prefilled = chat["messages"].back()["role"] == "assistant";
  if (prefilled) {
    prefill = chat["messages"].back()["content"].get<std::string>();
    chat["messages"].erase(chat["messages"].size() - 1);
    const std::string at = "messages[" + std::to_string(msgs->size() - 1) + "].content";
    if (!prefill.empty() && std::isspace(static_cast<unsigned char>(prefill.back())))
      bad(at, "the final assistant content (a prefill) cannot end with whitespace");
    if (chat["messages"].empty()) bad("messages", "holds only an assistant prefill; give a user message before it");
  }
  MessagesRequest r;
  r.prefill = prefilled;
  if (const auto st = body.find("stop_sequences"); st != body.end() && !st->is_null()) {
    if (!st->is_array()) bad("stop_sequences", std::string("must be an array of strings, got ") + type_name(*st));
    for (size_t i = 0; i < st->size(); ++i) {
      if (!(*st)[i].is_string() || (*st)[i].get<std::string>().empty())
        bad("stop_sequences[" + std::to_string(i) + "]", "must be a non-empty string");
      r.stop_sequences.push_back((*st)[i].get<std::string>());
    }
    if (!r.stop_sequences.empty()) chat["stop"] = r.stop_sequences;
  }
  const auto stream = body.find("stream");
  if (stream != body.end() && !stream->is_null() && !stream->is_boolean())
    bad("stream", std::string("must be a boolean, got ") + type_name(*stream));
  r.g = parse_generation_request(chat, /*chat=*/true, tok, tmpl, lim, std::move(tools));
  r.g.stream = stream != body.end() && stream->is_boolean() && stream->get<bool>();
  if (prefilled && !prefill.empty()) {  // the reply marker becomes an assistant message's opening, then the prefill
    std::string& text = r.g.prompt_texts[0];
    if (text.size() >= tmpl.generation.size() &&
        text.compare(text.size() - tmpl.generation.size(), std::string::npos, tmpl.generation) == 0)
      text.resize(text.size() - tmpl.generation.size());
    text += tmpl.prefix("assistant") + prefill;  // tokenized whole, as one text
    std::vector<int32_t> ids;
    if (tmpl.bos) ids.push_back(tok.bos_id());
    for (int32_t id : tok.encode(text)) ids.push_back(id);
    const auto len = static_cast<int64_t>(ids.size());
    if (len + r.g.params.decode.max_tokens > lim.context)
      throw ApiError(400, "the prompt with its prefill has " + std::to_string(len) + " tokens; with max_tokens " +
                              std::to_string(r.g.params.decode.max_tokens) + " that is more than the " +
                              std::to_string(lim.context) + " the context holds per request; shorten it or lower max_tokens",
                     "messages");
    r.g.prompts[0] = std::move(ids);
  }
  return r;
}

// Anthropic's stop_reason (and stop_sequence) of a finished job.
std::pair<json, json> stop_of(const JobResult& r, const std::vector<std::string>& client_stops) {
  switch (r.stop) {
    case StopReason::MaxTokens:
    case StopReason::ContextFull: return {"max_tokens", nullptr};
    case StopReason::StopString:
      for (const std::string& s : client_stops)
        if (s == r.stop_string) return {"stop_sequence", s};
      return {"end_turn", nullptr};  // the chat template's end of a turn
    default: return {"end_turn", nullptr};
  }
}

json usage_of(const JobResult& r) {
  return {{"input_tokens", r.prompt_tokens - r.cached_tokens},
          {"output_tokens", r.completion_tokens},
          {"cache_read_input_tokens", r.cached_tokens},
          {"cache_creation_input_tokens", 0}};
}

json message(const std::string& id, const std::string& model, json content, json stop_reason, json stop_sequence,
             json usage) {
  return {{"id", id},           {"type", "message"},          {"role", "assistant"},
          {"model", model},     {"content", std::move(content)}, {"stop_reason", std::move(stop_reason)},
          {"stop_sequence", std::move(stop_sequence)}, {"usage", std::move(usage)}};
}

// A reply's calls as tool_use blocks: {"type": "tool_use", "id", "name", "input"}.
json tool_use_blocks(const std::vector<json>& calls) {
  json out = json::array();
  for (const json& c : calls)
    out.push_back({{"type", "tool_use"}, {"id", random_id("toolu_")}, {"name", c["name"]},
                   {"input", json::parse(c["arguments"].get<std::string>())}});
  return out;
}

// A stream's state, shared with the content provider httplib calls until it is done.
struct MessageStream {
  MessagesRequest m;
  Choice choice;
  std::string id, model;
  ToolCallStream calls;  // with tools: text is held while it may open a call
  bool opened = false;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

  bool pump(SseWriter& sse) {  // false: the client is gone, or the stream has ended
    auto send = [&](const char* name, json data) {
      last_write = std::chrono::steady_clock::now();
      return sse.event(name, data);
    };
    if (!opened) {
      opened = true;
      json u = {{"input_tokens", choice.job->params().prompt.size()}, {"output_tokens", 0}};
      if (!send("message_start", {{"type", "message_start"}, {"message", message(id, model, json::array(), nullptr, nullptr, u)}}) ||
          !send("content_block_start", {{"type", "content_block_start"}, {"index", 0},
                                        {"content_block", {{"type", "text"}, {"text", ""}}}}) ||
          !send("ping", {{"type", "ping"}}))
        return false;
    }
    for (TokenOut& t : take(choice, kPoll)) {
      std::string text = chat_delta(choice, t.text);
      if (m.g.tools) text = calls.push(text);
      if (text.empty()) continue;
      choice.text += text;
      if (!send("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                        {"delta", {{"type", "text_delta"}, {"text", text}}}}))
        return false;
    }
    if (!choice.finished) return sse.keep_alive(last_write);
    const JobResult& r = choice.job->result();
    if (r.finish == FinishReason::Error || (r.finish == FinishReason::Cancelled && r.status == 503)) {
      const ApiError e(r.status == 503 ? 503 : 500, r.error.empty() ? "generation failed" : r.error);
      send("error", error_json("/v1/messages", e));
      sse.end();
      return false;
    }
    auto [reason, seq] = stop_of(r, m.stop_sequences);
    ToolCallStream::End tr;
    if (m.g.tools) {  // held text, then each call as a tool_use block with its input as one JSON delta
      tr = calls.end();
      if (!tr.rest.empty() && !send("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                                            {"delta", {{"type", "text_delta"}, {"text", tr.rest}}}}))
        return false;
    }
    send("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}});
    if (!tr.calls.empty()) {
      const json blocks = tool_use_blocks(tr.calls);
      for (size_t i = 0; i < blocks.size(); ++i) {
        json start = blocks[i];
        start["input"] = json::object();
        send("content_block_start", {{"type", "content_block_start"}, {"index", i + 1}, {"content_block", start}});
        send("content_block_delta", {{"type", "content_block_delta"}, {"index", i + 1},
                                     {"delta", {{"type", "input_json_delta"}, {"partial_json", blocks[i]["input"].dump()}}}});
        send("content_block_stop", {{"type", "content_block_stop"}, {"index", i + 1}});
      }
      reason = "tool_use";
      seq = nullptr;
    }
    send("message_delta", {{"type", "message_delta"}, {"delta", {{"stop_reason", reason}, {"stop_sequence", seq}}},
                           {"usage", usage_of(r)}});
    send("message_stop", {{"type", "message_stop"}});
    sse.end();
    return false;
  }
};

}  // namespace messages_api

void HttpServer::messages(const httplib::Request& req, httplib::Response& res) {
  using namespace messages_api;
  require_ready();
  const json body = parse_body(req);  // checked first: a body that is not JSON gets its 400 here
  std::optional<ToolRequest> tools = messages_tools(ordered_body(req, body));
  MessagesRequest m = parse_messages(body, *tok_, opt_.chat_template, limits(), tools);
  if (tools && tools->choice != ToolRequest::Choice::None) m.g.params.decode.grammar = grammars_->get(tools_grammar(*tools), "tools");
  std::vector<Choice> choices = submit(m.g, res);
  choices[0].started = m.prefill;  // a continuation keeps its leading space (chat_delta drops a reply's)
  const std::string id = random_id("msg_");
  if (!m.g.stream) {
    Choice& c = choices[0];
    while (!c.finished)
      for (TokenOut& t : take(c, kPoll)) c.text += chat_delta(c, t.text);
    throw_if_failed(c.job->result());
    auto [reason, seq] = stop_of(c.job->result(), m.stop_sequences);
    json content = json::array();
    if (m.g.tools) {  // the reply's calls come out of its text as tool_use blocks
      const ToolReply tr = split_tool_calls(c.text);
      if (!tr.content.empty() || tr.calls.empty()) content.push_back({{"type", "text"}, {"text", tr.content}});
      for (json& b : tool_use_blocks(tr.calls)) content.push_back(std::move(b));
      if (!tr.calls.empty()) {
        reason = "tool_use";
        seq = nullptr;
      }
    } else {
      content.push_back({{"type", "text"}, {"text", c.text}});
    }
    send_json(res, 200, message(id, opt_.model_id, std::move(content), reason, seq, usage_of(c.job->result())));
    return;
  }
  auto stream = std::make_shared<MessageStream>(MessageStream{std::move(m), std::move(choices[0]), id, opt_.model_id, {}});
  auto provider = [stream](size_t, httplib::DataSink& sink) -> bool {
    SseWriter sse(sink);
    return stream->pump(sse);
  };
  auto release = [stream](bool) {
    if (!stream->choice.job->done()) stream->choice.job->cancel();
  };
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", provider, release);
}

}  // namespace groak
