// `groak synth`: writes a synthetic checkpoint with Grok-1's architecture in EXACTLY xAI's raw format
// (ckpt-0/tensorNNNNN_000 pickles + config.json), with random but non-degenerate weights drawn like
// shared/tools/gen_grok.py draws them. Deterministic in (config, seed); memory stays at a few MB for
// any size because payloads are generated chunk by chunk while they are written.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace groak {

// "tiny", "tiny-12l", "demo", "small-k", "real-vocab", "grok1-2l".
std::vector<std::string> synth_preset_names();
// Throws groak::Error listing the valid names.
Config synth_preset(const std::string& name);

// One file of ckpt-0, in file order.
struct SynthTensor {
  int64_t index = 0;                  // ckpt-0/tensor{index:05}_000
  std::string path;                   // haiku parameter path, e.g. transformer/decoder_layer_0/moe/linear/w
  std::vector<int64_t> shape;         // the float32 array, or the int8 weight of a QuantizedWeight8bit
  std::vector<int64_t> scales_shape;  // bf16 scales of a QuantizedWeight8bit; empty for float32 arrays
  bool quantized() const { return !scales_shape.empty(); }
};

// The 2 + 12 * num_layers files in checkpoint order (layers in lexicographic order of their number).
// Throws groak::Error if the config cannot be laid out (e.g. row-parallel inputs not divisible by 8).
std::vector<SynthTensor> synth_plan(const Config& cfg);
std::string synth_tensor_file_name(int64_t index);  // "tensor00003_000"

using SynthProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// Writes out_dir/ckpt-0/tensorNNNNN_000 and out_dir/config.json (config.json last). Each file is
// written under a temporary name and renamed when complete. Throws groak::Error naming the file on
// any I/O failure. `progress` (may be empty) is called with pickle bytes written so far; whatever it
// throws (e.g. on Ctrl-C) ends the job, and every file this call wrote is removed again.
void write_synthetic_checkpoint(const Config& cfg, const std::string& preset_name, uint64_t seed,
                                const std::string& out_dir, const SynthProgress& progress);

// Makes out_dir ready for write_synthetic_checkpoint, so that old and new tensor files never mix: an
// absent or empty folder is fine; a non-empty one is refused (groak::Error) unless `force`, which removes
// what a checkpoint would replace (ckpt-0/ and config.json) and keeps everything else (a tokenizer).
void prepare_synth_folder(const std::string& out_dir, bool force);

}  // namespace groak
