// xAI's raw checkpoint layout (spec §7): a ckpt-0/ folder of tensorNNNNN_000 files, one pickle per
// parameter. This reader knows the folder and the pickles, not the model: which parameter each file
// holds, and how many files there must be, is the model loader's business (model/name_map.h, config).
// Every file is mapped and parsed with the restricted pickle reader; tensors are views into the mappings.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "io/xai_pickle.h"

namespace groak {

struct XaiTensor {
  std::string file;      // full path of its tensorNNNNN_000
  PickledTensor t;       // shapes, dtypes, payload ranges
  const uint8_t* base;   // start of the file's mapping
};

// Called after each file: files done/total, bytes done/total.
using LoadProgress = std::function<void(size_t, size_t, uint64_t, uint64_t)>;

class XaiCheckpoint {
 public:
  // model_path: the folder holding ckpt-0/, or ckpt-0/ itself. Lists the tensor files without reading
  // them. Throws groak::Error for a path that is not such a folder or holds other hosts' files.
  static XaiCheckpoint locate(const std::string& model_path);
  // True if model_path looks like an xAI checkpoint (a ckpt-0 folder or a folder holding one).
  static bool detect(const std::string& model_path);

  // Maps and parses files 0 … count-1 (all must be present: check `present` first), in index order.
  void map(size_t count, const LoadProgress& progress = {});

  std::string file_path(size_t index) const;  // ckpt_dir/tensorNNNNN_000, present or not

  std::string root;      // folder holding ckpt-0/ (where config.json lives, if anywhere)
  std::string ckpt_dir;  // .../ckpt-0
  std::map<size_t, std::string> present;  // file index → path, as found on disk
  std::vector<XaiTensor> tensors;         // after map(): by file index
  std::vector<MappedFile> maps;           // one per file, same order
};

std::string xai_tensor_file_name(size_t index);  // "tensor00003_000"

}  // namespace groak
