#include "model/communicator.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace groak {

std::string Communicator::where() const {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  return "rank " + std::to_string(rank()) + " (" + host + ")";
}

std::string Communicator::agree(const std::string& error) {
  if (size() == 1) return error;
  // Each rank sends "where\terror"; rank 0 groups equal errors and tells everyone the verdict.
  std::vector<std::string> all = gather_text(where() + "\t" + error);
  std::string verdict;
  if (rank() == 0) {
    std::vector<std::pair<std::string, std::string>> groups;  // error -> ranks that reported it
    for (const std::string& line : all) {
      const size_t tab = line.find('\t');
      const std::string who = line.substr(0, tab), what = line.substr(tab + 1);
      if (what.empty()) continue;
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == what; });
      if (it == groups.end()) groups.push_back({what, who});
      else it->second += ", " + who;
    }
    for (const auto& [what, who] : groups) verdict += (verdict.empty() ? "" : "\n") + who + ": " + what;
  }
  uint64_t n = verdict.size();
  broadcast(&n, sizeof n);
  verdict.resize(n);
  if (n) broadcast(verdict.data(), n);
  return verdict;
}

Communicator& one_process() {
  static Communicator none;  // no state: every call is a no-op
  return none;
}

}  // namespace groak
