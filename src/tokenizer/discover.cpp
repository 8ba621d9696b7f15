#include "tokenizer/discover.h"

#include <vector>

#include "io/gguf.h"
#include "io/share_set.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/vocab_model.h"
#include "util/error.h"

namespace groak {

Tokenizer open_tokenizer(const std::string& explicit_path, const std::string& model_folder_or_file) {
  if (!explicit_path.empty()) return Tokenizer::load(explicit_path);
  // A share set (groak shard) keeps the tokenizer in rank 0's file.
  const std::string model_path = lead_file(model_folder_or_file);
  if (is_gguf_file(model_path)) {
    GgufFile g = GgufFile::open(model_path);
    if (auto v = gguf_vocab(g)) return tokenizer_from_vocab(*v);
    throw Error(model_path + ": this GGUF carries no tokenizer (tokenizer.ggml.tokens); pass --tokenizer PATH/tokenizer.model");
  }
  std::vector<std::string> looked;
  const std::string found = model_path.empty() ? "" : find_tokenizer(model_path, &looked);
  if (found.empty()) {
    std::string msg = "no tokenizer found";
    if (!looked.empty()) {
      msg += "; looked for:";
      for (const auto& l : looked) msg += "\n  " + l;
    }
    throw Error(msg + "\npass --tokenizer PATH/tokenizer.model (xAI's download has it at the root of the grok-1 repo)");
  }
  return Tokenizer::load(found);
}

std::string tokenizer_file(const std::string& explicit_path, const std::string& model_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (is_gguf_file(model_path) || share_set_ranks(model_path) > 0) return {};
  return find_tokenizer(model_path, nullptr);
}

}  // namespace groak
