// An Inspector's recording as JSON: the data of `groak inspect`'s report (inspect.json, inlined in
// report.html) and of the server's `inspect` extension. Numbers are rounded to 4 decimals (the .npy
// files keep full precision).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/inspect.h"

namespace groak {

// Full attention maps go into the JSON only up to this many floats (the lower triangle is written, so
// about half); past it the report draws each row from its top positions.
inline constexpr int64_t kReportFullMaxFloats = int64_t{1} << 20;

// pieces[id]: a printable text of each token id the recording mentions (the prompt's and the lens's), or
// empty to give ids only. Positions [0, in.recorded).
nlohmann::json inspect_json(const Inspector& in, const std::vector<int32_t>& tokens,
                            const std::vector<std::string>& pieces);

// The report page's copy of inspect_json(in, …): per (layer, head) means of the attention statistics
// (mean_entropy, mean_sink, mean_saturated [N][H]) instead of one value per row, and without full maps the
// kReportAttentionTop largest weights of each row instead of kAttentionTop; inspect.json and the .npy
// files keep everything. So a long prompt's page stays small: 2,048 tokens with grok1-2l's 2 × 48 heads
// shrink from about 15 MB to 6 MB.
inline constexpr int64_t kReportAttentionTop = 2;
nlohmann::json report_json(nlohmann::json j, const Inspector& in);

// One position, for a chat page's token panel: {"position", "experts": [L][K], "gates": [L][K],
// "lens": [{"layer", "ids", "pieces", "probs"}]}.
// piece(id): the printable text of a token id. Null for a position outside [0, in.P).
nlohmann::json inspect_token_json(const Inspector& in, int64_t p, const std::function<std::string(int32_t)>& piece);

}  // namespace groak
