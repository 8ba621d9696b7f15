#include "server/openai_reply.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "server/openai.h"

namespace groak {

using nlohmann::json;

std::vector<TokenOut> take(Choice& c, std::chrono::milliseconds timeout) {
  std::vector<TokenOut> got;
  c.finished = c.job->wait(got, timeout);
  std::vector<TokenOut> generated;
  for (TokenOut& t : got) {
    if (t.prompt)
      c.prompt_tokens.push_back(std::move(t));
    else
      generated.push_back(std::move(t));
  }
  return generated;
}

void throw_if_failed(const JobResult& r) {
  if (r.finish == FinishReason::Cancelled) throw ApiError(503, "the server is shutting down", "", "server_error", "shutting_down");
  if (r.finish != FinishReason::Error) return;
  if (r.status == 503) throw ApiError(503, r.error, "", "server_error", "unavailable");
  throw ApiError(r.status, "generation failed: " + r.error, "", "server_error");
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

std::string chat_delta(Choice& c, std::string text) {
  if (!c.started) {
    const size_t at = text.find_first_not_of(' ');
    if (at == std::string::npos) return "";
    text.erase(0, at);
    c.started = true;
  }
  return text;
}

json ReplyShape::choice(int index, Part part, const std::optional<std::string>& text, json logprobs, const char* finish,
                        bool role) const {
  json finish_reason = finish ? json(finish) : json(nullptr);
  if (!chat_)
    return {{"text", text.value_or("")}, {"index", index}, {"logprobs", std::move(logprobs)}, {"finish_reason", finish_reason}};
  json body = json::object();
  if (part == Part::Whole || role) body["role"] = "assistant";
  if (text || role) body["content"] = text.value_or("");
  return {{"index", index}, {part == Part::Whole ? "message" : "delta", body}, {"logprobs", std::move(logprobs)},
          {"finish_reason", finish_reason}};
}

json ReplyShape::reply(json choices, Part part) const {
  const char* object = chat_ ? (part == Part::Whole ? "chat.completion" : "chat.completion.chunk") : "text_completion";
  return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"choices", std::move(choices)}};
}

json ReplyShape::logprobs(const std::vector<TokenOut>& toks, size_t offset) const {
  if (chat_) {  // {"content": [{"token", "logprob", "bytes", "top_logprobs"}]}
    auto entry = [&](int32_t id, float lp) {
      const std::string s = token_text(tok_, id);
      json bytes = json::array();
      for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
      return json{{"token", s}, {"logprob", lp}, {"bytes", bytes}};
    };
    json content = json::array();
    for (const TokenOut& t : toks) {
      json e = entry(t.id, t.logprob);
      json top = json::array();
      for (const TokenLogprob& c : t.top) top.push_back(entry(c.id, c.logprob));
      e["top_logprobs"] = top;
      content.push_back(e);
    }
    return {{"content", content}};
  }
  // The legacy object: tokens, token_logprobs, top_logprobs, text_offset.
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TokenOut& t : toks) {
    const std::string s = token_text(tok_, t.id);
    tokens.push_back(s);
    lps.push_back(t.has_logprob ? json(t.logprob) : json(nullptr));
    if (!t.has_logprob) {
      tops.push_back(nullptr);
    } else {
      json top = json::object();
      for (const TokenLogprob& c : t.top) {
        const std::string k = token_text(tok_, c.id);
        if (!top.contains(k)) top[k] = c.logprob;
      }
      tops.push_back(top);
    }
    offs.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json ReplyShape::echo_logprobs(const std::vector<TokenOut>& prompt, const std::string& text,
                               const std::vector<TokenOut>& generated) const {
  json lp = logprobs(prompt, 0);
  // SentencePiece's decode drops the dummy-prefix space its first piece starts with: then the pieces
  // are one character longer than the text, and every offset after the first moves back by one.
  std::string pieces;
  for (const TokenOut& t : prompt) pieces += token_text(tok_, t.id);
  const bool dummy = !pieces.empty() && pieces[0] == ' ' && pieces.size() == text.size() + 1;
  for (json& o : lp["text_offset"]) {
    const size_t at = o.get<size_t>();
    o = std::min(dummy && at > 0 ? at - 1 : at, text.size());
  }
  const json more = logprobs(generated, text.size());
  for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
    for (const json& v : more[k]) lp[k].push_back(v);
  return lp;
}

json timings(const std::vector<Choice>& choices) {
  int64_t prompt_n = 0, predicted_n = 0;
  double prompt_s = 0, decode_s = 0;
  for (const Choice& c : choices) {
    const JobResult& r = c.job->result();
    prompt_n += r.prompt_tokens - r.cached_tokens;
    predicted_n += r.completion_tokens;
    prompt_s = std::max(prompt_s, r.prompt_seconds);
    decode_s = std::max(decode_s, r.decode_seconds);
  }
  // The first token comes from the prompt pass; the decode rate counts the ones after it.
  const double per_second = decode_s > 0 && predicted_n > static_cast<int64_t>(choices.size())
                                ? static_cast<double>(predicted_n - static_cast<int64_t>(choices.size())) / decode_s
                                : 0.0;
  return {{"prompt_n", prompt_n},       {"prompt_ms", prompt_s * 1e3},     {"predicted_n", predicted_n},
          {"predicted_ms", decode_s * 1e3}, {"predicted_per_second", per_second}};
}

json usage(const std::vector<Choice>& choices, size_t n_prompts) {
  int64_t prompt = 0, cached = 0, completion = 0;
  std::vector<bool> seen(n_prompts, false);
  for (const Choice& c : choices) {
    const JobResult& r = c.job->result();
    completion += r.completion_tokens;
    if (!seen[c.prompt]) {  // a prompt counts once however many choices it has
      seen[c.prompt] = true;
      prompt += r.prompt_tokens;
      cached += r.cached_tokens;
    }
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

}  // namespace groak
