// The central directory of a zip archive held in memory (PKWARE APPNOTE 6.3: end-of-central-directory
// record, ZIP64 end record and locator, central and local file headers, the ZIP64 extra field). Only
// STORED (uncompressed, unencrypted) entries are accepted: their bytes are then a plain range of the
// buffer, so a mapped file is used in place. Every offset and length is checked against the buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace groak {

// Record signatures (little-endian "PK\x03\x04" …).
inline constexpr uint32_t kZipLocalHeaderSig = 0x04034b50;
inline constexpr uint32_t kZipCentralHeaderSig = 0x02014b50;
inline constexpr uint32_t kZipEndSig = 0x06054b50;
inline constexpr uint32_t kZip64EndSig = 0x06064b50;
inline constexpr uint32_t kZip64LocatorSig = 0x07064b50;
inline constexpr uint16_t kZip64ExtraId = 0x0001;
inline constexpr size_t kZipLocalHeaderSize = 30;
inline constexpr size_t kZipCentralHeaderSize = 46;
inline constexpr size_t kZipEndSize = 22;
inline constexpr size_t kZip64EndSize = 56;
inline constexpr size_t kZip64LocatorSize = 20;

struct ZipEntry {
  std::string name;      // as stored ('/' separated)
  uint64_t offset = 0;   // where the entry's bytes start in the buffer (after its local header)
  uint64_t size = 0;     // bytes (stored: compressed = uncompressed)
  uint32_t crc32 = 0;    // as recorded in the central directory (not verified here)
};

// Parses the central directory of data[0, size) and locates every entry's bytes. Throws groak::Error naming
// `file`, the entry and what is wrong: not a zip, a multi-part archive, a compressed or encrypted entry, a
// header or range outside the buffer, a duplicate name.
std::vector<ZipEntry> read_zip_directory(const uint8_t* data, size_t size, const std::string& file);

// CRC-32 (IEEE 802.3, as zip uses) of p[0, n), continuing from `crc` (0 to start).
uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0);

}  // namespace groak
