#include "grammar/json_schema.h"

#include <array>
#include <cctype>
#include <map>
#include <set>
#include <vector>

namespace groak {

using json = nlohmann::ordered_json;

namespace {

// The JSON building blocks (llama.cpp's json-schema-to-grammar primitives): bounded whitespace and digit
// runs so that even a model sampling at random finishes its number or its indentation; exponents of at
// most two digits keep every number inside a double's range (parsers refuse 1e400).
const std::map<std::string, std::string>& primitives() {
  static const std::map<std::string, std::string> p = {
      {"space", R"(| " " | "\n" [ \t]{0,20})"},
      {"boolean", R"(("true" | "false") space)"},
      {"null", R"("null" space)"},
      {"integral-part", R"([0] | [1-9] [0-9]{0,15})"},
      {"decimal-part", R"([0-9]{1,16})"},
      {"integer", R"(("-"? integral-part) space)"},
      {"number", R"(("-"? integral-part) ("." decimal-part)? ([eE] [-+]? [0-9]{1,2})? space)"},
      {"char", R"([^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))"},
      {"string", R"("\"" char* "\"" space)"},
      {"value", R"(object | array | string | number | boolean | null)"},
      {"object", R"("{" space ( string ":" space value ("," space string ":" space value)* )? "}" space)"},
      {"array", R"("[" space ( value ("," space value)* )? "]" space)"},
      {"date", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ))"},
      {"time", R"(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
      {"date-string", R"("\"" date "\"" space)"},
      {"time-string", R"("\"" time "\"" space)"},
      {"date-time-string", R"("\"" date "T" time "\"" space)"},
      {"uuid", R"("\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space)"},
  };
  return p;
}
// What each primitive uses, so that only what a schema needs is written.
const std::map<std::string, std::vector<std::string>>& primitive_deps() {
  static const std::map<std::string, std::vector<std::string>> d = {
      {"boolean", {"space"}}, {"null", {"space"}}, {"integer", {"integral-part", "space"}},
      {"number", {"integral-part", "decimal-part", "space"}}, {"string", {"char", "space"}},
      {"value", {"object", "array", "string", "number", "boolean", "null"}},
      {"object", {"space", "string", "value"}}, {"array", {"space", "value"}},
      {"date-string", {"date", "space"}}, {"time-string", {"time", "space"}},
      {"date-time-string", {"date", "time", "space"}}, {"uuid", {"space"}},
  };
  return d;
}

// Keywords that only describe (validators do not check them).
const std::set<std::string>& annotations() {
  static const std::set<std::string> a = {"title", "description", "$schema", "$id", "$comment", "default",
                                          "examples", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
  return a;
}


}  // namespace

// SchemaRules' implementation (its members are public to it alone: the class is this file's).
class SchemaConverter {
 public:
  // Defines rule `name` for the values `schema` accepts (its $refs resolve inside `schema`).
  void add(const json& schema, const std::string& name) {
    root_ = &schema;
    refs_.clear();
    taken_.insert(name);
    const std::string r = visit(schema, name, "");
    if (r != name) rules_[name] = r;
  }

  std::string text() const {
    std::string out;
    if (auto it = rules_.find("root"); it != rules_.end()) out += "root ::= " + it->second + "\n";
    for (const auto& [name, body] : rules_)
      if (name != "root") out += name + " ::= " + body + "\n";
    for (const std::string& p : used_) out += p + " ::= " + primitives().at(p) + "\n";
    return out;
  }

  [[noreturn]] static void fail(const std::string& path, const std::string& what) {
    throw GrammarError("schema" + (path.empty() ? std::string() : " at " + path) + ": " + what);
  }
  static std::string at(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

  std::string use(const std::string& p) {
    if (!primitives().count(p)) throw GrammarError("internal: no JSON primitive '" + p + "'");
    if (used_.insert(p).second) {
      auto it = primitive_deps().find(p);
      if (it != primitive_deps().end())
        for (const std::string& d : it->second) use(d);
    }
    return p;
  }
  std::string fresh(const std::string& hint) {
    std::string base;
    for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
    if (base.empty() || primitives().count(base)) base = "r-" + base;
    std::string name = base;
    for (int i = 1; rules_.count(name) || taken_.count(name); ++i) name = base + "-" + std::to_string(i);
    taken_.insert(name);
    return name;
  }
  std::string define(const std::string& hint, const std::string& body) {
    const std::string name = fresh(hint);
    rules_[name] = body;
    return name;
  }

  // The rule (or expression in parentheses) for one value of `s`.
  std::string visit(const json& s, const std::string& hint, const std::string& path) {
    struct Depth {  // schemas inside schemas, bounded (the recursion follows them)
      int& d;
      explicit Depth(int& d_) : d(d_) { ++d; }
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxNesting) fail(path, "schemas nest deeper than " + std::to_string(kMaxNesting) + " levels");
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail(path, "the schema `false` matches nothing");
      return use("value");
    }
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean");
    static const std::set<std::string> known = {"type", "properties", "required", "additionalProperties", "items",
                                                "minItems", "maxItems", "enum", "const", "anyOf", "allOf", "$ref",
                                                "minLength", "maxLength", "format", "nullable"};
    for (const auto& [k, v] : s.items()) {
      if (known.count(k) || annotations().count(k)) continue;
      if (k == "uniqueItems" && v == false) continue;
      if (k == "oneOf") fail(at(path, k), "'oneOf' is not supported (groak cannot enforce \"exactly one\"); use 'anyOf'");
      fail(at(path, k), "'" + k + "' is not supported; remove it or describe the value with type, enum, "
                        "properties, items, minItems/maxItems, minLength/maxLength or anyOf");
    }
    if (s.contains("$ref")) return ref(s, path);
    if (s.contains("const")) return "(" + gbnf_literal(s["const"].dump()) + " " + use("space") + ")";
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) fail(at(path, "enum"), "'enum' must be a non-empty array");
      std::string alts;
      for (const json& v : e) alts += (alts.empty() ? "" : " | ") + gbnf_literal(v.dump());
      return "((" + alts + ") " + use("space") + ")";
    }
    if (s.contains("anyOf")) {
      const json& a = s["anyOf"];
      if (!a.is_array() || a.empty()) fail(at(path, "anyOf"), "'anyOf' must be a non-empty array");
      std::string alts;
      for (size_t i = 0; i < a.size(); ++i)
        alts += (i ? " | " : "") + visit(a[i], hint + "-" + std::to_string(i), at(path, "anyOf." + std::to_string(i)));
      return "(" + alts + ")";
    }
    if (s.contains("allOf")) {
      const json& a = s["allOf"];
      if (!a.is_array() || a.size() != 1)
        fail(at(path, "allOf"), "'allOf' is supported with one schema only; merge the schemas into one");
      return visit(a[0], hint, at(path, "allOf.0"));
    }
    json type = s.contains("type") ? s["type"] : json();
    if (type.is_null()) {
      if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) type = "object";
      else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) type = "array";
      else if (s.contains("minLength") || s.contains("maxLength") || s.contains("format")) type = "string";
      else return use("value");
    }
    if (s.contains("nullable") && !s["nullable"].is_boolean()) fail(at(path, "nullable"), "'nullable' must be true or false");
    if (s.contains("nullable") && s["nullable"].get<bool>() && type.is_string()) type = json::array({type, "null"});
    if (type.is_array()) {
      if (type.empty()) fail(at(path, "type"), "'type' must not be an empty list");
      std::string alts;
      for (const json& t : type) {
        if (!t.is_string()) fail(at(path, "type"), "'type' must be a string or a list of strings");
        alts += (alts.empty() ? "" : " | ") + of_type(s, t.get<std::string>(), hint, path);
      }
      return "(" + alts + ")";
    }
    if (!type.is_string()) fail(at(path, "type"), "'type' must be a string or a list of strings");
    return of_type(s, type.get<std::string>(), hint, path);
  }

  std::string ref(const json& s, const std::string& path) {
    if (!s["$ref"].is_string()) fail(at(path, "$ref"), "'$ref' must be a string");
    const std::string r = s["$ref"];
    if (r.rfind("#/", 0) != 0 && r != "#")
      fail(at(path, "$ref"), "only local references (\"#/$defs/Name\") are supported, not '" + r + "'");
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    json::json_pointer ptr;
    try {
      ptr = json::json_pointer(r.substr(1));
    } catch (const json::exception&) {
      fail(at(path, "$ref"), "'" + r + "' is not a JSON pointer");
    }
    if (!root_->contains(ptr)) fail(at(path, "$ref"), "'" + r + "' points at nothing in the schema");
    const std::string name = fresh(r.substr(r.rfind('/') + 1));
    refs_[r] = name;  // before visiting: the definition may refer to itself
    rules_[name] = "";
    rules_[name] = visit(root_->at(ptr), name, r.substr(2));
    return name;
  }

  std::string of_type(const json& s, const std::string& type, const std::string& hint, const std::string& path) {
    if (type == "string") return string(s, path);
    if (type == "integer" || type == "number" || type == "boolean" || type == "null") return use(type);
    if (type == "array") return array(s, hint, path);
    if (type == "object") return object(s, hint, path);
    fail(at(path, "type"), "unknown type '" + type + "' (string, number, integer, boolean, null, array, object)");
  }

  static uint64_t count(const json& s, const char* key, uint64_t dflt, const std::string& path) {
    if (!s.contains(key)) return dflt;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail(at(path, key), std::string("'") + key + "' must be a non-negative integer");
    const auto n = v.get<uint64_t>();
    if (n > kMaxRepetition) fail(at(path, key), std::string("'") + key + "' above " + std::to_string(kMaxRepetition) + " is not supported");
    return n;
  }

  std::string string(const json& s, const std::string& path) {
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail(at(path, "format"), "'format' must be a string");
      const std::string f = s["format"];
      if (s.contains("minLength") || s.contains("maxLength"))
        fail(path, "minLength/maxLength beside a format are not supported");
      if (f == "date") return use("date-string");
      if (f == "time") return use("time-string");
      if (f == "date-time") return use("date-time-string");
      if (f == "uuid") return use("uuid");
      fail(at(path, "format"), "format '" + f + "' is not supported (date, time, date-time, uuid are)");
    }
    const uint64_t lo = count(s, "minLength", 0, path);
    const bool bounded = s.contains("maxLength");
    const uint64_t hi = count(s, "maxLength", 0, path);
    if (bounded && hi < lo) fail(at(path, "maxLength"), "maxLength is below minLength");
    if (lo == 0 && !bounded) return use("string");
    use("char");
    use("space");
    const std::string rep = bounded ? "{" + std::to_string(lo) + "," + std::to_string(hi) + "}" : "{" + std::to_string(lo) + ",}";
    return "(\"\\\"\" char" + rep + " \"\\\"\" space)";
  }

  std::string array(const json& s, const std::string& hint, const std::string& path) {
    const std::string item = s.contains("items") ? visit(s["items"], hint + "-item", at(path, "items")) : use("value");
    const uint64_t lo = count(s, "minItems", 0, path);
    const bool bounded = s.contains("maxItems");
    const uint64_t hi = count(s, "maxItems", 0, path);
    if (bounded && hi < lo) fail(at(path, "maxItems"), "maxItems is below minItems");
    use("space");
    if (bounded && hi == 0) return "(\"[\" space \"]\" space)";
    // item ("," space item){lo-1, hi-1}, optional as a whole when lo is 0.
    const uint64_t more_lo = lo > 0 ? lo - 1 : 0;
    const std::string more = "(\",\" space " + item + ")" +
                             (bounded ? "{" + std::to_string(more_lo) + "," + std::to_string(hi - 1) + "}"
                                      : "{" + std::to_string(more_lo) + ",}");
    std::string items = item + " " + more;
    if (lo == 0) items = "(" + items + ")?";
    return define(hint + "-array", "\"[\" space " + items + " \"]\" space");
  }

  std::string object(const json& s, const std::string& hint, const std::string& path) {
    use("space");
    const json props = s.contains("properties") ? s["properties"] : json::object();
    if (!props.is_object()) fail(at(path, "properties"), "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(at(path, "required"), "'required' must be an array of names");
      for (const json& n : s["required"]) {
        if (!n.is_string() || !props.contains(n.get<std::string>()))
          fail(at(path, "required"), "'required' names " + n.dump() + ", which is not one of the properties");
        required.insert(n.get<std::string>());
      }
    }
    const json extra = s.contains("additionalProperties") ? s["additionalProperties"] : json();
    if (!extra.is_null() && !extra.is_boolean() && !extra.is_object())
      fail(at(path, "additionalProperties"), "'additionalProperties' must be a boolean or a schema");
    if (props.empty()) {
      if (extra.is_object()) {  // a map: any keys, values of one schema
        const std::string v = visit(extra, hint + "-value", at(path, "additionalProperties"));
        use("string");
        const std::string kv = define(hint + "-kv", "string \":\" space " + v);
        return define(hint, "\"{\" space (" + kv + " (\",\" space " + kv + ")*)? \"}\" space");
      }
      if (extra == false) return "(\"{\" space \"}\" space)";
      return use("object");
    }
    if (extra.is_object())
      fail(at(path, "additionalProperties"), "a schema for additional properties beside 'properties' is not supported");
    // Extra properties are allowed unless additionalProperties is false; groak writes only the listed ones,
    // which every such schema accepts.
    std::vector<std::string> kv;
    std::vector<bool> req;
    for (const auto& [name, sub] : props.items()) {
      const std::string v = visit(sub, hint + "-" + name, at(at(path, "properties"), name));
      kv.push_back(gbnf_literal(json(name).dump()) + " space \":\" space " + v);
      req.push_back(required.count(name) > 0);
    }
    // rest[i][first]: the properties from i on, where `first` says no comma is needed before the next one.
    const size_t n = kv.size();
    std::vector<std::array<std::string, 2>> rest(n + 1);
    rest[n] = {"", ""};
    for (size_t i = n; i-- > 0;) {
      for (int first = 0; first < 2; ++first) {
        const std::string take = (first ? "" : "\",\" space ") + kv[i] + (rest[i + 1][0].empty() ? "" : " " + rest[i + 1][0]);
        std::string body = take;
        if (!req[i]) body = "(" + take + ")" + (rest[i + 1][first].empty() ? "?" : " | " + rest[i + 1][first]);
        rest[i][first] = define(hint + "-p" + std::to_string(i) + (first ? "f" : "n"), body);
      }
    }
    return define(hint, "\"{\" space " + rest[0][1] + " \"}\" space");
  }

  const json* root_ = nullptr;  // the schema being added
  int depth_ = 0;
  std::map<std::string, std::string> rules_;
  std::set<std::string> taken_, used_;
  std::map<std::string, std::string> refs_;
};

std::string json_schema_to_gbnf(const json& schema) {
  SchemaRules g;
  g.add(schema, "root");
  return g.text();
}

SchemaRules::SchemaRules() : c_(std::make_unique<SchemaConverter>()) {}
SchemaRules::~SchemaRules() = default;
void SchemaRules::add(const json& schema, const std::string& name) { c_->add(schema, name); }
std::string SchemaRules::text() const { return c_->text(); }
void SchemaRules::reserve(const std::string& name) { c_->taken_.insert(name); }
std::string SchemaRules::primitive(const std::string& name) { return c_->use(name); }

std::string json_schema_to_gbnf(const nlohmann::json& schema) { return json_schema_to_gbnf(json(schema)); }

std::string json_object_gbnf() {
  SchemaRules g;
  const std::string object = g.primitive("object");  // before text(): it defines what object uses
  return "root ::= " + object + "\n" + g.text();
}

}  // namespace groak
