// POST /v1/messages: Anthropic's Messages API over the same scheduler and chat template as the OpenAI
// endpoints. The request is checked here in Anthropic's terms (system, messages of text blocks,
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

struct MessagesRequest {
  GenerationRequest g;
  std::vector<std::string> stop_sequences;  // the client's own (the template's stops end a turn)
  bool prefill = false;  // the last message was the assistant's: the reply continues its text
};

MessagesRequest parse_messages(const json& body, const Tokenizer& tok, const ChatTemplate& tmpl, const RequestLimits& lim) {
  if (!body.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, got ") + type_name(body));
  for (const char* unsupported : {"tools", "tool_choice", "thinking"})
    if (body.contains(unsupported) && !body[unsupported].is_null())
      bad(unsupported, "is not supported by groak's Messages API yet; send text messages only");
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
    chat["messages"].push_back({{"role", role}, {"content", text_of(m["content"], at + ".content")}});
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
  r.g = parse_generation_request(chat, /*chat=*/true, tok, tmpl, lim);
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

// A stream's state, shared with the content provider httplib calls until it is done.
struct MessageStream {
  MessagesRequest m;
  Choice choice;
  std::string id, model;
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
    const auto [reason, seq] = stop_of(r, m.stop_sequences);
    send("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}});
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
  MessagesRequest m = parse_messages(parse_body(req), *tok_, opt_.chat_template, limits());
  std::vector<Choice> choices = submit(m.g, res);
  choices[0].started = m.prefill;  // a continuation keeps its leading space (chat_delta drops a reply's)
  const std::string id = random_id("msg_");
  if (!m.g.stream) {
    Choice& c = choices[0];
    while (!c.finished)
      for (TokenOut& t : take(c, kPoll)) c.text += chat_delta(c, t.text);
    throw_if_failed(c.job->result());
    const auto [reason, seq] = stop_of(c.job->result(), m.stop_sequences);
    send_json(res, 200, message(id, opt_.model_id, json::array({{{"type", "text"}, {"text", c.text}}}), reason, seq,
                                usage_of(c.job->result())));
    return;
  }
  auto stream = std::make_shared<MessageStream>(MessageStream{std::move(m), std::move(choices[0]), id, opt_.model_id});
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
