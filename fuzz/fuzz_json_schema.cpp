// libFuzzer target: JSON Schema → GBNF on arbitrary JSON: a grammar the GBNF parser accepts, or
// GrammarError (never a JSON type error, a crash or a stack overflow on deep schemas).
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto schema = nlohmann::ordered_json::parse(std::string(reinterpret_cast<const char*>(data), size), nullptr,
                                                    /*allow_exceptions=*/false);
  if (schema.is_discarded()) return 0;
  try {
    const std::string gbnf = groak::json_schema_to_gbnf(schema);
    groak::parse_gbnf(gbnf);  // may refuse an endless schema, as GrammarError
  } catch (const groak::GrammarError&) {
  }
  return 0;
}
