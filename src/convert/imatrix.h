// The importance matrix (llama.cpp's "imatrix"): for every weight matrix, the mean of x² of each input
// column over a calibration text, x being the activations the matrix multiplies. Quantizers weight their
// rounding error by it, so the columns that carry large activations are kept more exactly.
//
// The file is llama.cpp's imatrix.dat (the format of llama-imatrix / llama-quantize --imatrix), so files
// move between the two tools both ways (docs/FORMATS.md). All little-endian int32 / float32:
//   n_entries
//   n_entries × { name_len, name[name_len], ncall, nval, values[nval] }   values = mean x² · ncall
//   last_call, dataset_len, dataset[dataset_len]                          (optional trailer)
// An expert tensor (blk.L.ffn_*_exps.weight) has nval = n_in · n_experts: expert e's columns at e · n_in.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/context.h"
#include "model/weights.h"

namespace groak {

struct Imatrix {
  std::map<std::string, std::vector<float>> entries;  // GGUF tensor name -> mean x² [n_experts · n_in]
  int32_t chunks = 0;                                  // chunks of text it was computed on (last_call)
  std::string dataset;                                 // the calibration text's file name
};

// Reads an imatrix.dat; every length is checked against the file size. Throws groak::Error naming the
// file and what is wrong. The values are divided by ncall in f32, as llama-quantize does.
Imatrix read_imatrix(const std::string& path);
// Writes `m` (values multiplied back by `ncall` per entry = m.chunks) to path (as path.tmp, renamed when
// complete; never one of `inputs`).
void write_imatrix(const std::string& path, const Imatrix& m, const std::vector<std::string>& inputs = {});

// Checks an imatrix against a model before anything is written: every entry names a weight of this
// model with the same input width and expert count. Throws naming the first entry that does not fit.
void check_imatrix(const Imatrix& m, const Model& model);

// Collects the imatrix while the model runs: installed as the context's matmul observer, it maps each
// product's weight (by address) to its GGUF name and expert, and accumulates Σ x² and counts per column.
// The router and the output head are not collected (llama-imatrix skips them by default: neither is
// quantized with one here).
class ImatrixCollector : public MatmulObserver {
 public:
  explicit ImatrixCollector(const Model& model);
  void on_matmul(const Matrix& w, const float* x, int64_t rows) override;
  // Counts one chunk of text (llama.cpp's ncall): call after each chunk's forward passes.
  void end_chunk() { ++chunks_; }
  // The means so far. Columns of an expert that no token chose take the mean of the experts that were
  // chosen (llama-imatrix drops the whole tensor instead); `notes` says which.
  Imatrix result(const std::string& dataset, std::vector<std::string>* notes = nullptr) const;

 private:
  struct Target {
    std::string name;
    int64_t expert = 0, experts = 1;
  };
  struct Stats {
    std::vector<double> sum;      // [experts · n_in]
    std::vector<int64_t> count;   // [experts · n_in] (one count per column, as the file's counts)
  };
  std::unordered_map<const uint8_t*, Target> targets_;
  std::map<std::string, Stats> stats_;
  std::mutex mutex_;
  int32_t chunks_ = 0;
};

}  // namespace groak
