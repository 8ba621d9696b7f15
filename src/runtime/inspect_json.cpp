#include "runtime/inspect_json.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace groak {

using nlohmann::json;

namespace {
constexpr double kDecimals = 1e4;
double r4(double x) { return std::round(x * kDecimals) / kDecimals; }

const std::string& piece(const std::vector<std::string>& pieces, int32_t id) {
  static const std::string none;
  return id >= 0 && static_cast<size_t>(id) < pieces.size() ? pieces[static_cast<size_t>(id)] : none;
}

// v[base + i] for i in [0, n), rounded.
template <class T>
json row(const std::vector<T>& v, int64_t base, int64_t n) {
  json a = json::array();
  for (int64_t i = 0; i < n; ++i) {
    const T x = v[static_cast<size_t>(base + i)];
    if constexpr (std::is_floating_point_v<T>)
      a.push_back(r4(x));
    else
      a.push_back(x);
  }
  return a;
}
}  // namespace

json inspect_json(const Inspector& in, const std::vector<int32_t>& tokens, const std::vector<std::string>& pieces) {
  const int64_t P = in.recorded, L = in.L, N = in.N, H = in.H, E = in.E, K = in.K, A = kAttentionTop;
  json j;
  j["positions"] = P;
  j["num_layers"] = L;
  j["num_heads"] = H;
  j["num_experts"] = E;
  j["num_selected_experts"] = K;
  j["attention_layers"] = in.layers;
  json ids = json::array(), txt = json::array();
  for (int64_t p = 0; p < P && p < static_cast<int64_t>(tokens.size()); ++p) {
    ids.push_back(tokens[static_cast<size_t>(p)]);
    txt.push_back(piece(pieces, tokens[static_cast<size_t>(p)]));
  }
  j["tokens"] = ids;
  j["pieces"] = txt;
  json probs = json::array(), chosen = json::array(), ent = json::array(), margin = json::array(),
       rms = json::array();
  for (int64_t p = 0; p < P; ++p) {
    json pr = json::array(), ch = json::array(), en = json::array(), ma = json::array(), rm = json::array();
    for (int64_t l = 0; l < L; ++l) {
      pr.push_back(row(in.router_probs, (p * L + l) * E, E));
      ch.push_back(row(in.chosen, (p * L + l) * K, K));
      en.push_back(r4(in.router_entropy(p, l)));
      ma.push_back(r4(in.routing_margin(p, l)));
      rm.push_back(row(in.residual_rms, (p * L + l) * kResidualPoints, kResidualPoints));
    }
    probs.push_back(pr);
    chosen.push_back(ch);
    ent.push_back(en);
    margin.push_back(ma);
    rms.push_back(rm);
  }
  j["router"] = {{"probs", probs}, {"chosen", chosen}, {"entropy", ent}, {"margin", margin}};
  j["residual_rms"] = {{"points", {"layer_input", "after_attention", "layer_output"}}, {"rms", rms}};

  json a_ent = json::array(), a_sink = json::array(), a_sat = json::array(), a_pos = json::array(),
       a_w = json::array();
  const bool attention = !in.attn_entropy.empty();  // recorded (InspectOptions::attention)
  for (int64_t p = 0; p < P && attention; ++p) {
    json e1 = json::array(), s1 = json::array(), t1 = json::array(), p1 = json::array(), w1 = json::array();
    for (int64_t n = 0; n < N; ++n) {
      const int64_t at = (p * N + n) * H;
      e1.push_back(row(in.attn_entropy, at, H));
      s1.push_back(row(in.attn_sink, at, H));
      t1.push_back(row(in.attn_saturated, at, H));
      json p2 = json::array(), w2 = json::array();
      for (int64_t h = 0; h < H; ++h) {
        p2.push_back(row(in.attn_top_pos, (at + h) * A, A));
        w2.push_back(row(in.attn_top_w, (at + h) * A, A));
      }
      p1.push_back(p2);
      w1.push_back(w2);
    }
    a_ent.push_back(e1);
    a_sink.push_back(s1);
    a_sat.push_back(t1);
    a_pos.push_back(p1);
    a_w.push_back(w1);
  }
  json full = nullptr;
  if (!in.attn_full.empty() && N * H * P * P <= kReportFullMaxFloats) {
    full = json::array();
    for (int64_t n = 0; n < N; ++n) {
      json heads = json::array();
      for (int64_t h = 0; h < H; ++h) {
        json rows = json::array();
        for (int64_t p = 0; p < P; ++p) rows.push_back(row(in.attn_full, ((n * H + h) * in.P + p) * in.P, p + 1));
        heads.push_back(rows);
      }
      full.push_back(heads);
    }
  }
  j["attention"] = nullptr;
  if (attention)
    j["attention"] = {{"entropy", a_ent}, {"sink", a_sink}, {"saturated", a_sat},
                      {"top_pos", a_pos}, {"top_w", a_w},   {"full", full}};

  json l_ids = json::array(), l_txt = json::array(), l_pr = json::array();
  for (int64_t p = 0; p < P; ++p) {
    json i1 = json::array(), t1 = json::array(), p1 = json::array();
    for (int64_t n = 0; n < N; ++n) {
      const int64_t at = (p * N + n) * in.lens_k;
      i1.push_back(row(in.lens_ids, at, in.lens_k));
      p1.push_back(row(in.lens_probs, at, in.lens_k));
      json t2 = json::array();
      for (int64_t k = 0; k < in.lens_k; ++k) t2.push_back(piece(pieces, in.lens_ids[static_cast<size_t>(at + k)]));
      t1.push_back(t2);
    }
    l_ids.push_back(i1);
    l_txt.push_back(t1);
    l_pr.push_back(p1);
  }
  j["lens"] = {{"top", in.lens_k}, {"ids", l_ids}, {"pieces", l_txt}, {"probs", l_pr}};
  return j;
}

json report_json(json j, const Inspector& in) {
  json& att = j["attention"];
  if (att.is_null()) return j;
  const int64_t P = std::max<int64_t>(in.recorded, 1), N = in.N, H = in.H;
  json me = json::array(), ms = json::array(), mt = json::array();
  for (int64_t n = 0; n < N; ++n) {
    json e1 = json::array(), s1 = json::array(), t1 = json::array();
    for (int64_t h = 0; h < H; ++h) {
      double e = 0, sink = 0, sat = 0;
      for (int64_t p = 0; p < in.recorded; ++p) {
        const auto at = static_cast<size_t>((p * N + n) * H + h);
        e += in.attn_entropy[at];
        sink += in.attn_sink[at];
        sat += in.attn_saturated[at];
      }
      e1.push_back(r4(e / static_cast<double>(P)));
      s1.push_back(r4(sink / static_cast<double>(P)));
      t1.push_back(r4(sat / static_cast<double>(P)));
    }
    me.push_back(e1);
    ms.push_back(s1);
    mt.push_back(t1);
  }
  for (const char* k : {"entropy", "sink", "saturated"}) att.erase(k);
  att["mean_entropy"] = me;
  att["mean_sink"] = ms;
  att["mean_saturated"] = mt;
  if (att["full"].is_null())
    for (const char* k : {"top_pos", "top_w"})
      for (json& per_p : att[k])
        for (json& per_layer : per_p)
          for (json& row : per_layer) row.erase(row.begin() + kReportAttentionTop, row.end());
  return j;
}

json inspect_token_json(const Inspector& in, int64_t p, const std::function<std::string(int32_t)>& piece) {
  if (p < 0 || p >= in.P) return nullptr;  // a position the recorder was not sized for
  json experts = json::array(), gates = json::array(), lens = json::array();
  for (int64_t l = 0; l < in.L; ++l) {
    const json ch = row(in.chosen, (p * in.L + l) * in.K, in.K);
    json g = json::array();
    for (int32_t e : ch) g.push_back(r4(in.router_probs[static_cast<size_t>((p * in.L + l) * in.E + e)]));
    experts.push_back(ch);
    gates.push_back(g);
  }
  for (int64_t n = 0; n < in.N; ++n) {
    const int64_t at = (p * in.N + n) * in.lens_k;
    json t = json::array();
    for (int64_t k = 0; k < in.lens_k; ++k) t.push_back(piece(in.lens_ids[static_cast<size_t>(at + k)]));
    lens.push_back({{"layer", in.layers[static_cast<size_t>(n)]},
                    {"ids", row(in.lens_ids, at, in.lens_k)},
                    {"pieces", t},
                    {"probs", row(in.lens_probs, at, in.lens_k)}});
  }
  return {{"position", p}, {"experts", experts}, {"gates", gates}, {"lens", lens}};
}

}  // namespace groak
