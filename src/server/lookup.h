// Prompt-lookup drafting (llama.cpp's lookup decoding, no draft model): text being generated often
// repeats text already in the context (code or JSON being edited, a quoted passage), so the tokens that
// followed the last earlier occurrence of the context's final n tokens are a cheap guess at the next
// ones. The scheduler runs the guesses in the same pass as the real token and keeps those the sampler
// would have picked anyway (server/scheduler.h), so the output is the same as without drafting.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace groak {

// At most `max` tokens that followed the most recent earlier occurrence of history's last n tokens, for
// the longest n from `ngram` down to 2 (1 when ngram is 1) that occurs; empty when none does.
std::vector<int32_t> lookup_draft(std::span<const int32_t> history, int ngram, int64_t max);

}  // namespace groak
