// `groak convert`: any readable model (xAI raw, GGUF, Hugging Face) -> a GGUF file for llama.cpp,
// streamed tensor by tensor and row block by row block so memory stays bounded for any model size.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "convert/imatrix.h"
#include "convert/quant_plan.h"
#include "io/gguf_writer.h"
#include "kernels/quant.h"
#include "model/weights.h"
#include "tokenizer/vocab_model.h"

namespace groak {

struct ConvertOptions {
  std::string out;                  // FILE.gguf (with a split: FILE-00001-of-0000N.gguf …)
  QuantPlanOptions plan;            // the weights' types (norms, router: f32); Q8_0 by default
  const Imatrix* imatrix = nullptr; // importance matrix (checked against the model), or none
  std::string imatrix_file;         // its name, recorded in the output's metadata
  int threads = 0;                  // 0 = every core
  uint64_t split_max_bytes = 0;     // 0 = one file
  const VocabSpec* vocab = nullptr; // tokenizer metadata to embed (may be null: none)
  std::string name = "grok";        // general.name
  std::vector<std::string> inputs;  // files the output must never replace (the model's, the tokenizer)
  bool allow_requantize = false;    // a quantized source may be quantized again (lossy twice)
  bool keep_types = false;          // a GGUF source's matrices keep their types (copied); others follow the plan
  std::function<void(GgufWriter&)> extra_metadata;  // more keys after the model's (groak shard's share keys)
};

struct ConvertReport {
  std::vector<std::string> files;
  uint64_t bytes = 0;
  uint64_t exact_int8_blocks = 0;    // xAI int8 -> q8_0 blocks kept bit-exact
  uint64_t requantized_blocks = 0;   // xAI int8 -> q8_0 blocks that had to be re-rounded
  std::vector<std::string> fallbacks;  // tensors stored in another type than asked, and why
  std::vector<std::pair<std::string, GgmlType>> types;  // every tensor's type, in file order
};

using ConvertProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// Rows [o0, o0 + n) of W (output units), dequantised: out [n, n_in]. For an xAI int8 source also its raw
// int8 values transposed (qt [n, n_in]: scratch the caller provides; unused for other formats).
void read_rows(const Matrix& m, int64_t o0, int64_t n, float* out, int8_t* qt);

// Everything is checked (types, imatrix, row lengths, requantizing) before any output is created.
ConvertReport convert_model(const Model& model, const ConvertOptions& opt, const ConvertProgress& progress = {});

}  // namespace groak
