// libFuzzer target: the GBNF parser on arbitrary text, and what it accepts run through the matcher (a few
// greedy steps over a byte vocabulary): parse or GrammarError, never a crash, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "grammar/gbnf.h"
#include "grammar/matcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const groak::TokenVocab> vocab = [] {
    std::vector<std::string> bytes{""};
    for (int b = 1; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b)));
    bytes.push_back("ab");
    bytes.push_back("\xE2\x82\xAC");
    return std::make_shared<const groak::TokenVocab>(std::move(bytes), 0);
  }();
  try {
    auto g = std::make_shared<groak::CompiledGrammar>(
        groak::parse_gbnf(std::string(reinterpret_cast<const char*>(data), size)), vocab);
    groak::CompiledGrammar::Ref r = g->start();
    for (int step = 0; step < 8; ++step) {
      const auto mask = g->mask(r);
      int32_t pick = -1;
      for (int32_t id = 1; id < vocab->size() && pick < 0; ++id)
        if (((*mask)[static_cast<size_t>(id) / 64] >> (id % 64)) & 1) pick = id;
      if (pick < 0) break;
      if (!g->advance(r, pick)) __builtin_trap();  // the mask allowed it
    }
  } catch (const groak::GrammarError&) {
  }
  return 0;
}
