// Finding NaN/Inf in a model's weights, so that a broken file is named by tensor instead of showing up as
// empty text (issue 9). Scanning every weight reads the whole model; the norms are scanned at load.
#pragma once
#include <string>
#include <vector>

#include "model/weights.h"

namespace groak {

// One line per weight that holds non-finite values: "layer 3 moe_linear_v expert 2: 5 NaN/Inf of 4096".
// Norms and router only (f32, small: cheap at load) unless `all` (every matrix: reads every weight byte).
std::vector<std::string> nonfinite_weights(const Model& model, bool all);

}  // namespace groak
