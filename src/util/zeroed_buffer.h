// Zero-filled memory straight from the kernel (anonymous mmap): page-aligned, so any alignment a kernel
// asks for up to 4096 bytes holds, and pages never touched cost no memory (a KV cache or a workspace
// sized for the largest batch is mostly untouched by small ones).
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <utility>

namespace groak {

class ZeroedBuffer {
 public:
  ZeroedBuffer() = default;
  explicit ZeroedBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = p;
  }
  ~ZeroedBuffer() {
    if (data_) ::munmap(data_, bytes_);
  }
  ZeroedBuffer(ZeroedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  ZeroedBuffer& operator=(ZeroedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ZeroedBuffer(const ZeroedBuffer&) = delete;
  ZeroedBuffer& operator=(const ZeroedBuffer&) = delete;

  template <class T = void>
  T* get() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace groak
