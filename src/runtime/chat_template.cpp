#include "runtime/chat_template.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace groak {

namespace {

constexpr const char* kContent = "{content}";

const std::string& role_text(const ChatTemplate& t, const std::string& role) {
  if (role == "system") return t.system;
  if (role == "user") return t.user;
  if (role == "assistant") return t.assistant;
  if (role == "tool") return t.tool;
  throw Error("unknown chat role '" + role + "'; use system, user, assistant or tool");
}

}  // namespace

std::string ChatTemplate::prefix(const std::string& role) const {
  const std::string& t = role_text(*this, role);
  return t.substr(0, t.find(kContent));
}

std::string ChatTemplate::suffix(const std::string& role) const {
  const std::string& t = role_text(*this, role);
  const size_t at = t.find(kContent);
  return at == std::string::npos ? std::string() : t.substr(at + std::string(kContent).size());
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages) const {
  std::string out;
  for (const ChatMessage& m : messages) out += prefix(m.role) + m.content + suffix(m.role);
  return out + generation;
}

ChatTemplate ChatTemplate::parse(const std::string& json_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + "); a chat template is a JSON object, see README");
  }
  if (!j.is_object()) throw Error(origin + ": a chat template is a JSON object with system/user/assistant/generation/stop/bos");
  ChatTemplate t;
  for (const auto& [key, value] : j.items()) {
    const std::string where = origin + ": field \"" + key + "\"";
    if (key == "system" || key == "user" || key == "assistant" || key == "tool") {
      if (!value.is_string()) throw Error(where + " must be a string");
      const std::string s = value.get<std::string>();
      const size_t at = s.find(kContent);
      if (at == std::string::npos || s.find(kContent, at + 1) != std::string::npos)
        throw Error(where + " must contain {content} exactly once (where the message goes)");
      (key == "system" ? t.system : key == "user" ? t.user : key == "tool" ? t.tool : t.assistant) = s;
    } else if (key == "generation") {
      if (!value.is_string()) throw Error(where + " must be a string");
      t.generation = value.get<std::string>();
    } else if (key == "stop") {
      if (!value.is_array()) throw Error(where + " must be an array of strings");
      t.stop.clear();
      for (const auto& s : value) {
        if (!s.is_string() || s.get<std::string>().empty()) throw Error(where + " must hold non-empty strings");
        t.stop.push_back(s.get<std::string>());
      }
    } else if (key == "bos") {
      if (!value.is_boolean()) throw Error(where + " must be true or false");
      t.bos = value.get<bool>();
    } else {
      throw Error(where + " is unknown; the fields are system, user, assistant, tool, generation, stop, bos");
    }
  }
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the chat template");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

}  // namespace groak
