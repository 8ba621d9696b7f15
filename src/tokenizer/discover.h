// Which tokenizer goes with a model: the one named on the command line, else the vocabulary inside a
// GGUF, else tokenizer.model beside ckpt-0/ or in its parent folder (where xAI's download puts it).
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace groak {

// Throws groak::Error listing where it looked when there is none.
Tokenizer open_tokenizer(const std::string& explicit_path, const std::string& model_path);

// The tokenizer file a command reads for this model (given or found beside it); empty when the model
// carries its own (a GGUF) or none is found. Outputs may never replace it.
std::string tokenizer_file(const std::string& explicit_path, const std::string& model_path);

}  // namespace groak
