// Constrained output on the server: the grammar a request asks for (OpenAI's response_format, llama-server's
// grammar and json_schema fields), compiled once per text and shared by the requests that send it again.
#pragma once
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "grammar/matcher.h"

namespace groak {

// The GBNF a request's body asks for, "" for none: response_format {"type": "json_object"} or
// {"type": "json_schema", "json_schema": {"schema": {...}}}, "grammar" (GBNF text) or "json_schema" (a
// schema). Parse the body as ordered_json so properties come in the schema's order. Throws ApiError(400)
// naming the field when it is malformed, asks for two constraints at once, or cannot be enforced.
struct RequestedGrammar {
  std::string gbnf;   // "" for none
  std::string field;  // the field that asked for it (for errors)
};
RequestedGrammar requested_grammar(const nlohmann::ordered_json& body);

// Compiled grammars by their GBNF text, the least recently used dropped past 32 of them or past 256 MiB
// of their caches (each grammar also bounds its own: grammar/matcher.cpp). Thread-safe.
class GrammarCache {
 public:
  static constexpr size_t kEntries = 32;
  static constexpr size_t kDefaultBytes = size_t{256} << 20;
  explicit GrammarCache(std::shared_ptr<const TokenVocab> vocab, size_t max_bytes = kDefaultBytes)
      : vocab_(std::move(vocab)), max_bytes_(max_bytes) {}
  // Throws ApiError(400) naming `field` when the grammar is invalid or cannot start with any token.
  std::shared_ptr<CompiledGrammar> get(const std::string& gbnf, const std::string& field);

 private:
  std::shared_ptr<const TokenVocab> vocab_;
  size_t max_bytes_;
  std::mutex mu_;
  std::list<std::string> order_;  // most recent first
  std::unordered_map<std::string, std::pair<std::shared_ptr<CompiledGrammar>, std::list<std::string>::iterator>> map_;
};

}  // namespace groak
