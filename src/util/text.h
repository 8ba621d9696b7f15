// Text from files shown in messages: control bytes, NUL among them, escaped so a damaged name cannot
// garble the terminal or hide its real content.
#pragma once
#include <cstdio>
#include <string>
#include <string_view>

namespace groak {

// `s` with bytes below 0x20 and 0x7f written as \xNN (and backslash as \\), cut after max_bytes with "…".
inline std::string printable(std::string_view s, size_t max_bytes = 120) {
  std::string r;
  for (char c : s.substr(0, max_bytes)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      r += buf;
    } else if (c == '\\') {
      r += "\\\\";
    } else {
      r += c;
    }
  }
  return s.size() > max_bytes ? r + "…" : r;
}

}  // namespace groak
