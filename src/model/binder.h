// How a format hands Grok-1's parameters to the model: each loader implements a WeightBinder that
// finds the tensor of a role (name_map.h), checks its shape against the configuration and returns a
// view. bind_weights() walks every parameter once, in model.py's terms.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/name_map.h"
#include "model/weights.h"

namespace groak {

class WeightBinder {
 public:
  virtual ~WeightBinder() = default;
  // A 2-D weight with logical shape [n_in, n_out] (layer -1 for the non-layer roles).
  virtual Matrix matrix(Role r, int64_t layer, int64_t n_in, int64_t n_out) = 0;
  // E experts of logical shape [n_in, n_out].
  virtual ExpertMatrices experts(Role r, int64_t layer, int64_t E, int64_t n_in, int64_t n_out) = 0;
  // A norm scale [n], as f32.
  virtual std::vector<float> vector(Role r, int64_t layer, int64_t n) = 0;
  // The output projection: `tied` (the embedding table) unless the file carries its own.
  virtual Matrix lm_head(const Matrix& tied) { return tied; }
};

Weights bind_weights(const Config& c, WeightBinder& b);
std::string shape_str(const std::vector<int64_t>& s);

}  // namespace groak
