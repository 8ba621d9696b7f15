// What a model's location says about it, before or besides loading it.
#pragma once
#include <string>

namespace groak {

// The id clients see: the model folder's (or file's) name; "ckpt-0" stands for its parent folder.
std::string model_id_of(const std::string& model_path);

// True for a model written by `groak synth` or gen_grok.py (its config.json names the generator), or by
// `groak convert --format xai` from one of those (generator.random_weights), or a GGUF groak wrote from one
// (kRandomWeightsKey): random weights.
bool has_random_weights(const std::string& model_path);
// The GGUF key groak convert and groak shard set (true) when their source has random weights.
inline constexpr const char* kRandomWeightsKey = "groak.random_weights";

}  // namespace groak
