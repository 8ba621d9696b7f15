// `groak convert --format xai`: any readable model -> xAI's raw checkpoint (ckpt-0/tensorNNNNN_000 pickles
// and config.json), byte for byte the format of the 318 GB original (GROK1.md §7-8). Weights become int8
// with bf16 scales the way xAI's are laid out: one scale per output column, or per (block of in/8 input
// rows, output column) for the row-parallel attention output and expert down projections (§7.1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "model/weights.h"

namespace groak {

struct XaiExportReport {
  std::vector<std::string> files;  // ckpt-0 files, config.json, tokenizer.model (when copied)
  uint64_t bytes = 0;
  double max_abs_error = 0;        // largest |dequantised - source| over every int8 weight
};

// Symmetric absmax int8 of one [n_in, n_out] weight (as xAI's): for each of `blocks` equal row blocks and
// each output o, s = bf16(max |w| / 127) and q = round(w / s) clamped to ±127 (s = 0: q = 0).
// w_rows: the source as output rows [n_out, n_in]; q: [n_in, n_out] or null; scales: bf16 [blocks, n_out].
// Returns the largest |q·s - w|. Throws groak::Error on a weight that is not finite.
double quantize_xai_int8(const float* w_rows, int64_t n_in, int64_t n_out, int64_t blocks, int8_t* q,
                         uint16_t* scales);

struct XaiExportOptions {
  std::string out_dir;          // new or empty: gets ckpt-0/, config.json and tokenizer.model
  std::string tokenizer;        // copied to out_dir/tokenizer.model; empty: none
  bool random_weights = false;  // the source was synthetic: config.json says so (groak's banners read it)
};

// Writes out_dir/ckpt-0/… and out_dir/config.json (last), and copies the tokenizer. Memory: one matrix of
// one expert at a time, as f32. Files are written as NAME.tmp and renamed when complete; on an error or an
// interrupt (thrown by `progress`) every file this call wrote is removed again.
XaiExportReport export_xai_checkpoint(const Model& model, const XaiExportOptions& opt,
                                      const ConvertProgress& progress = {});

}  // namespace groak
