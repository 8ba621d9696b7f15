#include "server/tools.h"

#include <set>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "server/openai.h"

namespace groak {

using ojson = nlohmann::ordered_json;

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what) { throw ApiError(400, field + " " + what, field); }

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}


// Text that never contains `tag` (so the first occurrence of the tag in a reply opens its calls): the
// states of a matcher of the tag's prefix, each a rule. The tag's first character appears nowhere else in
// it, so after a mismatch only that character can restart a match (no other border, as KMP would find).
std::string text_without(const std::string& tag) {
  std::string out;
  const size_t k = tag.size();
  auto esc = [](char c) { return c == '\n' ? std::string("\\n") : c == '\\' || c == ']' || c == '[' || c == '^' || c == '-' ? std::string("\\") + c : std::string(1, c); };
  for (size_t i = 0; i < k; ++i) {
    // In state i (i characters of the tag matched): end here, take tag[i] (unless that completes the
    // tag), restart on tag[0], or fall back to state 0 on anything else.
    std::string body = "\"\"";
    if (i + 1 < k) body += " | " + gbnf_literal(std::string(1, tag[i])) + " text-" + std::to_string(i + 1);
    if (i > 0 && tag[i] != tag[0]) body += " | " + gbnf_literal(std::string(1, tag[0])) + " text-1";
    std::string others = "[^" + esc(tag[i]) + (i > 0 && tag[i] != tag[0] ? esc(tag[0]) : "") + "]";
    body += " | " + others + " text-0";
    out += "text-" + std::to_string(i) + " ::= " + body + "\n";
  }
  return out;
}

// The reply's grammar: calls of the tools the choice allows (their arguments' rules are in `rules`), alone
// or after call-free text (auto).
std::string calls_grammar(const ToolRequest& t, const std::vector<std::string>& names, const SchemaRules& rules) {
  std::string alts;
  for (size_t i = 0; i < names.size(); ++i) {
    if (t.choice == ToolRequest::Choice::Named && names[i] != t.named) continue;
    alts += (alts.empty() ? "" : " | ") + gbnf_literal(std::string(kToolCallOpen) + "{\"name\": \"" + names[i] + "\", \"arguments\": ") +
            " args-" + std::to_string(i) + " " + gbnf_literal(std::string("}") + kToolCallClose);
  }
  std::string g = "call ::= " + alts + "\n";
  const bool several = t.parallel && t.choice != ToolRequest::Choice::Named;
  g += "calls ::= call" + (several ? std::string(" (\"\\n\" call){0,") + std::to_string(kMaxToolCalls - 1) + "}" : "") + "\n";
  if (t.choice == ToolRequest::Choice::Auto) {
    g += "root ::= text-0 calls?\n" + text_without("<tool_call>");
  } else {
    g += "root ::= \" \"? calls\n";  // the reply may start with the space after "Assistant:"
  }
  return g + rules.text();
}

}  // namespace

std::optional<ToolRequest> parse_tools(const ojson& body) {
  auto tools_it = body.find("tools");
  const bool has_tools = tools_it != body.end() && !tools_it->is_null();
  auto choice_it = body.find("tool_choice");
  const bool has_choice = choice_it != body.end() && !choice_it->is_null();
  if (!has_tools) {
    if (has_choice && *choice_it != "none") bad("tool_choice", "needs tools: the request lists none");
    return std::nullopt;
  }
  if (!tools_it->is_array()) bad("tools", "must be an array of {\"type\": \"function\", \"function\": {...}}");
  if (tools_it->empty()) return std::nullopt;  // as if absent
  ToolRequest t;
  std::set<std::string> seen;
  std::vector<std::string> names;  // [tools]
  SchemaRules rules;               // each tool's arguments as rule args-i, checked as it is added
  for (const char* own : {"root", "call", "calls"}) rules.reserve(own);  // calls_grammar's rules: a $defs entry
  for (size_t i = 0; i < std::string("<tool_call>").size(); ++i) rules.reserve("text-" + std::to_string(i));  // may share a name
  ojson listed = ojson::array();
  for (size_t i = 0; i < tools_it->size(); ++i) {
    const ojson& tool = (*tools_it)[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!tool.is_object() || !tool.contains("type") || tool["type"] != "function")
      bad(where + ".type", "must be \"function\" (the only kind of tool)");
    if (!tool.contains("function") || !tool["function"].is_object()) bad(where + ".function", "is required: {\"name\", \"parameters\"}");
    const ojson& f = tool["function"];
    if (!f.contains("name") || !f["name"].is_string() || !valid_name(f["name"].get<std::string>()))
      bad(where + ".function.name", "must be 1 to 64 letters, digits, '_' or '-'");
    const std::string name = f["name"];
    if (!seen.insert(name).second) bad(where + ".function.name", "'" + name + "' names two tools");
    ojson params = f.contains("parameters") && !f["parameters"].is_null() ? f["parameters"] : ojson{{"type", "object"}, {"properties", ojson::object()}};
    if (!params.is_object()) bad(where + ".function.parameters", "must be a JSON Schema object");
    if (f.contains("description") && !f["description"].is_null() && !f["description"].is_string())
      bad(where + ".function.description", "must be a string");
    try {
      rules.add(params, "args-" + std::to_string(i));
    } catch (const GrammarError& e) {
      bad(where + ".function.parameters", std::string("cannot be enforced: ") + e.what());
    }
    names.push_back(name);
    ojson entry = {{"name", name}};
    if (f.contains("description") && f["description"].is_string()) entry["description"] = f["description"];
    entry["parameters"] = params;
    listed.push_back(entry);
  }
  if (has_choice) {
    const ojson& c = *choice_it;
    if (c.is_string()) {
      const std::string s = c;
      if (s == "none") t.choice = ToolRequest::Choice::None;
      else if (s == "auto") t.choice = ToolRequest::Choice::Auto;
      else if (s == "required") t.choice = ToolRequest::Choice::Required;
      else bad("tool_choice", "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}, not '" + s + "'");
    } else if (c.is_object() && c.contains("type") && c["type"] == "function" && c.contains("function") && c["function"].is_object() &&
               c["function"].contains("name") && c["function"]["name"].is_string()) {
      t.choice = ToolRequest::Choice::Named;
      t.named = c["function"]["name"];
      if (!seen.count(t.named)) bad("tool_choice", "names '" + t.named + "', which is not one of the tools");
    } else {
      bad("tool_choice", "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
    }
  }
  if (auto p = body.find("parallel_tool_calls"); p != body.end() && !p->is_null()) {
    if (!p->is_boolean()) bad("parallel_tool_calls", "must be true or false");
    t.parallel = p->get<bool>();
  }
  if (t.choice != ToolRequest::Choice::None) {
    t.preamble = std::string("You can call functions. To call one, write exactly\n") + kToolCallOpen +
                 "{\"name\": NAME, \"arguments\": ARGUMENTS}" + kToolCallClose +
                 "\nwhere ARGUMENTS is a JSON object that the function's parameters schema accepts. The result "
                 "comes back in a Tool message. The functions:\n";
    for (const ojson& e : listed) t.preamble += e.dump() + "\n";
    t.gbnf = calls_grammar(t, names, rules);
  }
  return t;
}

std::string tools_grammar(const ToolRequest& t) { return t.gbnf; }

std::string tool_call_text(const std::string& name, const nlohmann::json& arguments) {
  return std::string(kToolCallOpen) + "{\"name\": \"" + name + "\", \"arguments\": " + arguments.dump() + "}" + kToolCallClose;
}

ToolReply split_tool_calls(const std::string& text) {
  ToolReply r;
  const size_t at = text.find("<tool_call>");
  if (at == std::string::npos) {
    r.content = text;
    return r;
  }
  r.content = text.substr(0, at);
  size_t pos = at;
  while ((pos = text.find("<tool_call>", pos)) != std::string::npos) {
    const size_t begin = pos + std::string("<tool_call>").size();
    const size_t end = text.find("</tool_call>", begin);
    if (end == std::string::npos) break;
    const nlohmann::json call = nlohmann::json::parse(text.substr(begin, end - begin), nullptr, false);
    if (call.is_object() && call.contains("name") && call["name"].is_string() && call.contains("arguments"))
      r.calls.push_back({{"name", call["name"]}, {"arguments", call["arguments"].dump()}});
    pos = end;
  }
  if (r.calls.empty()) r.content = text;  // nothing parsed: it was text after all
  while (!r.content.empty() && (r.content.back() == ' ' || r.content.back() == '\n')) r.content.pop_back();
  return r;
}

const std::vector<std::string> ToolCallStream::kTag = {"<tool_call>"};

std::string ToolCallStream::push(const std::string& text) {
  all_ += text;
  if (calls_) return "";
  std::string out = filter_.push(text, &calls_);
  released_ += out.size();
  return out;
}

std::string ToolCallStream::finish() { return calls_ ? std::string() : filter_.flush(); }

ToolCallStream::End ToolCallStream::end() {
  ToolReply r = split_tool_calls(all_);
  if (!r.calls.empty()) return {"", std::move(r.calls)};  // the text before the tag went out already
  finish();
  return {all_.substr(released_), {}};
}

}  // namespace groak
