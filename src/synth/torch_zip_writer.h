// Writes torch.save archives of state dicts as PyTorch (1.6 - 2.x) lays them out, so that groak's tests and
// fuzz seeds never depend on torch itself: a zip of STORED entries under one folder, `data.pkl` (the state
// dict pickled with protocol 2, synth/pickle_writer.h), `byteorder`, `data/<key>` (raw little-endian storage
// bytes, each starting on a 64-byte boundary through padding in its local header's extra field, as
// PyTorchStreamWriter does) and `version`. Payloads are streamed from callbacks: a multi-GB archive never
// sits in memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "synth/pickle_writer.h"

namespace groak {

// How ZIP64 records are used.
enum class ZipStyle : uint8_t {
  Classic,          // none (fails past 4 GiB or 65535 entries)
  Torch,            // as torch's miniz writer: the ZIP64 end record and locator always, an entry's ZIP64
                    // extra field only where a size or offset does not fit 32 bits
  Zip64Everywhere,  // every entry's sizes and offset in ZIP64 extra fields (exercises readers on small files)
};

// Zip archives of stored (uncompressed) entries, with correct CRC-32s.
class ZipWriter {
 public:
  // alignment: entry data starts at a multiple of it (1 = no padding).
  ZipWriter(pickle::ByteSink& out, ZipStyle style, uint64_t alignment);

  // An entry of `size` bytes produced by `fill` (called twice: once for the CRC, once to write).
  void add(const std::string& name, uint64_t size, const pickle::PayloadFill& fill);
  void add(const std::string& name, const std::vector<uint8_t>& bytes);
  // Writes the central directory and end records. Nothing may be added afterwards.
  void finish();

 private:
  struct Central {
    std::string name;
    uint64_t size, offset;
    uint32_t crc;
  };
  void put(const std::vector<uint8_t>& b);
  bool wide(uint64_t v) const;  // stored in a ZIP64 field

  pickle::ByteSink& out_;
  ZipStyle style_;
  uint64_t alignment_;
  uint64_t pos_ = 0;
  std::vector<Central> entries_;
  bool finished_ = false;
};

// One storage of the archive: `numel` elements of torch.<type> whose bytes come from `fill`.
struct TorchStorage {
  std::string type = "BFloat16Storage";
  uint64_t element_size = 2;
  uint64_t numel = 0;
  pickle::PayloadFill fill;
};

// One entry of the state dict: a view of storages[storage] (stride empty = row-major).
struct TorchTensorSpec {
  std::string name;
  size_t storage = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
};

struct TorchSaveOptions {
  std::string archive = "archive";  // the top folder (torch uses the file's stem or "archive")
  pickle::StateDictType dict = pickle::StateDictType::Dict;
  ZipStyle zip = ZipStyle::Torch;
  uint64_t alignment = 64;
};

// torch.save(state_dict, out): storage i is entry data/<i>. Throws groak::Error on a bad spec or I/O failure.
void write_torch_zip(pickle::ByteSink& out, const std::vector<TorchStorage>& storages,
                     const std::vector<TorchTensorSpec>& tensors, const TorchSaveOptions& options = {});

}  // namespace groak
