// A read-only memory mapping of a whole file (RAII). Weights are used in place through views into it,
// so a loaded model costs page cache, not anonymous memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace groak {

// Drops the pages of [p, p + n) (inside a read-only file mapping) from this process's resident set;
// the page cache keeps them. Used by streaming jobs (convert) to keep RSS bounded.
void release_pages(const void* p, size_t n);

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws groak::Error (names the file and the reason)
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace groak
