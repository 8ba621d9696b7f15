#include "io/gguf_writer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace groak {

GgufWriter::GgufWriter(std::string path, uint32_t alignment)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), alignment_(alignment) {}

GgufWriter::~GgufWriter() {
  if (f_) std::fclose(f_);
  if (!committed_) {  // an unfinished or abandoned file never appears under its final name
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void GgufWriter::raw(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n)
    throw Error(path_ + ": write failed after " + std::to_string(written_) + " bytes (" + std::strerror(errno) +
                "); is the disk full?");
  written_ += n;
}

namespace {
template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof(T));
}
void put_str(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
}  // namespace

void GgufWriter::kv_header(const std::string& key, uint32_t type) {
  if (header_done_) throw Error(path_ + ": metadata added after the header was written (internal error)");
  put_str(kv_, key);
  put<uint32_t>(kv_, type);
  ++kv_count_;
}

void GgufWriter::add_u16(const std::string& k, uint16_t v) { kv_header(k, kGgufU16); put(kv_, v); }
void GgufWriter::add_u32(const std::string& k, uint32_t v) { kv_header(k, kGgufU32); put(kv_, v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { kv_header(k, kGgufI32); put(kv_, v); }
void GgufWriter::add_f32(const std::string& k, float v) { kv_header(k, kGgufF32); put(kv_, v); }
void GgufWriter::add_bool(const std::string& k, bool v) { kv_header(k, kGgufBool); put<uint8_t>(kv_, v ? 1 : 0); }
void GgufWriter::add_string(const std::string& k, const std::string& v) { kv_header(k, kGgufString); put_str(kv_, v); }

void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& v) {
  kv_header(k, kGgufArray);
  put<uint32_t>(kv_, kGgufString);
  put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
}
void GgufWriter::add_f32s(const std::string& k, const std::vector<float>& v) {
  kv_header(k, kGgufArray);
  put<uint32_t>(kv_, kGgufF32);
  put<uint64_t>(kv_, v.size());
  for (float x : v) put(kv_, x);
}
void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
  kv_header(k, kGgufArray);
  put<uint32_t>(kv_, kGgufI32);
  put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type, uint64_t bytes) {
  if (header_done_) throw Error(path_ + ": tensor declared after the header was written (internal error)");
  uint64_t offset = 0;
  if (!tensors_.empty()) {
    const auto& last = tensors_.back();
    offset = (last.offset + last.bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  tensors_.push_back({name, ne, type, bytes, offset});
}

void GgufWriter::write_header() {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw Error(tmp_ + ": cannot create (" + std::string(std::strerror(errno)) + ")");
  std::vector<uint8_t> h;
  h.insert(h.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, kv_count_);
  raw(h.data(), h.size());
  raw(kv_.data(), kv_.size());
  h.clear();
  for (const auto& t : tensors_) {
    put_str(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(h, static_cast<uint64_t>(n));
    put<uint32_t>(h, t.type);
    put<uint64_t>(h, t.offset);
  }
  raw(h.data(), h.size());
  const std::vector<uint8_t> pad((alignment_ - written_ % alignment_) % alignment_, 0);
  raw(pad.data(), pad.size());
  header_done_ = true;
}

void GgufWriter::write_data(const void* p, size_t n) {
  if (current_ >= tensors_.size()) throw Error(path_ + ": more tensor data than declared (internal error)");
  current_bytes_ += n;
  if (current_bytes_ > tensors_[current_].bytes)
    throw Error(path_ + ": tensor " + tensors_[current_].name + " got more data than declared (internal error)");
  raw(p, n);
}

void GgufWriter::end_tensor() {
  const auto& t = tensors_[current_];
  if (current_bytes_ != t.bytes)
    throw Error(path_ + ": tensor " + t.name + " got " + std::to_string(current_bytes_) + " bytes, declared " +
                std::to_string(t.bytes) + " (internal error)");
  ++current_;
  current_bytes_ = 0;
  if (current_ < tensors_.size()) {
    const std::vector<uint8_t> pad((alignment_ - written_ % alignment_) % alignment_, 0);
    raw(pad.data(), pad.size());
  }
}

void GgufWriter::finish() {
  if (current_ != tensors_.size())
    throw Error(path_ + ": only " + std::to_string(current_) + " of " + std::to_string(tensors_.size()) +
                " tensors written (internal error)");
  if (std::fflush(f_) != 0 || std::fclose(f_) != 0) {
    f_ = nullptr;
    throw Error(path_ + ": write failed at close (" + std::string(std::strerror(errno)) + "); is the disk full?");
  }
  f_ = nullptr;
  finished_ = true;
}

void GgufWriter::commit() {
  if (!finished_) throw Error(path_ + ": commit before finish (internal error)");
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) throw Error(path_ + ": cannot rename " + tmp_ + " into place (" + ec.message() + ")");
  committed_ = true;
}

}  // namespace groak
