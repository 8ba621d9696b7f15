// `groak convert`: any readable model (xAI raw, GGUF, Hugging Face) -> a GGUF file for llama.cpp,
// streamed tensor by tensor and row block by row block so memory stays bounded for any model size.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/quant.h"
#include "model/weights.h"
#include "tokenizer/vocab_model.h"

namespace groak {

struct ConvertOptions {
  std::string out;                  // FILE.gguf (with a split: FILE-00001-of-0000N.gguf …)
  GgmlType type = GgmlType::Q8_0;   // type of the 2-D weights (norms and router stay f32)
  uint64_t split_max_bytes = 0;     // 0 = one file
  const VocabSpec* vocab = nullptr; // tokenizer metadata to embed (may be null: none)
  std::string name = "grok";        // general.name
  std::vector<std::string> inputs;  // files the output must never replace (the model's, the tokenizer)
  bool allow_requantize = false;    // a quantized source may be quantized again (lossy twice)
};

struct ConvertReport {
  std::vector<std::string> files;
  uint64_t bytes = 0;
  uint64_t exact_int8_blocks = 0;    // xAI int8 -> q8_0 blocks kept bit-exact
  uint64_t requantized_blocks = 0;   // xAI int8 -> q8_0 blocks that had to be re-rounded
  std::vector<std::string> fallbacks;  // tensors stored in another type than asked, and why
};

using ConvertProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// Parses "f32", "q4_k", … (throws groak::Error listing the accepted names).
GgmlType parse_convert_type(const std::string& s);
const char* convert_type_names();

ConvertReport convert_model(const Model& model, const ConvertOptions& opt, const ConvertProgress& progress = {});

}  // namespace groak
