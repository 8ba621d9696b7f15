// Turning a chat (system/user/assistant messages) into the text a base model continues. Grok-1 is a base
// model without an official chat format, so groak uses a plain one (README, "Chat template"):
//
//   System: {system message}\n\nUser: {user message}\n\nAssistant: {reply}\n\nUser: …\n\nAssistant:
//
// ("Tool: {result}\n\n" for a tool's result) and stops the reply where the model starts another turn
// ("\nUser:", "\nAssistant:", "\nSystem:", "\nTool:").
// `--chat-template FILE` replaces it with a JSON file of the same fields (ChatTemplate::parse).
#pragma once
#include <string>
#include <vector>

namespace groak {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" or "tool" (a tool's result)
  std::string content;
};

struct ChatTemplate {
  // One message of each role renders as the role's text with {content} replaced by the message.
  std::string system = "System: {content}\n\n";
  std::string user = "User: {content}\n\n";
  std::string assistant = "Assistant: {content}\n\n";
  std::string tool = "Tool: {content}\n\n";
  // Appended after the last message: where the model's reply starts.
  std::string generation = "Assistant:";
  // The reply ends before the first of these (besides EOS, max_tokens and the request's own stops).
  std::vector<std::string> stop = {"\nUser:", "\nAssistant:", "\nSystem:", "\nTool:"};
  // Prepend the BOS token (the official runner does not).
  bool bos = false;

  // The whole prompt: every message, then `generation`. Throws groak::Error for an unknown role.
  std::string render(const std::vector<ChatMessage>& messages) const;
  // The text before and after {content} in a role's template. Throws groak::Error for an unknown role.
  std::string prefix(const std::string& role) const;
  std::string suffix(const std::string& role) const;

  // A template from JSON text: an object with any of the fields above ("system", "user", "assistant", "tool":
  // strings holding {content} once; "generation": string; "stop": array of non-empty strings; "bos":
  // bool). Missing fields keep the default; unknown fields are refused (a typo should not pass
  // silently). `origin` names the source in errors. Throws groak::Error.
  static ChatTemplate parse(const std::string& json_text, const std::string& origin);
  static ChatTemplate load(const std::string& path);
};

}  // namespace groak
