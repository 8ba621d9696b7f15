// Opens a model from any supported location and checks it against its configuration.
#pragma once
#include <string>

#include "io/xai_checkpoint.h"
#include "model/weights.h"

namespace groak {

// path: an xAI checkpoint (folder holding ckpt-0/, or ckpt-0/ itself), a GGUF file (any part of a
// split set) or a Hugging Face folder (config.json + safetensors or torch.save .bin files, single or sharded;
// or one of those files). Throws groak::Error.
Model load_model(const std::string& path, const LoadProgress& progress = {});

// The format-specific loaders behind load_model.
Model load_gguf(const std::string& path, const LoadProgress& progress);
// path: a Hugging Face folder, or one of its weight or index files (the whole folder is loaded).
Model load_hf(const std::string& path, const LoadProgress& progress);
bool is_hf_model(const std::string& path);  // a folder holding, or a file named like, HF weights

}  // namespace groak
