#include "io/output_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace groak {

namespace fs = std::filesystem;

namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

// Throws when `p` exists and writing it (as a whole file, via rename) would destroy an input or a non-file.
void check_one(const std::string& p, const std::string& shown, const std::vector<std::string>& inputs, bool follow) {
  struct stat st {};
  const int rc = follow ? ::stat(p.c_str(), &st) : ::lstat(p.c_str(), &st);
  if (rc != 0) return;  // absent: nothing to destroy
  if (!S_ISREG(st.st_mode))
    throw Error(shown + " is " + kind_of(st.st_mode) +
                ", not a regular file; groak writes its output as a new file and renames it into place, which "
                "would replace it; pass --out a file name");
  for (const std::string& in : inputs) {
    struct stat si {};
    if (::stat(in.c_str(), &si) == 0 && si.st_dev == st.st_dev && si.st_ino == st.st_ino)
      throw Error(shown + " is one of this command's inputs (" + in +
                  "); writing it would destroy the input; pass --out a new file name");
  }
}

}  // namespace

std::string checked_output_path(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) throw Error("the output file name is empty; pass --out FILE");
  std::string target = path;
  std::error_code ec;
  if (fs::is_symlink(path, ec)) {
    const fs::path t = fs::read_symlink(path, ec);
    if (ec) throw Error(path + ": cannot read the symbolic link (" + ec.message() + ")");
    target = (t.is_absolute() ? t : fs::path(path).parent_path() / t).lexically_normal().string();
    if (fs::is_symlink(target, ec))  // one level is enough for what a user makes; more is refused
      throw Error(path + " is a link to a link (" + target + "); pass --out the file itself");
  }
  const std::string shown = target == path ? path : path + " (a link to " + target + ")";
  check_one(target, shown, inputs, /*follow=*/false);
  check_one(target + ".tmp", target + ".tmp (groak's temporary name for " + path + ")", inputs, /*follow=*/false);
  return target;
}

void write_file_atomic(const std::string& path, const void* data, size_t bytes, const std::vector<std::string>& inputs) {
  const std::string target = checked_output_path(path, inputs);
  const std::string tmp = target + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot create the output file " + tmp + " (" + std::strerror(errno) + ")");
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(path + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path + ": cannot rename the output into place (" + ec.message() + ")");
  }
}

}  // namespace groak
