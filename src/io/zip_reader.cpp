#include "io/zip_reader.h"

#include <algorithm>
#include <array>
#include <set>

#include "util/error.h"

namespace groak {

namespace {

constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflate = 8;
constexpr uint16_t kFlagEncrypted = 1u << 0;
constexpr uint16_t kFlagStrongEncryption = 1u << 6;
constexpr uint32_t kSaturated32 = 0xffffffffu;  // "the value is in the ZIP64 extra field / end record"
constexpr uint16_t kSaturated16 = 0xffffu;
constexpr size_t kMaxCommentBytes = 0xffff;

const char* const kZipDamagedHint = "the archive is truncated or damaged (re-download it)";

[[noreturn]] void zip_fail(const std::string& file, const std::string& entry, const std::string& what,
                       const std::string& hint = kZipDamagedHint) {
  std::string m = file + ": ";
  if (!entry.empty()) m += "zip entry '" + entry + "': ";
  throw Error(m + what + "; " + hint);
}

// Little-endian reads at a position already checked to lie inside the buffer.
uint64_t get_le(const uint8_t* p, int k) {
  uint64_t v = 0;
  for (int b = k - 1; b >= 0; --b) v = (v << 8) | p[b];
  return v;
}
uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(get_le(p, 2)); }
uint32_t u32(const uint8_t* p) { return static_cast<uint32_t>(get_le(p, 4)); }
uint64_t u64(const uint8_t* p) { return get_le(p, 8); }

bool fits(uint64_t offset, uint64_t len, size_t size) { return offset <= size && len <= size - offset; }

std::string method_name(uint16_t m) {
  switch (m) {
    case kMethodDeflate: return "deflate";
    case 12: return "bzip2";
    case 14: return "LZMA";
    case 93: return "zstd";
    default: return "method " + std::to_string(m);
  }
}

struct Directory {
  uint64_t entries = 0;
  uint64_t offset = 0;  // of the first central header
  uint64_t size = 0;    // bytes of all central headers
};

// Finds the end-of-central-directory record (and the ZIP64 one, when there is a locator before it).
Directory find_directory(const uint8_t* d, size_t n, const std::string& file) {
  if (n < kZipEndSize) zip_fail(file, "", std::to_string(n) + " bytes, too short for a zip archive (at least 22)");
  // The record is the last thing in the file but for a comment of up to 65535 bytes.
  const size_t lowest = n - kZipEndSize > kMaxCommentBytes ? n - kZipEndSize - kMaxCommentBytes : 0;
  size_t at = n - kZipEndSize + 1;
  bool found = false;
  while (at-- > lowest) {
    if (u32(d + at) == kZipEndSig && at + kZipEndSize + u16(d + at + 20) <= n) {
      found = true;
      break;
    }
  }
  if (!found) zip_fail(file, "", "no end-of-central-directory record in the last 64 KiB: not a zip archive, or truncated");
  const uint8_t* e = d + at;
  Directory dir;
  const uint16_t disk = u16(e + 4), cd_disk = u16(e + 6), on_disk = u16(e + 8);
  dir.entries = u16(e + 10);
  dir.size = u32(e + 12);
  dir.offset = u32(e + 16);

  const bool has_locator = at >= kZip64LocatorSize && u32(d + at - kZip64LocatorSize) == kZip64LocatorSig;
  if (has_locator) {
    const uint8_t* loc = d + at - kZip64LocatorSize;
    const uint64_t end64 = u64(loc + 8);
    if (u32(loc + 4) != 0 || u32(loc + 16) > 1) zip_fail(file, "", "a multi-part ZIP64 archive", "join the parts into one file");
    if (!fits(end64, kZip64EndSize, n) || u32(d + end64) != kZip64EndSig)
      zip_fail(file, "", "the ZIP64 locator points to " + std::to_string(end64) + ", where no ZIP64 end record is");
    const uint8_t* z = d + end64;
    if (u32(z + 16) != 0 || u32(z + 20) != 0 || u64(z + 24) != u64(z + 32))
      zip_fail(file, "", "a multi-part ZIP64 archive", "join the parts into one file");
    dir.entries = u64(z + 32);
    dir.size = u64(z + 40);
    dir.offset = u64(z + 48);
  } else {
    if (disk != 0 || cd_disk != 0 || on_disk != dir.entries) zip_fail(file, "", "a multi-part zip archive", "join the parts into one file");
    if (dir.entries == kSaturated16 || dir.size == kSaturated32 || dir.offset == kSaturated32)
      zip_fail(file, "", "the end record defers to a ZIP64 record that is missing");
  }
  if (!fits(dir.offset, dir.size, n)) {
    zip_fail(file, "", "the central directory [" + std::to_string(dir.offset) + ", +" + std::to_string(dir.size) +
                       ") lies outside the file (" + std::to_string(n) + " bytes)");
  }
  if (dir.entries > dir.size / kZipCentralHeaderSize)
    zip_fail(file, "", std::to_string(dir.entries) + " entries cannot fit a central directory of " +
                       std::to_string(dir.size) + " bytes");
  return dir;
}

// Replaces saturated 32-bit fields by the values of the entry's ZIP64 extra field (APPNOTE 4.5.3: only
// the saturated ones are present, in the order size, compressed size, local header offset).
void apply_zip64_extra(const uint8_t* extra, size_t len, const std::string& file, const std::string& name,
                       uint64_t& usize, uint64_t& csize, uint64_t& local) {
  size_t p = 0;
  while (p + 4 <= len) {
    const uint16_t id = u16(extra + p), sz = u16(extra + p + 2);
    p += 4;
    if (sz > len - p) zip_fail(file, name, "an extra field runs past its header");
    if (id == kZip64ExtraId) {
      size_t q = p;
      for (uint64_t* v : {&usize, &csize, &local}) {
        if (*v != kSaturated32) continue;
        if (q + 8 > p + sz) zip_fail(file, name, "the ZIP64 extra field lacks a value its header defers to it");
        *v = u64(extra + q);
        q += 8;
      }
      return;
    }
    p += sz;
  }
  if (usize == kSaturated32 || csize == kSaturated32 || local == kSaturated32)
    zip_fail(file, name, "a size or offset defers to a ZIP64 extra field that is missing");
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(const uint8_t* d, size_t n, const std::string& file) {
  const Directory dir = find_directory(d, n, file);
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  uint64_t p = dir.offset;
  const uint64_t end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (end - p < kZipCentralHeaderSize || u32(d + p) != kZipCentralHeaderSig)
      zip_fail(file, "", "central directory entry " + std::to_string(i) + " is missing or damaged");
    const uint8_t* h = d + p;
    const uint16_t flags = u16(h + 8), method = u16(h + 10);
    const size_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    if (end - p - kZipCentralHeaderSize < name_len + extra_len + comment_len)
      zip_fail(file, "", "central directory entry " + std::to_string(i) + " runs past the directory");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(h + kZipCentralHeaderSize), name_len);
    e.crc32 = u32(h + 16);
    uint64_t csize = u32(h + 20), usize = u32(h + 24), local = u32(h + 42);
    if (u16(h + 34) != 0 && u16(h + 34) != kSaturated16) zip_fail(file, e.name, "lies on another disk of a multi-part archive");
    apply_zip64_extra(h + kZipCentralHeaderSize + name_len, extra_len, file, e.name, usize, csize, local);
    p += kZipCentralHeaderSize + name_len + extra_len + comment_len;

    if (flags & (kFlagEncrypted | kFlagStrongEncryption)) zip_fail(file, e.name, "is encrypted", "groak reads only plain archives");
    if (method != kMethodStored) {
      zip_fail(file, e.name, "is compressed (" + method_name(method) + ")",
           "groak maps tensors in place and reads only stored (uncompressed) entries, as torch.save writes them; "
           "the archive was re-packed: extract it and store it again without compression (zip -0)");
    }
    if (csize != usize)
      zip_fail(file, e.name, "a stored entry whose sizes differ (" + std::to_string(csize) + " vs " + std::to_string(usize) + ")");
    if (!fits(local, kZipLocalHeaderSize, n) || u32(d + local) != kZipLocalHeaderSig)
      zip_fail(file, e.name, "no local header at offset " + std::to_string(local));
    // The local header's own name and extra lengths (its extra field often differs: torch pads it so that
    // the data starts 64-byte aligned).
    const uint64_t data = local + kZipLocalHeaderSize + u16(d + local + 26) + u16(d + local + 28);
    if (!fits(data, usize, n)) {
      zip_fail(file, e.name, "its " + std::to_string(usize) + " bytes at offset " + std::to_string(data) +
                             " run past the end of the file (" + std::to_string(n) + " bytes)");
    }
    if (u16(d + local + 26) != name_len || !std::equal(e.name.begin(), e.name.end(), d + local + kZipLocalHeaderSize))
      zip_fail(file, e.name, "the local header at offset " + std::to_string(local) + " names another entry");
    e.offset = data;
    e.size = usize;
    if (!names.insert(e.name).second) zip_fail(file, e.name, "appears twice in the central directory");
    out.push_back(std::move(e));
  }
  return out;
}

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;  // reflected 0x04c11db7
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace groak
