// JSON text from files groak did not write (safetensors headers, index files): parsed with a nesting cap and,
// where asked, refusing duplicate top-level keys, with errors in groak's form (file, what, hint).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace groak {

// Duplicate top-level keys: nlohmann would silently keep the last one, hiding a second tensor of one name.
enum class TopKeys : uint8_t { MayRepeat, Unique };

// Parses [begin, end). `what` names the text in messages ("header", "index"). Throws groak::Error.
nlohmann::json parse_json_text(const char* begin, const char* end, const std::string& file, const char* what,
                               TopKeys keys, const char* hint);

// A JSON value's type in words, for "expected X, found Y".
std::string json_type_of(const nlohmann::json& v);

}  // namespace groak
