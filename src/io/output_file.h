// Safe places to write. Outputs are written as PATH.tmp and renamed over PATH, so an existing PATH is
// replaced as a whole: these checks refuse when that would destroy something by accident.
#pragma once
#include <string>
#include <vector>

namespace groak {

// Returns the path to write for the output `path` (a symlink is followed: the file it points to is
// replaced, so the returned path is the target). Throws groak::Error when the output or its PATH.tmp exists
// and is not a regular file (a device such as /dev/null, a FIFO, a folder), or is one of `inputs` (compared
// by device and inode, so other spellings and hard links count).
std::string checked_output_path(const std::string& path, const std::vector<std::string>& inputs);

// Checks `path` like checked_output_path and then writes `bytes` to it through PATH.tmp.
void write_file_atomic(const std::string& path, const void* data, size_t bytes, const std::vector<std::string>& inputs);

}  // namespace groak
