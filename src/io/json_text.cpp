#include "io/json_text.h"

#include <set>

#include "io/tensor_set.h"

namespace groak {

namespace {
// Tensor entries nest 3 deep (header > entry > shape); the cap only stops hostile nesting early.
constexpr int kMaxJsonDepth = 32;
}  // namespace

std::string json_type_of(const nlohmann::json& v) {
  if (v.is_number_float()) return "a number with a fraction or exponent (" + v.dump() + ")";
  if (v.is_number_integer() && !v.is_number_unsigned()) return "a negative number (" + v.dump() + ")";
  return v.type_name();
}

nlohmann::json parse_json_text(const char* begin, const char* end, const std::string& file, const char* what,
                               TopKeys keys, const char* hint) {
  using json = nlohmann::json;
  std::set<std::string> top_keys;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) &&
        depth > kMaxJsonDepth) {
      throw_tensor_error(file, "", "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", hint);
    }
    if (ev == json::parse_event_t::key && depth == 1 && keys == TopKeys::Unique) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!top_keys.insert(k).second) throw_tensor_error(file, k, std::string("appears twice in the ") + what, hint);
    }
    return true;
  };
  try {
    return json::parse(begin, end, cb);
  } catch (const json::exception& e) {
    throw_tensor_error(file, "", std::string("invalid JSON in the ") + what + ": " + e.what(), hint);
  }
}

}  // namespace groak
