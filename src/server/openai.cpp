#include "server/openai.h"

#include <cmath>
#include <random>

#include "util/error.h"

namespace groak {

using nlohmann::json;

namespace {

constexpr int kMaxStops = 16;
constexpr size_t kMaxStopBytes = 256;
constexpr int kMaxTopLogprobs = 20;
constexpr int64_t kDefaultCompletionTokens = 16;  // OpenAI's default max_tokens for /v1/completions

[[noreturn]] void bad(const std::string& field, const std::string& what) { throw ApiError(400, field + " " + what, field); }

// A field, or null when absent or null (clients send null for "default").
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& body, const char* key, bool fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(key, std::string("must be true or false, got ") + type_name(*v));
  return v->get<bool>();
}

double get_number(const json& body, const char* key, double fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_number()) bad(key, std::string("must be a number, got ") + type_name(*v));
  const double x = v->get<double>();
  if (!std::isfinite(x)) bad(key, "must be finite");
  return x;
}

// An integer (a whole float such as 16.0 is accepted, as JSON does not tell them apart).
int64_t get_int(const json& body, const char* key, int64_t fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) bad(key, "is too large");
    return static_cast<int64_t>(u);
  }
  if (v->is_number_float()) {
    const double x = v->get<double>();
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9e15) return static_cast<int64_t>(x);
  }
  bad(key, std::string("must be an integer, got ") + type_name(*v));
}

// A prompt of token ids: each in [0, vocab).
std::vector<int32_t> token_ids(const json& arr, const std::string& where, int64_t vocab) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& v = arr[i];
    if (!v.is_number_integer() && !v.is_number_unsigned())
      bad(where, "must hold token ids (integers); element " + std::to_string(i) + " is " + type_name(v));
    const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                           ? INT64_MAX
                           : v.get<int64_t>();
    if (id < 0 || id >= vocab)
      bad(where, "token id " + std::to_string(id) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " +
                     std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

std::string message_content(const json& m, size_t index, bool may_be_empty = false) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  auto it = m.find("content");
  if ((it == m.end() || it->is_null()) && may_be_empty) return "";
  if (it == m.end() || it->is_null()) bad(where, "is required: the message's text (a string, or an array of text parts)");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {  // content parts: only text
    std::string text;
    for (const json& part : *it) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
        bad(where, "parts must be {\"type\": \"text\", \"text\": \"...\"} (groak reads text only)");
      text += part["text"].get<std::string>();
    }
    return text;
  }
  bad(where, std::string("must be a string or an array of text parts, got ") + type_name(*it));
}

}  // namespace

namespace {
const char* default_code(int status) {
  switch (status) {
    case 400: return "invalid_value";
    case 401: return "invalid_api_key";
    case 404: return "not_found";
    case 413: return "request_too_large";
    case 503: return "server_busy";
    default: return status >= 500 ? "internal_error" : "invalid_request";
  }
}
}  // namespace

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "something else";
  }
}

const char* error_type_of(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 503: return "server_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json error_body(int status, const std::string& message, const std::string& type, const std::string& code,
                const std::string& param) {
  json e = {{"message", message}, {"type", type.empty() ? error_type_of(status) : type}};
  e["code"] = code.empty() ? json(default_code(status)) : json(code);
  e["param"] = param.empty() ? json(nullptr) : json(param);
  return {{"error", e}};
}


namespace {

// An assistant message's tool_calls as the model writes them (server/tools.h).
std::string assistant_calls(const json& m, const std::string& where) {
  const json& calls = m["tool_calls"];
  if (!calls.is_array()) bad(where + ".tool_calls", "must be an array of {\"id\", \"type\": \"function\", \"function\"}");
  std::string text;
  for (size_t k = 0; k < calls.size(); ++k) {
    const std::string w = where + ".tool_calls[" + std::to_string(k) + "].function";
    const json& c = calls[k];
    if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) bad(w, "is required: {\"name\", \"arguments\"}");
    const json& f = c["function"];
    if (!f.contains("name") || !f["name"].is_string()) bad(w + ".name", "is required: a string");
    json args = json::object();
    if (f.contains("arguments") && f["arguments"].is_string()) {
      args = json::parse(f["arguments"].get<std::string>(), nullptr, false);
      if (args.is_discarded()) bad(w + ".arguments", "must be a JSON text (the arguments the call was made with)");
    } else if (f.contains("arguments") && !f["arguments"].is_null()) {
      bad(w + ".arguments", "must be a string of JSON");
    }
    text += (k ? "\n" : "") + tool_call_text(f["name"].get<std::string>(), args);
  }
  return text;
}

}  // namespace

GenerationRequest parse_generation_request(const json& body, bool chat, const Tokenizer& tok, const ChatTemplate& tmpl,
                                           const RequestLimits& limits, std::optional<ToolRequest> tools) {
  if (!body.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, got ") + type_name(body));
  GenerationRequest r;
  r.chat = chat;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", std::string("must be a string, got ") + type_name(*m));
    r.model = m->get<std::string>();
  }

  // ---- the prompt
  std::vector<std::string> stops;
  if (chat) {
    const json* msgs = field(body, "messages");
    if (!msgs) throw ApiError(400, "messages is required: an array of {\"role\", \"content\"}", "messages");
    if (!msgs->is_array()) bad("messages", std::string("must be an array, got ") + type_name(*msgs));
    if (msgs->empty()) bad("messages", "is empty; give at least one message");
    std::vector<ChatMessage> messages;
    for (size_t i = 0; i < msgs->size(); ++i) {
      const json& m = (*msgs)[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) bad(where, std::string("must be an object, got ") + type_name(m));
      auto role = m.find("role");
      if (role == m.end() || !role->is_string()) bad(where + ".role", "is required: \"system\", \"user\", \"assistant\" or \"tool\"");
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant" && rs != "tool")
        bad(where + ".role", "'" + rs + "' is not a role groak knows; use system, user, assistant or tool");
      const bool calls = rs == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
      std::string content = message_content(m, i, calls);
      if (calls) content += (content.empty() ? "" : "\n") + assistant_calls(m, where);
      messages.push_back({rs, std::move(content)});
    }
    if (tools && !tools->preamble.empty()) {  // the tools' list: the system message, or before it
      if (messages[0].role == "system")
        messages[0].content += "\n\n" + tools->preamble;
      else
        messages.insert(messages.begin(), {"system", tools->preamble});
    }
    r.tools = std::move(tools);
    const std::string text = tmpl.render(messages);
    std::vector<int32_t> ids;
    if (tmpl.bos) ids.push_back(tok.bos_id());
    for (int32_t id : tok.encode(text)) ids.push_back(id);
    r.prompts.push_back(std::move(ids));
    r.prompt_texts.push_back(text);
    stops = tmpl.stop;
  } else {
    if (field(body, "tools")) bad("tools", "is for /v1/chat/completions (tool calls need the chat template)");
    const json* p = field(body, "prompt");
    if (!p) throw ApiError(400, "prompt is required: a string, an array of strings, or token ids", "prompt");
    auto add_text = [&](const std::string& text) {
      std::vector<int32_t> ids = tok.encode(text);
      if (ids.empty()) ids.push_back(tok.bos_id());  // an empty prompt starts from BOS
      r.prompts.push_back(std::move(ids));
      r.prompt_texts.push_back(text);
    };
    auto add_ids = [&](const json& arr, const std::string& where) {
      std::vector<int32_t> ids = token_ids(arr, where, limits.vocab);
      if (ids.empty()) bad(where, "is an empty list of token ids");
      r.prompt_texts.push_back(tok.decode(ids));
      r.prompts.push_back(std::move(ids));
    };
    if (p->is_string()) {
      add_text(p->get<std::string>());
    } else if (p->is_array()) {
      if (p->empty()) bad("prompt", "is an empty array");
      if ((*p)[0].is_string()) {
        for (size_t i = 0; i < p->size(); ++i) {
          if (!(*p)[i].is_string()) bad("prompt", "mixes strings and other values (element " + std::to_string(i) + ")");
          add_text((*p)[i].get<std::string>());
        }
      } else if ((*p)[0].is_array()) {
        for (size_t i = 0; i < p->size(); ++i) {
          if (!(*p)[i].is_array()) bad("prompt", "mixes token lists and other values (element " + std::to_string(i) + ")");
          add_ids((*p)[i], "prompt[" + std::to_string(i) + "]");
        }
      } else {
        add_ids(*p, "prompt");
      }
    } else {
      bad("prompt", std::string("must be a string, an array of strings or token ids, got ") + type_name(*p));
    }
  }

  // ---- choices and streaming
  const int64_t n = get_int(body, "n", 1);
  if (n < 1) bad("n", "must be >= 1, got " + std::to_string(n));
  if (n * static_cast<int64_t>(r.prompts.size()) > limits.max_choices)
    bad("n", "asks for " + std::to_string(n * static_cast<int64_t>(r.prompts.size())) +
                 " sequences (prompts x n); this server runs at most " + std::to_string(limits.max_choices) +
                 " per request (--parallel + --queue)");
  r.n = static_cast<int>(n);
  r.stream = get_bool(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", std::string("must be an object, got ") + type_name(*so));
    r.include_usage = get_bool(*so, "include_usage", false);
  }
  if (!chat) r.echo = get_bool(body, "echo", false);

  // ---- sampling (groak's defaults, which are llama.cpp's, where the request says nothing)
  SamplingParams& s = r.params.decode.sampling;
  const double temperature = get_number(body, "temperature", s.temperature);
  if (temperature < 0) bad("temperature", "must be >= 0 (0 = greedy), got " + std::to_string(temperature));
  s.temperature = static_cast<float>(temperature);
  const double top_p = get_number(body, "top_p", s.top_p);
  if (!(top_p > 0 && top_p <= 1)) bad("top_p", "must be in (0, 1] (1 = off), got " + std::to_string(top_p));
  s.top_p = static_cast<float>(top_p);
  const int64_t top_k = get_int(body, "top_k", s.top_k);
  if (top_k < 0 || top_k > INT32_MAX) bad("top_k", "must be >= 0 (0 = off), got " + std::to_string(top_k));
  s.top_k = static_cast<int>(top_k);
  const double min_p = get_number(body, "min_p", s.min_p);
  if (!(min_p >= 0 && min_p <= 1)) bad("min_p", "must be in [0, 1] (0 = off), got " + std::to_string(min_p));
  s.min_p = static_cast<float>(min_p);
  const double rep = get_number(body, "repetition_penalty", get_number(body, "repeat_penalty", s.repeat_penalty));
  if (!(rep > 0)) bad("repetition_penalty", "must be > 0 (1 = off), got " + std::to_string(rep));
  s.repeat_penalty = static_cast<float>(rep);
  const int64_t last_n = get_int(body, "repeat_last_n", s.repeat_last_n);
  if (last_n < -1 || last_n > INT32_MAX) bad("repeat_last_n", "must be >= -1 (-1 = all), got " + std::to_string(last_n));
  s.repeat_last_n = static_cast<int>(last_n);
  if (field(body, "seed"))
    s.seed = static_cast<uint64_t>(get_int(body, "seed", 0));
  else
    s.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  for (const char* unsupported : {"presence_penalty", "frequency_penalty"})
    if (get_number(body, unsupported, 0) != 0)
      bad(unsupported, "is not supported by groak; use repetition_penalty (1 = off)");
  if (const json* lb = field(body, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    bad("logit_bias", "is not supported by groak");
  r.params.decode.ignore_eos = get_bool(body, "ignore_eos", false);

  // ---- stop strings
  if (const json* st = field(body, "stop")) {
    auto add = [&](const json& v, const std::string& where) {
      if (!v.is_string()) bad(where, std::string("must be a string, got ") + type_name(v));
      const std::string text = v.get<std::string>();
      if (text.empty()) bad(where, "is an empty string");
      if (text.size() > kMaxStopBytes) bad(where, "is longer than " + std::to_string(kMaxStopBytes) + " bytes");
      stops.push_back(text);
    };
    if (st->is_array()) {
      if (st->size() > static_cast<size_t>(kMaxStops)) bad("stop", "holds more than " + std::to_string(kMaxStops) + " strings");
      for (size_t i = 0; i < st->size(); ++i) add((*st)[i], "stop[" + std::to_string(i) + "]");
    } else {
      add(*st, "stop");
    }
  }
  r.params.decode.stop = stops;

  // ---- logprobs
  if (chat) {
    r.logprobs = get_bool(body, "logprobs", false);
    const int64_t top = get_int(body, "top_logprobs", 0);
    if (top < 0 || top > kMaxTopLogprobs)
      bad("top_logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " + std::to_string(top));
    if (field(body, "top_logprobs") && !r.logprobs) bad("top_logprobs", "needs \"logprobs\": true");
    r.params.top_logprobs = r.logprobs ? static_cast<int>(top) : -1;
  } else if (const json* lp = field(body, "logprobs")) {
    const int64_t top = get_int(body, "logprobs", 0);
    if (top < 0 || top > kMaxTopLogprobs)
      bad("logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "] (the most likely tokens to list), got " +
                          std::to_string(top));
    (void)lp;
    r.logprobs = true;
    r.params.top_logprobs = static_cast<int>(top);
    r.params.prompt_logprobs = r.echo;
  }

  // ---- inspect (groak's extension): what happens inside the model, per generated token
  r.params.inspect = get_bool(body, "inspect", false);
  if (r.params.inspect && !limits.allow_inspect)
    bad("inspect", "is off on this server: it shows what happens inside the model (experts, logit lens) and costs "
                   "time; the server must be started with --allow-inspect");

  // ---- lengths
  size_t longest = 0;
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const int64_t len = static_cast<int64_t>(r.prompts[i].size());
    longest = std::max(longest, r.prompts[i].size());
    if (len >= limits.context)
      throw ApiError(400,
                     "the prompt" + (r.prompts.size() > 1 ? " " + std::to_string(i) : std::string()) + " has " +
                         std::to_string(len) + " tokens but the context holds " + std::to_string(limits.context) +
                         " per request (prompt + completion); shorten it (or restart the server with a larger --ctx-size)",
                     chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded");
  }
  const char* max_field = field(body, "max_completion_tokens") && chat ? "max_completion_tokens" : "max_tokens";
  const int64_t room = limits.context - static_cast<int64_t>(longest);
  const int64_t max_tokens = get_int(body, max_field, chat || limits.max_tokens_room ? room : kDefaultCompletionTokens);
  if (max_tokens < 1) bad(max_field, "must be >= 1, got " + std::to_string(max_tokens));
  if (max_tokens > room)
    throw ApiError(400,
                   "this server's context is " + std::to_string(limits.context) + " tokens per request, but " +
                       std::to_string(longest + static_cast<size_t>(max_tokens)) + " were asked for (" +
                       std::to_string(longest) + " in the prompt, " + std::to_string(max_tokens) +
                       " in the completion); lower " + max_field + " to at most " + std::to_string(room),
                   max_field, "invalid_request_error", "context_length_exceeded");
  r.params.decode.max_tokens = max_tokens;
  return r;
}

}  // namespace groak
