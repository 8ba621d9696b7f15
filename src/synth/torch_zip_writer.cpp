#include "synth/torch_zip_writer.h"

#include <algorithm>

#include "io/zip_reader.h"
#include "util/error.h"

namespace groak {

namespace {

constexpr uint16_t kVersionNeeded = 20, kVersionNeededZip64 = 45;
constexpr uint16_t kDosDate1980 = (0 << 9) | (1 << 5) | 1;  // 1980-01-01, the epoch of zip's DOS dates
constexpr uint32_t kSaturated32 = 0xffffffffu;
constexpr uint16_t kSaturated16 = 0xffffu;
constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB": PyTorchStreamWriter's alignment padding
constexpr size_t kExtraHeaderSize = 4;
constexpr uint8_t kPaddingByte = 'Z';

void le(std::vector<uint8_t>& b, uint64_t v, int k) {
  for (int i = 0; i < k; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void bytes(std::vector<uint8_t>& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }

}  // namespace

ZipWriter::ZipWriter(pickle::ByteSink& out, ZipStyle style, uint64_t alignment)
    : out_(out), style_(style), alignment_(std::max<uint64_t>(1, alignment)) {}

bool ZipWriter::wide(uint64_t v) const {
  if (style_ == ZipStyle::Zip64Everywhere) return true;
  if (v < kSaturated32) return false;
  if (style_ == ZipStyle::Classic) throw Error("ZipWriter: a size or offset above 4 GiB needs ZIP64 (ZipStyle::Torch)");
  return true;
}

void ZipWriter::put(const std::vector<uint8_t>& b) {
  out_.write(b.data(), b.size());
  pos_ += b.size();
}

void ZipWriter::add(const std::string& name, uint64_t size, const pickle::PayloadFill& fill) {
  if (finished_) throw Error("ZipWriter: add after finish");
  std::vector<uint8_t> chunk(static_cast<size_t>(std::min<uint64_t>(size, pickle::kPayloadChunk)));
  uint32_t crc = 0;
  for (uint64_t off = 0; off < size; off += chunk.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - off));
    fill(chunk.data(), off, n);
    crc = crc32(chunk.data(), n, crc);
  }

  const bool wide_size = wide(size);
  std::vector<uint8_t> extra;
  if (wide_size) {  // a local header's ZIP64 field holds both sizes
    le(extra, kZip64ExtraId, 2);
    le(extra, 16, 2);
    le(extra, size, 8);
    le(extra, size, 8);
  }
  if (alignment_ > 1) {
    const uint64_t start = pos_ + kZipLocalHeaderSize + name.size() + extra.size() + kExtraHeaderSize;
    const uint64_t pad = (alignment_ - start % alignment_) % alignment_;
    le(extra, kPaddingExtraId, 2);
    le(extra, pad, 2);
    extra.insert(extra.end(), static_cast<size_t>(pad), kPaddingByte);
  }
  std::vector<uint8_t> h;
  le(h, kZipLocalHeaderSig, 4);
  le(h, wide_size ? kVersionNeededZip64 : kVersionNeeded, 2);
  le(h, 0, 2);  // flags
  le(h, 0, 2);  // method: stored
  le(h, 0, 2);  // time
  le(h, kDosDate1980, 2);
  le(h, crc, 4);
  le(h, wide_size ? kSaturated32 : size, 4);
  le(h, wide_size ? kSaturated32 : size, 4);
  le(h, name.size(), 2);
  le(h, extra.size(), 2);
  bytes(h, name);
  h.insert(h.end(), extra.begin(), extra.end());
  entries_.push_back({name, size, pos_, crc});
  put(h);

  for (uint64_t off = 0; off < size; off += chunk.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - off));
    fill(chunk.data(), off, n);
    out_.write(chunk.data(), n);
    pos_ += n;
  }
}

void ZipWriter::add(const std::string& name, const std::vector<uint8_t>& b) {
  add(name, b.size(), [&](uint8_t* buf, uint64_t off, size_t n) { std::copy_n(b.begin() + static_cast<long>(off), n, buf); });
}

void ZipWriter::finish() {
  if (finished_) return;
  finished_ = true;
  const uint64_t cd_offset = pos_;
  for (const Central& e : entries_) {
    const bool wide_size = wide(e.size), wide_offset = wide(e.offset);
    std::vector<uint8_t> extra;
    if (wide_size || wide_offset) {
      le(extra, kZip64ExtraId, 2);
      le(extra, (wide_size ? 16 : 0) + (wide_offset ? 8 : 0), 2);
      if (wide_size) {
        le(extra, e.size, 8);
        le(extra, e.size, 8);
      }
      if (wide_offset) le(extra, e.offset, 8);
    }
    std::vector<uint8_t> h;
    le(h, kZipCentralHeaderSig, 4);
    le(h, kVersionNeededZip64, 2);  // made by
    le(h, wide_size || wide_offset ? kVersionNeededZip64 : kVersionNeeded, 2);
    le(h, 0, 2);  // flags
    le(h, 0, 2);  // stored
    le(h, 0, 2);
    le(h, kDosDate1980, 2);
    le(h, e.crc, 4);
    le(h, wide_size ? kSaturated32 : e.size, 4);
    le(h, wide_size ? kSaturated32 : e.size, 4);
    le(h, e.name.size(), 2);
    le(h, extra.size(), 2);
    le(h, 0, 2);  // comment
    le(h, 0, 2);  // disk
    le(h, 0, 2);  // internal attributes
    le(h, 0, 4);  // external attributes
    le(h, wide_offset ? kSaturated32 : e.offset, 4);
    bytes(h, e.name);
    h.insert(h.end(), extra.begin(), extra.end());
    put(h);
  }
  const uint64_t cd_size = pos_ - cd_offset, count = entries_.size();
  const bool zip64_end = style_ != ZipStyle::Classic;
  if (!zip64_end && (count >= kSaturated16 || cd_offset >= kSaturated32 || cd_size >= kSaturated32))
    throw Error("ZipWriter: the directory does not fit the classic end record (use ZipStyle::Torch)");
  std::vector<uint8_t> h;
  if (zip64_end) {
    const uint64_t end64 = pos_;
    le(h, kZip64EndSig, 4);
    le(h, kZip64EndSize - 12, 8);  // bytes after this field
    le(h, kVersionNeededZip64, 2);
    le(h, kVersionNeededZip64, 2);
    le(h, 0, 4);  // this disk
    le(h, 0, 4);  // the directory's disk
    le(h, count, 8);
    le(h, count, 8);
    le(h, cd_size, 8);
    le(h, cd_offset, 8);
    le(h, kZip64LocatorSig, 4);
    le(h, 0, 4);
    le(h, end64, 8);
    le(h, 1, 4);  // disks
  }
  le(h, kZipEndSig, 4);
  le(h, 0, 2);
  le(h, 0, 2);
  le(h, std::min<uint64_t>(count, kSaturated16), 2);
  le(h, std::min<uint64_t>(count, kSaturated16), 2);
  le(h, std::min<uint64_t>(cd_size, kSaturated32), 4);
  le(h, std::min<uint64_t>(cd_offset, kSaturated32), 4);
  le(h, 0, 2);  // comment
  put(h);
}

void write_torch_zip(pickle::ByteSink& out, const std::vector<TorchStorage>& storages,
                     const std::vector<TorchTensorSpec>& tensors, const TorchSaveOptions& options) {
  std::vector<pickle::TorchTensorRef> refs;
  for (const TorchTensorSpec& t : tensors) {
    if (t.storage >= storages.size())
      throw Error("write_torch_zip: tensor " + t.name + " names storage " + std::to_string(t.storage) + " of " +
                  std::to_string(storages.size()));
    pickle::TorchTensorRef r;
    r.name = t.name;
    r.storage_type = storages[t.storage].type;
    r.storage_key = std::to_string(t.storage);
    r.storage_numel = storages[t.storage].numel;
    r.storage_offset = t.storage_offset;
    r.shape = t.shape;
    r.stride = t.stride;
    if (r.stride.empty()) {  // row-major
      r.stride.resize(t.shape.size());
      int64_t s = 1;
      for (size_t i = t.shape.size(); i-- > 0;) {
        r.stride[i] = s;
        s *= t.shape[i];
      }
    }
    refs.push_back(std::move(r));
  }
  pickle::VectorSink pkl;
  pickle::pickle_torch_state_dict(pkl, refs, options.dict);

  const std::string dir = options.archive.empty() ? "" : options.archive + "/";
  ZipWriter zip(out, options.zip, options.alignment);
  zip.add(dir + "data.pkl", pkl.bytes);
  zip.add(dir + "byteorder", std::vector<uint8_t>{'l', 'i', 't', 't', 'l', 'e'});
  for (size_t i = 0; i < storages.size(); ++i)
    zip.add(dir + "data/" + std::to_string(i), storages[i].numel * storages[i].element_size, storages[i].fill);
  zip.add(dir + "version", std::vector<uint8_t>{'3', '\n'});
  zip.finish();
}

}  // namespace groak
