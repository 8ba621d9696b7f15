#include "server/constraint.h"

#include "grammar/json_schema.h"
#include "server/openai.h"

namespace groak {

using ojson = nlohmann::ordered_json;

namespace {

const ojson* present(const ojson& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

// `where` names the schema in the message; `param` is the request's top-level field.
std::string from_schema(const ojson& schema, const std::string& where, const std::string& param) {
  try {
    return json_schema_to_gbnf(schema);
  } catch (const GrammarError& e) {
    throw ApiError(400, where + ": " + e.what(), param);
  }
}

}  // namespace

RequestedGrammar requested_grammar(const ojson& body) {
  std::string gbnf, from;
  auto take = [&](std::string text, const std::string& field) {
    if (!from.empty())
      throw ApiError(400, field + " and " + from + " both constrain the output; send one of them", field);
    gbnf = std::move(text);
    from = field;
  };
  if (const ojson* rf = present(body, "response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      throw ApiError(400, "response_format must be an object with a type: text, json_object or json_schema", "response_format");
    const std::string type = (*rf)["type"];
    if (type == "json_object") {
      take(json_object_gbnf(), "response_format");
    } else if (type == "json_schema") {
      const ojson* js = present(*rf, "json_schema");
      if (!js || !js->is_object())
        throw ApiError(400, "response_format.json_schema must be an object {\"name\", \"schema\", \"strict\"}", "response_format");
      const ojson* schema = present(*js, "schema");
      if (!schema) throw ApiError(400, "response_format.json_schema.schema is required: the JSON Schema of the reply", "response_format");
      take(from_schema(*schema, "response_format.json_schema.schema", "response_format"), "response_format");
    } else if (type != "text") {
      throw ApiError(400, "response_format.type must be text, json_object or json_schema, not '" + type + "'", "response_format");
    }
  }
  if (const ojson* g = present(body, "grammar")) {
    if (!g->is_string()) throw ApiError(400, "grammar must be a string of GBNF rules (root ::= ...)", "grammar");
    if (!g->get<std::string>().empty()) take(g->get<std::string>(), "grammar");
  }
  if (const ojson* s = present(body, "json_schema")) take(from_schema(*s, "json_schema", "json_schema"), "json_schema");
  return {gbnf, from};
}

std::shared_ptr<CompiledGrammar> GrammarCache::get(const std::string& gbnf, const std::string& field) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = map_.find(gbnf); it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
  }
  std::shared_ptr<CompiledGrammar> c;
  try {
    c = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab_);
    c->check_start();  // also computes the first mask, outside the scheduler's thread
  } catch (const GrammarError& e) {
    throw ApiError(400, field + ": " + e.what(), field);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(gbnf); it != map_.end()) return it->second.first;  // compiled meanwhile
  order_.push_front(gbnf);
  map_[gbnf] = {c, order_.begin()};
  size_t bytes = 0;
  for (const auto& [text, entry] : map_) bytes += entry.first->bytes();
  while (map_.size() > 1 && (map_.size() > kEntries || bytes > max_bytes_)) {  // a request using one keeps it alive
    auto last = map_.find(order_.back());
    bytes -= std::min(bytes, last->second.first->bytes());
    map_.erase(last);
    order_.pop_back();
  }
  return c;
}

}  // namespace groak
