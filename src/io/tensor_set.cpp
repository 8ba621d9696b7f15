#include "io/tensor_set.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "io/json_text.h"
#include "util/error.h"
#include "util/text.h"

namespace groak {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxIndexBytes = 100'000'000;  // a real index is a few hundred KB
const char* const kIndexHint =
    "the index does not match the shards beside it (re-download the whole set, index included)";

std::string read_small_file(const std::string& path, uint64_t cap) {
  std::error_code ec;
  const uint64_t n = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read (" + ec.message() + ")");
  if (n > cap)
    throw_tensor_error(path, "", std::to_string(n) + " bytes, above the " + std::to_string(cap) + "-byte limit", kIndexHint);
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  if (!in.read(s.data(), static_cast<std::streamsize>(n))) throw Error(path + ": cannot read");
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string what_to_pass(const ShardedFormat& f) {
  return std::string("pass a folder holding ") + f.single_file + " or " + f.index_file +
         ", or one of those files (GROK1.md §9.1 lists the files of Grok-1's Hugging Face ports)";
}

}  // namespace

int64_t TensorView::numel() const {
  // Unsigned, because a shape like [2^62, 3, 0] is valid (0 elements) but its partial products are not
  // int64; without a zero the product is bounded by the buffer size (checked at parse time).
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return static_cast<int64_t>(n);
}

std::string dims_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::shape_str() const { return dims_str(shape); }

void TensorView::require_float() const {
  if (dtype != TensorDType::Other) return;
  throw_tensor_error(file, name, "dtype " + dtype_name + " where F32, F16 or BF16 was expected",
                     "groak computes with floating-point weights only; convert the checkpoint to bf16");
}

void throw_tensor_error(const std::string& file, const std::string& tensor, const std::string& what,
                        const std::string& hint) {
  std::string m = file + ": ";
  if (!tensor.empty()) m += "tensor '" + printable(tensor) + "': ";
  throw Error(m + what + "; " + hint);
}

const TensorView* TensorFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorView& t, const std::string& n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

bool folder_holds(const std::string& dir, const ShardedFormat& format) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == format.index_file || ends_with(name, format.extension)) return true;
  }
  return false;
}

std::map<std::string, std::string> parse_weight_map(const std::string& json_text, const std::string& file) {
  const char* b = json_text.data();
  json j = parse_json_text(b, b + json_text.size(), file, "index", TopKeys::MayRepeat, kIndexHint);
  if (!j.is_object()) throw_tensor_error(file, "", "expected a JSON object, found " + json_type_of(j), kIndexHint);
  if (!j.contains("weight_map")) throw_tensor_error(file, "", "the field \"weight_map\" is missing", kIndexHint);
  const json& wm = j["weight_map"];
  if (!wm.is_object())
    throw_tensor_error(file, "", "\"weight_map\" should be an object {tensor: shard}, found " + json_type_of(wm),
                       kIndexHint);
  if (wm.empty()) throw_tensor_error(file, "", "\"weight_map\" lists no tensors", kIndexHint);
  std::map<std::string, std::string> out;
  for (const auto& [name, v] : wm.items()) {
    if (!v.is_string())
      throw_tensor_error(file, name, "the shard name should be a string, found " + json_type_of(v), kIndexHint);
    const std::string& shard = v.get_ref<const std::string&>();
    // Shards live beside the index; a path could point anywhere on the machine.
    const bool plain = !shard.empty() && shard != "." && shard != ".." &&
                       shard.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
    if (!plain) throw_tensor_error(file, name, "shard \"" + shard + "\" is not a plain file name", kIndexHint);
    out[name] = shard;
  }
  return out;
}

TensorSet TensorSet::open(const std::string& dir_or_file, const ShardedFormat& format) {
  TensorSet m;
  fs::path p(dir_or_file);
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (ec || !fs::exists(st)) throw Error(dir_or_file + ": does not exist; " + what_to_pass(format));

  bool is_index = false;
  if (fs::is_directory(st)) {
    if (fs::exists(p / format.index_file, ec)) {
      p /= format.index_file;
      is_index = true;
    } else if (fs::exists(p / format.single_file, ec)) {
      p /= format.single_file;
    } else {
      // One unambiguous file with the format's extension under another name is still a model.
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(p, ec))
        if (ends_with(e.path().filename().string(), format.extension)) found.push_back(e.path());
      if (found.size() != 1) {
        throw Error(dir_or_file + ": holds neither " + format.index_file + " nor " + format.single_file + " (and " +
                    std::to_string(found.size()) + " other " + format.extension + " files, not exactly one); " +
                    what_to_pass(format));
      }
      p = found[0];
    }
  } else {
    is_index = p.extension() == ".json";
  }
  m.source_ = p.string();

  std::map<std::string, std::string> weight_map;  // tensor -> shard path
  if (!is_index) {
    m.files_.push_back(format.open_file(m.source_));
  } else {
    const fs::path dir = p.parent_path();
    for (auto& [name, shard] : parse_weight_map(read_small_file(m.source_, kMaxIndexBytes), m.source_))
      weight_map[name] = (dir / shard).string();
    std::map<std::string, std::vector<std::string>> by_shard;  // shard path -> tensors it should hold
    for (const auto& [name, shard] : weight_map) by_shard[shard].push_back(name);
    for (const auto& [shard, names] : by_shard) {
      if (!fs::exists(shard, ec)) {
        throw_tensor_error(m.source_, names.front(),
                           "its shard " + shard + " is missing (the index names it for " +
                               std::to_string(names.size()) + " tensors)",
                           "download that shard into the folder of the index");
      }
      m.files_.push_back(format.open_file(shard));
    }
  }

  for (const TensorFile& f : m.files_) {
    for (const TensorView& t : f.tensors) {
      auto [it, fresh] = m.by_name_.emplace(t.name, &t);
      if (!fresh) {
        throw_tensor_error(t.file, t.name,
                           "also present in " + it->second->file + " (a tensor may live in one shard only)", kIndexHint);
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = m.by_name_.find(name);
    if (it == m.by_name_.end() || it->second->file != shard) {
      const std::string where = it == m.by_name_.end() ? "no shard holds it" : "it is in " + it->second->file;
      throw_tensor_error(m.source_, name, "the index puts it in " + shard + ", but that shard lacks it (" + where + ")",
                         kIndexHint);
    }
  }
  return m;
}

const TensorView* TensorSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& TensorSet::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) {
    throw_tensor_error(source_, name, "not found among " + std::to_string(by_name_.size()) + " tensors",
                       "the checkpoint is incomplete or uses other tensor names (see GROK1.md §9.1 for the names of "
                       "each port)");
  }
  return *t;
}

}  // namespace groak
