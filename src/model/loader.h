// Opens a model from any supported location and checks it against its configuration.
#pragma once
#include <string>

#include "io/xai_checkpoint.h"
#include "model/weights.h"

namespace groak {

// path: an xAI checkpoint (folder holding ckpt-0/, or ckpt-0/ itself), a GGUF file (any part of a
// split set) or a Hugging Face folder (config.json + safetensors). Throws groak::Error.
Model load_model(const std::string& path, const LoadProgress& progress = {});

// The format-specific loaders behind load_model.
Model load_gguf(const std::string& path, const LoadProgress& progress);
Model load_hf(const std::string& dir, const LoadProgress& progress);

}  // namespace groak
