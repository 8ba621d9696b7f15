#include "io/xai_checkpoint.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "util/error.h"

namespace fs = std::filesystem;

namespace groak {

namespace {

// Returns {root, ckpt_dir} or empty strings when path is not an xAI checkpoint.
std::pair<std::string, std::string> find_dirs(const std::string& model_path) {
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

bool parse_tensor_name(const std::string& name, size_t* index, long* host) {
  // tensorNNNNN_HHH
  if (name.size() != 15 || name.rfind("tensor", 0) != 0 || name[11] != '_') return false;
  for (size_t i = 6; i < 15; ++i)
    if (i != 11 && !std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  *index = std::stoul(name.substr(6, 5));
  *host = std::stol(name.substr(12, 3));
  return true;
}

}  // namespace

std::string xai_tensor_file_name(size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "tensor%05zu_000", index);
  return buf;
}

std::string XaiCheckpoint::file_path(size_t index) const {
  return (fs::path(ckpt_dir) / xai_tensor_file_name(index)).string();
}

bool XaiCheckpoint::detect(const std::string& model_path) { return !find_dirs(model_path).first.empty(); }

XaiCheckpoint XaiCheckpoint::locate(const std::string& model_path) {
  XaiCheckpoint ck;
  std::error_code ec;
  if (!fs::exists(model_path, ec))
    throw Error(model_path + ": no such file or folder; pass --model the folder holding ckpt-0/ (or ckpt-0/ itself)");
  auto [root, dir] = find_dirs(model_path);
  if (root.empty())
    throw Error(model_path + ": no ckpt-0/ folder here and no tensor00000_000 file; pass --model the folder "
                "holding ckpt-0/ (or ckpt-0/ itself)");
  ck.root = root;
  ck.ckpt_dir = dir;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    size_t index = 0;
    long host = 0;
    const std::string name = entry.path().filename().string();
    if (!parse_tensor_name(name, &index, &host)) continue;  // unrelated files are ignored
    if (host != 0)
      throw Error(entry.path().string() + ": host index " + std::to_string(host) +
                  " — groak reads single-host checkpoints (only _000 files); remove the extra file");
    ck.present[index] = entry.path().string();
  }
  if (ec) throw Error(dir + ": cannot list the folder (" + ec.message() + ")");
  return ck;
}

void XaiCheckpoint::map(size_t count, const LoadProgress& progress) {
  std::error_code ec;
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < count; ++i) {
    auto it = present.find(i);
    if (it == present.end()) throw Error(file_path(i) + ": missing; re-download the checkpoint");
    total_bytes += fs::file_size(it->second, ec);
  }
  uint64_t done_bytes = 0;
  maps.reserve(count);
  tensors.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const std::string& f = present.at(i);
    MappedFile m(f);
    PickledTensor t = parse_xai_pickle(m.data(), m.size(), f);
    tensors.push_back(XaiTensor{f, std::move(t), m.data()});
    done_bytes += m.size();
    maps.push_back(std::move(m));
    if (progress) progress(i + 1, count, done_bytes, total_bytes);
  }
}

}  // namespace groak
