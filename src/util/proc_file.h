// Numbers from Linux's "key: value" files under /proc (meminfo, self/status, self/io).
#pragma once
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace groak {

// The number after `key` (with its colon, e.g. "MemAvailable:") on its line of `path`, in the file's own
// unit (kB for meminfo and status); empty where the file or the line is absent.
inline std::optional<uint64_t> proc_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream f(line.substr(key.size()));
    uint64_t v = 0;
    if (f >> v) return v;
  }
  return std::nullopt;
}

}  // namespace groak
