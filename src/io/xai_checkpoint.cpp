#include "io/xai_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <cstdio>
#include <map>

#include "util/error.h"

namespace fs = std::filesystem;

namespace groak {

const std::vector<std::string>& xai_layer_params() {
  static const std::vector<std::string> names = {
      "moe/linear/w", "moe/linear_1/w", "moe/linear_v/w",
      "multi_head_attention/key/w", "multi_head_attention/linear/w", "multi_head_attention/query/w",
      "multi_head_attention/value/w",
      "rms_norm/scale", "rms_norm_1/scale", "rms_norm_2/scale", "rms_norm_3/scale",
      "router/w"};
  return names;
}

std::vector<std::string> xai_file_order(int64_t num_layers) {
  std::vector<std::string> order = {"language_model/in_out_embed/embeddings", "language_model/rms_norm/scale"};
  std::vector<std::string> layers;
  for (int64_t l = 0; l < num_layers; ++l) layers.push_back(std::to_string(l));
  std::sort(layers.begin(), layers.end());  // "/" sorts before digits: lexicographic on the number
  for (const auto& l : layers)
    for (const auto& p : xai_layer_params()) order.push_back("transformer/decoder_layer_" + l + "/" + p);
  return order;
}

namespace {

// Returns {root, ckpt_dir} or empty strings when path is not an xAI checkpoint.
std::pair<std::string, std::string> locate(const std::string& model_path) {
  std::error_code ec;
  fs::path p(model_path);
  if (!fs::is_directory(p, ec)) return {};
  if (fs::is_directory(p / "ckpt-0", ec)) return {p.string(), (p / "ckpt-0").string()};
  if (fs::exists(p / "tensor00000_000", ec) || p.filename() == "ckpt-0") {
    fs::path parent = fs::absolute(p, ec).parent_path();
    if (p.filename().empty()) parent = parent.parent_path();  // "ckpt-0/" with a trailing slash
    return {parent.string(), p.string()};
  }
  return {};
}

bool parse_tensor_name(const std::string& name, long* index, long* host) {
  // tensorNNNNN_HHH
  if (name.size() != 15 || name.rfind("tensor", 0) != 0 || name[11] != '_') return false;
  for (size_t i = 6; i < 15; ++i)
    if (i != 11 && !std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  *index = std::stol(name.substr(6, 5));
  *host = std::stol(name.substr(12, 3));
  return true;
}

std::string file_name(size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "tensor%05zu_000", index);
  return buf;
}

}  // namespace

bool XaiCheckpoint::detect(const std::string& model_path) { return !locate(model_path).first.empty(); }

XaiCheckpoint XaiCheckpoint::open(const std::string& model_path, const LoadProgress& progress) {
  XaiCheckpoint ck;
  std::error_code ec;
  if (!fs::exists(model_path, ec))
    throw Error(model_path + ": no such file or folder; pass --model the folder holding ckpt-0/ (or ckpt-0/ itself)");
  auto [root, dir] = locate(model_path);
  if (root.empty())
    throw Error(model_path + ": no ckpt-0/ folder here and no tensor00000_000 file; pass --model the folder "
                "holding ckpt-0/ (or ckpt-0/ itself)");
  ck.root = root;
  ck.ckpt_dir = dir;

  fs::path cfg_path = fs::path(root) / "config.json";
  if (fs::exists(cfg_path, ec)) {
    ck.config = load_config_json(cfg_path.string());
    ck.config_from_file = true;
  }  // else: Grok-1 defaults, checked against the files below

  const std::string cfg_origin =
      ck.config_from_file ? cfg_path.string() : std::string("the Grok-1 defaults (no config.json beside ckpt-0/)");
  // The expected count, computed before any list of names: a config.json claiming millions of layers
  // must not make us allocate for them.
  const size_t expected = 2 + 12 * static_cast<size_t>(ck.config.num_layers);

  // Inventory: every tensorNNNNN_HHH must be expected, every expected one present.
  std::map<long, std::string> present;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    long index = 0, host = 0;
    const std::string name = entry.path().filename().string();
    if (!parse_tensor_name(name, &index, &host)) continue;  // unrelated files are ignored
    if (host != 0)
      throw Error(entry.path().string() + ": host index " + std::to_string(host) +
                  " — groak reads single-host checkpoints (only _000 files); remove the extra file");
    if (static_cast<size_t>(index) >= expected)
      throw Error(entry.path().string() + ": extra file — " + cfg_origin + " gives " +
                  std::to_string(ck.config.num_layers) + " layers, i.e. " + std::to_string(expected) +
                  " files (tensor00000_000 … " + file_name(expected - 1) +
                  "); fix num_layers in config.json or remove the file");
    present[index] = entry.path().string();
  }
  if (ec) throw Error(dir + ": cannot list the folder (" + ec.message() + ")");
  if (present.size() < expected) {  // name the first missing file (its index is at most present.size())
    size_t i = 0;
    while (present.count(static_cast<long>(i))) ++i;
    const std::string role = i < 2 ? xai_file_order(0)[i] : "a tensor of the layers";
    throw Error((fs::path(dir) / file_name(i)).string() + ": missing (it should hold " +
                (expected <= (1u << 20) ? xai_file_order(ck.config.num_layers)[i] : role) +
                "; " + cfg_origin + " needs " + std::to_string(expected) +
                " files); re-download the checkpoint or fix num_layers in config.json");
  }
  const std::vector<std::string> order = xai_file_order(ck.config.num_layers);
  for (size_t i = 0; i < order.size(); ++i) {
    if (!present.count(static_cast<long>(i)))
      throw Error((fs::path(dir) / file_name(i)).string() + ": missing (it should hold " + order[i] + "; " +
                  cfg_origin + " needs " + std::to_string(order.size()) +
                  " files); re-download the checkpoint or fix num_layers in config.json");
  }

  uint64_t total_bytes = 0;
  for (const auto& [i, f] : present) total_bytes += fs::file_size(f, ec);
  uint64_t done_bytes = 0;
  ck.maps.reserve(order.size());
  ck.tensors.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& f = present[static_cast<long>(i)];
    MappedFile m(f);
    PickledTensor t = parse_xai_pickle(m.data(), m.size(), f);
    ck.tensors.push_back(XaiTensor{order[i], f, std::move(t), m.data()});
    done_bytes += m.size();
    ck.maps.push_back(std::move(m));
    if (progress) progress(i + 1, order.size(), done_bytes, total_bytes);
  }
  return ck;
}

const XaiTensor& XaiCheckpoint::find(const std::string& haiku_path) const {
  for (const auto& t : tensors)
    if (t.path == haiku_path) return t;
  throw Error(ckpt_dir + ": no tensor " + haiku_path);
}

}  // namespace groak
