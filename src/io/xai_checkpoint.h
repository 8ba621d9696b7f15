// xAI's raw Grok-1 checkpoint (spec §7): ckpt-0/tensorNNNNN_000, one pickle per parameter, in the order of
// the flattened (sorted) Haiku parameter tree, plus config.json beside ckpt-0/. Every file is mapped and
// parsed with the restricted pickle reader; tensors are views into the mappings.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "io/xai_pickle.h"
#include "model/config.h"

namespace groak {

struct XaiTensor {
  std::string path;      // Haiku parameter path, e.g. "transformer/decoder_layer_10/moe/linear/w"
  std::string file;      // full path of its tensorNNNNN_000
  PickledTensor t;       // shapes, dtypes, payload ranges
  const uint8_t* base;   // start of the file's mapping
};

// Called after each file: files done/total, bytes done/total.
using LoadProgress = std::function<void(size_t, size_t, uint64_t, uint64_t)>;

class XaiCheckpoint {
 public:
  // model_path: the folder holding ckpt-0/, or ckpt-0/ itself. Throws groak::Error.
  static XaiCheckpoint open(const std::string& model_path, const LoadProgress& progress = {});
  // True if model_path looks like an xAI checkpoint (a ckpt-0 folder or a folder holding one).
  static bool detect(const std::string& model_path);

  const XaiTensor& find(const std::string& haiku_path) const;  // throws if absent

  Config config;
  bool config_from_file = false;
  std::string root;      // folder holding ckpt-0/
  std::string ckpt_dir;  // .../ckpt-0
  std::vector<XaiTensor> tensors;  // file order
  std::vector<MappedFile> maps;    // one per file, same order
};

// Haiku parameter paths in file order for a model of num_layers layers (layers in lexicographic order
// of their decimal number: 0, 1, 10, 11, …, 19, 2, 20, …).
std::vector<std::string> xai_file_order(int64_t num_layers);
// The 12 per-layer parameter names, in file order, relative to transformer/decoder_layer_N/.
const std::vector<std::string>& xai_layer_params();

}  // namespace groak
