#include "io/share_set.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "util/error.h"

namespace groak {

std::string share_file_name(int rank, int ranks) {
  return "rank-" + std::to_string(rank) + "-of-" + std::to_string(ranks) + ".gguf";
}

namespace {

// The share counts N of the rank-R-of-N.gguf files in a folder.
std::set<int> share_counts(const std::filesystem::path& dir) {
  std::set<int> counts;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    int r = -1, n = -1, used = 0;
    const std::string name = e.path().filename().string();
    if (std::sscanf(name.c_str(), "rank-%d-of-%d.gguf%n", &r, &n, &used) == 2 && used == static_cast<int>(name.size()) &&
        n > 0 && r >= 0 && r < n)
      counts.insert(n);
  }
  return counts;
}

}  // namespace

int share_set_ranks(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return 0;
  const std::set<int> counts = share_counts(path);
  return counts.size() == 1 ? *counts.begin() : counts.empty() ? 0 : -1;
}

std::string share_file(const std::string& path, int rank, int ranks) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return path;
  const std::set<int> counts = share_counts(path);
  if (counts.empty()) return path;  // not a share set: another kind of model folder
  const std::string here = ranks == 1 ? "; one process runs the whole model (the file groak shard read)"
                                      : "; make a set for " + std::to_string(ranks) + " ranks with groak shard --ranks " +
                                            std::to_string(ranks);
  if (counts.size() > 1)
    throw Error(path + " holds share files of several sets (rank-*-of-N.gguf for more than one N); keep one set per "
                "folder" + here);
  const int n = *counts.begin();
  if (n != ranks)
    throw Error(path + " holds a model sharded for " + std::to_string(n) + " ranks (" + share_file_name(0, n) +
                " ...), but this job has " + std::to_string(ranks) + ": run it with mpirun -np " + std::to_string(n) +
                (ranks == 1 ? " (a share alone is not the model)" : "") + here);
  const std::string file = (std::filesystem::path(path) / share_file_name(rank, ranks)).string();
  if (!std::filesystem::exists(file, ec))
    throw Error(file + " is missing: the share set in " + path + " is incomplete (copy every rank-*-of-" +
                std::to_string(n) + ".gguf, or run groak shard again)");
  return file;
}

std::string lead_file(const std::string& path) {
  const int ranks = share_set_ranks(path);
  return ranks > 0 ? share_file(path, 0, ranks) : path;
}

}  // namespace groak
