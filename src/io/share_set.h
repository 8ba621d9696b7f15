// A model split by `groak shard` into the shares of N ranks: one GGUF per rank, rank-R-of-N.gguf in one
// folder (docs/distributed.md). Each file holds its rank's slices with the share's local sizes in the
// grok.* metadata, plus the keys below; rank 0's also holds the tokenizer.
#pragma once
#include <string>

namespace groak {

std::string share_file_name(int rank, int ranks);
// `path` itself unless it is a folder holding a share set; then this rank's file. Throws groak::Error
// naming the file when the set was made for another number of ranks or this rank's file is missing.
std::string share_file(const std::string& path, int rank, int ranks);
// Rank 0's file (the one with the tokenizer) when `path` is a share-set folder; else `path`.
std::string lead_file(const std::string& path);
// The number of ranks a share-set folder was made for; 0 when `path` is not one, -1 when it holds the
// files of several sets.
int share_set_ranks(const std::string& path);

// GGUF metadata of a share file (besides the model's own, which hold the share's local sizes).
inline constexpr const char* kShardRankKey = "groak.shard.rank";
inline constexpr const char* kShardCountKey = "groak.shard.count";
inline constexpr const char* kShardVocabKey = "groak.shard.vocab_size";  // the whole vocabulary
inline constexpr const char* kShardSourceKey = "groak.shard.source";      // the whole model's model_fingerprint()

}  // namespace groak
