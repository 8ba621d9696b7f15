// Opens a model from any supported location and checks it against its configuration.
#pragma once
#include <string>

#include "io/xai_checkpoint.h"
#include "model/weights.h"

namespace groak {

// path: an xAI checkpoint (folder holding ckpt-0/, or ckpt-0/ itself). Throws groak::Error.
Model load_model(const std::string& path, const LoadProgress& progress = {});

}  // namespace groak
