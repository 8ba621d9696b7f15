// The OpenAI request shapes groak serves (/v1/completions, /v1/chat/completions): parsing and checking
// every field a request may carry, with an error that names the field, what it got and what is allowed.
// Unknown fields are ignored (clients send many); fields groak knows but cannot honour are refused
// rather than silently dropped.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "server/scheduler.h"
#include "server/tools.h"
#include "tokenizer/tokenizer.h"

namespace groak {

// An HTTP error answered as {"error": {"message", "type", "code", "param"}}.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = {}, std::string type = "invalid_request_error",
           std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string type, code, param;
};

// {"error": {...}} for a status and message (code defaults to the type of error).
nlohmann::json error_body(int status, const std::string& message, const std::string& type, const std::string& code,
                          const std::string& param);
const char* error_type_of(int status);  // "invalid_request_error", "authentication_error", …
// What a JSON value is, for messages: "a string", "an integer", "null", …
const char* type_name(const nlohmann::json& v);

// What one request asks for, checked.
struct GenerationRequest {
  bool chat = false;
  std::vector<std::vector<int32_t>> prompts;  // completions: one per prompt; chat: one
  std::vector<std::string> prompt_texts;      // the prompts as text (echo)
  JobParams params;                           // everything but the prompt
  int n = 1;                                  // choices per prompt
  bool stream = false, include_usage = false, echo = false;
  bool logprobs = false;                      // chat: logprobs; completions: logprobs given
  std::string model;                          // as asked (any name is served by the one model)
  std::optional<ToolRequest> tools;           // chat with tools: the reply's calls are split out of its text
};

struct RequestLimits {
  int64_t vocab = 0;        // ids in [0, vocab): min(model vocab, tokenizer vocab)
  int64_t context = 0;      // positions per slot
  int max_choices = 16;     // prompts × n at most
  bool max_tokens_room = false;  // no max_tokens: as many as the context leaves (llama-server's n_predict -1)
  bool allow_inspect = false;    // the `inspect` extension (serve --allow-inspect)
};

// Throws ApiError(400) naming the first bad field. The prompt is tokenized here (chat: through the
// template, whose stop strings join the request's; with `tools` (parse_tools) their list goes first, as a
// system message, and earlier assistant calls and tool results are read too).
GenerationRequest parse_generation_request(const nlohmann::json& body, bool chat, const Tokenizer& tok,
                                           const ChatTemplate& tmpl, const RequestLimits& limits,
                                           std::optional<ToolRequest> tools = std::nullopt);

}  // namespace groak
