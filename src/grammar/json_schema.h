// JSON Schema → GBNF (grammar/gbnf.h), so that a schema is enforced by the same matcher as a grammar.
// Every keyword either shapes the grammar or is refused: a schema is never accepted and then not enforced.
//
// Enforced: type (one or a list), properties / required / additionalProperties (false, absent or a schema
// for a map), items / minItems / maxItems, enum, const, anyOf, allOf of one schema, $ref to a local
// definition ($defs / definitions, recursion allowed), string minLength / maxLength and format (date, time,
// date-time, uuid). Annotations (title, description, default, examples, $schema, $id, $comment, …) are read
// and ignored. Anything else (pattern, minimum, oneOf, uniqueItems, …) throws GrammarError naming its path.
// Properties come in the schema's order; optional ones may be left out. Numbers are written with at most
// 16 integer and 16 fraction digits and whitespace is bounded, as in llama.cpp, so output always ends.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "grammar/gbnf.h"

namespace groak {

// The grammar of the JSON texts `schema` accepts (root ::= one such value). Throws GrammarError naming the
// first unsupported keyword as a path from the schema's root ("properties.age.minimum"). Properties are
// written in the order the schema lists them, so pass the schema parsed as ordered_json; a plain json
// (keys sorted) gives them in sorted order.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);
std::string json_schema_to_gbnf(const nlohmann::json& schema);

// Any JSON object ({"type": "json_object"}): root ::= object.
std::string json_object_gbnf();

// Several schemas in one grammar (tool calls: one rule per tool's arguments), sharing the JSON primitives.
class SchemaRules {
 public:
  SchemaRules();
  ~SchemaRules();
  // Defines rule `name` (letters, digits, '-') for the values `schema` accepts; the schema's $refs resolve
  // inside it. Throws GrammarError naming the unsupported keyword's path.
  void add(const nlohmann::ordered_json& schema, const std::string& name);
  // Keeps `name` out of the names the schemas' rules get (a grammar around them defines it).
  void reserve(const std::string& name);
  // A JSON primitive's rule name ("space", "string", …), defined in text() from now on.
  std::string primitive(const std::string& name);
  // Every rule so far (root first when one is named root), then the primitives they use.
  std::string text() const;

 private:
  std::unique_ptr<class SchemaConverter> c_;
};

}  // namespace groak
