// torch.save's zip format (PyTorch >= 1.6), as Grok-1's Hugging Face ports ship it (spec §9.1:
// pytorch_model-000NN-of-000MM.bin + pytorch_model.bin.index.json), read without running anything:
//   <archive>/data.pkl    the state dict: a pickle (protocol 2) read by the restricted pickle machine
//   <archive>/data/<key>  the raw little-endian bytes of storage <key> (stored; torch aligns them to 64 bytes)
//   <archive>/version, <archive>/byteorder ("little"; newer torch), …
// data.pkl may name only collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter and the torch.<Type>Storage classes; storages arrive as persistent
// references ('storage', <Type>Storage, key, location, numel). Any other global is refused by name, and
// nothing is imported or called. Each tensor becomes a view into its mapped data/<key> entry once its
// shape, stride and storage offset are checked against the storage; non-contiguous tensors are refused.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/tensor_set.h"

namespace groak {

// Whether parse_torch_zip checks data.pkl against the CRC-32 of its zip entry. The storages' CRCs are never
// checked: that would read every byte of a 600 GB download at load time (safetensors has no checksum either).
enum class PickleCrc : uint8_t { Verify, Skip /* fuzzing: mutated pickles keep reaching the reader */ };

// Buffer-level entry (also the fuzz target): the tensors of the torch.save archive data[0, size), sorted by
// name, as views into the buffer. `file` names the source in errors and is copied into each view. Throws
// groak::Error: for the legacy (pre-zip) format, a compressed archive, a refused global, a storage that does
// not hold the tensor, a non-contiguous tensor, …; never reads outside the buffer.
std::vector<TensorView> parse_torch_zip(const uint8_t* data, size_t size, const std::string& file,
                                        PickleCrc crc = PickleCrc::Verify);

// One mapped .bin file. Throws groak::Error.
TensorFile open_torch_file(const std::string& path);

// pytorch_model.bin, pytorch_model-0000K-of-0000N.bin + pytorch_model.bin.index.json.
extern const ShardedFormat kTorchBinFormat;

}  // namespace groak
