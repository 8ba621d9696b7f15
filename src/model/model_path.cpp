#include "model/model_path.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/share_set.h"

namespace groak {

namespace fs = std::filesystem;

std::string model_id_of(const std::string& model_path) {
  fs::path p = fs::path(model_path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "ckpt-0") p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() ? "grok-1" : name;
}

bool has_random_weights(const std::string& model_path) {
  // A GGUF (or a share set) made by groak from such a model says so in its metadata.
  const std::string gguf = lead_file(model_path);
  if (is_gguf_file(gguf)) {
    try {
      return GgufFile::open(gguf).get_bool(kRandomWeightsKey, false);
    } catch (const std::exception&) {
      return false;  // a damaged file is reported by whatever loads it
    }
  }
  fs::path p(model_path);
  for (fs::path dir : {p, p.parent_path(), p.parent_path().parent_path()}) {
    std::error_code ec;
    if (dir.empty() || !fs::is_regular_file(dir / "config.json", ec)) continue;
    std::ifstream in(dir / "config.json", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    try {
      auto j = nlohmann::json::parse(text.str());
      // groak synth and shared/tools/gen_grok.py draw weights; groak convert says whether its source did.
      if (!j.is_object() || !j.contains("generator")) return false;
      const auto& g = j["generator"];
      const auto said = g.is_object() ? g.find("random_weights") : g.end();
      return said == g.end() || !said->is_boolean() || said->get<bool>();
    } catch (const std::exception&) {
      return false;
    }
  }
  return false;
}

}  // namespace groak
