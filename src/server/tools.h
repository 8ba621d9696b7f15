// Tool calls on /v1/chat/completions (OpenAI's `tools`, `tool_choice`, `parallel_tool_calls`, assistant
// `tool_calls` and `role: tool` messages). Grok-1 has no tool format of its own, so groak gives it one: the
// tools are listed in a system message, and a call is written as
//
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
//
// The reply is constrained by a grammar built from the tools' parameter schemas (grammar/json_schema.h),
// so a call always names a listed tool and its arguments always validate: `required` and a named choice
// make the reply calls only; `auto` allows text first (never containing the opening tag) and calls after.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/stop_filter.h"

namespace groak {

inline constexpr const char* kToolCallOpen = "<tool_call>\n";
inline constexpr const char* kToolCallClose = "\n</tool_call>";

struct ToolRequest {
  enum class Choice { None, Auto, Required, Named };
  Choice choice = Choice::Auto;
  std::string named;                       // Choice::Named: the tool
  bool parallel = true;                    // several calls in one reply (at most kMaxToolCalls)
  std::string preamble;                    // the system text listing the tools ("" for Choice::None)
  std::string gbnf;                        // the reply's grammar ("" for Choice::None)
};
inline constexpr int kMaxToolCalls = 8;

// Reads tools, tool_choice and parallel_tool_calls; nullopt when the request has no tools. Throws
// ApiError(400) naming the field (tools[1].function.name, tool_choice, …), including a parameter schema
// groak cannot enforce.
std::optional<ToolRequest> parse_tools(const nlohmann::ordered_json& body);

// The GBNF the reply must follow ("" for Choice::None), built by parse_tools.
std::string tools_grammar(const ToolRequest& t);

// A call as the model writes it (an earlier assistant turn's tool_calls go into the prompt so).
std::string tool_call_text(const std::string& name, const nlohmann::json& arguments);

// A reply split into its text and its calls ({"name", "arguments"} with arguments a JSON text, as OpenAI
// sends them). Text after the first opening tag is taken as calls; a call that does not parse (a reply
// cut by max_tokens) stays in the text.
struct ToolReply {
  std::string content;
  std::vector<nlohmann::json> calls;
};
ToolReply split_tool_calls(const std::string& text);

// Streaming: releases text as it comes, except what may be the start of a call (held until it is not, by
// the stop-string filter with the opening tag as its one stop); everything from the tag on is kept for
// split_tool_calls at the end.
class ToolCallStream {
 public:
  std::string push(const std::string& text);  // text to send now
  std::string finish();                       // the rest of the text (when no call began)
  bool in_calls() const { return calls_; }
  const std::string& all() const { return all_; }  // the whole reply so far
  // At the end of the reply: the text still to send (a held tail, or calls that do not parse — a reply cut
  // by max_tokens —, which are text after all) and the calls.
  struct End {
    std::string rest;
    std::vector<nlohmann::json> calls;
  };
  End end();

 private:
  static const std::vector<std::string> kTag;  // {"<tool_call>"}
  StopFilter filter_{kTag};
  std::string all_;
  size_t released_ = 0;  // bytes of all_ push() has returned
  bool calls_ = false;
};

}  // namespace groak
