// groak's one exception type. Loaders and the runtime throw it at their boundaries with a message that
// names the file/tensor, what was expected, what was found and what to do; only main() turns it into an
// exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace groak {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace groak
