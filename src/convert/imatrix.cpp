#include "convert/imatrix.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "io/output_file.h"
#include "model/name_map.h"
#include "util/error.h"

namespace groak {

namespace {

// A little-endian reader over the file's bytes that names the file and the field on every short read.
class Reader {
 public:
  Reader(const std::string& path, std::vector<char> bytes) : path_(path), b_(std::move(bytes)) {}
  bool at_end() const { return pos_ == b_.size(); }
  int32_t i32(const char* what) {
    int32_t v;
    take(&v, 4, what);
    return v;
  }
  void take(void* dst, size_t n, const char* what) {
    if (n > b_.size() - pos_)
      throw Error(path_ + ": not an imatrix file, or truncated: " + what + " needs " + std::to_string(n) +
                  " bytes at offset " + std::to_string(pos_) + " but the file ends at " + std::to_string(b_.size()));
    std::memcpy(dst, b_.data() + pos_, n);
    pos_ += n;
  }
  size_t left() const { return b_.size() - pos_; }

 private:
  std::string path_;
  std::vector<char> b_;
  size_t pos_ = 0;
};

void put_i32(std::string& out, int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

}  // namespace

Imatrix read_imatrix(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the importance matrix (" + std::strerror(errno) + ")");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": reading the importance matrix failed");
  Reader r(path, std::move(bytes));
  Imatrix m;
  const int32_t n = r.i32("the entry count");
  if (n < 1) throw Error(path + ": the imatrix has " + std::to_string(n) + " entries; make one with groak imatrix");
  for (int32_t i = 0; i < n; ++i) {
    const std::string at = "entry " + std::to_string(i + 1) + " of " + std::to_string(n);
    const int32_t len = r.i32("a name length");
    if (len < 1 || len > 4096 || static_cast<size_t>(len) > r.left())
      throw Error(path + ": " + at + " has a name length of " + std::to_string(len) + "; the file is not an imatrix");
    std::string name(static_cast<size_t>(len), '\0');
    r.take(name.data(), name.size(), "a name");
    const int32_t ncall = r.i32("ncall");
    const int32_t nval = r.i32("the value count");
    if (nval < 1 || static_cast<size_t>(nval) > r.left() / 4)
      throw Error(path + ": " + at + " ('" + name + "') claims " + std::to_string(nval) + " values, the file holds " +
                  std::to_string(r.left() / 4) + " more");
    std::vector<float> v(static_cast<size_t>(nval));
    r.take(v.data(), v.size() * 4, "values");
    if (ncall > 0)
      for (float& x : v) x /= static_cast<float>(ncall);  // the mean, as llama-quantize divides it
    for (float x : v)
      if (!std::isfinite(x) || x < 0)
        throw Error(path + ": entry '" + name + "' holds a value that is negative or not finite (" +
                    std::to_string(x) + "); the file is damaged");
    if (!m.entries.emplace(name, std::move(v)).second)
      throw Error(path + ": the entry '" + name + "' appears twice");
  }
  if (!r.at_end()) {  // optional trailer: chunks and the dataset's name
    m.chunks = r.i32("the chunk count");
    const int32_t len = r.i32("the dataset name length");
    if (len < 0 || static_cast<size_t>(len) > r.left())
      throw Error(path + ": the dataset name length " + std::to_string(len) + " runs past the end of the file");
    m.dataset.resize(static_cast<size_t>(len));
    r.take(m.dataset.data(), m.dataset.size(), "the dataset name");
  }
  return m;
}

void write_imatrix(const std::string& path, const Imatrix& m, const std::vector<std::string>& inputs) {
  std::string out;
  put_i32(out, static_cast<int32_t>(m.entries.size()));
  const int32_t ncall = std::max<int32_t>(1, m.chunks);
  for (const auto& [name, v] : m.entries) {
    put_i32(out, static_cast<int32_t>(name.size()));
    out += name;
    put_i32(out, ncall);
    put_i32(out, static_cast<int32_t>(v.size()));
    for (float x : v) {
      const float stored = x * static_cast<float>(ncall);  // the file holds mean · ncall
      out.append(reinterpret_cast<const char*>(&stored), 4);
    }
  }
  put_i32(out, m.chunks);
  put_i32(out, static_cast<int32_t>(m.dataset.size()));
  out += m.dataset;
  write_file_atomic(path, out.data(), out.size(), inputs);
}

namespace {

// The GGUF name, input width and expert count of every weight an imatrix may describe.
struct WeightShape {
  int64_t n_in, experts;
};
std::map<std::string, WeightShape> imatrix_shapes(const Model& model) {
  std::map<std::string, WeightShape> s;
  const Config& c = model.config;
  s["token_embd.weight"] = {c.emb_size, 1};
  s["output.weight"] = {c.emb_size, 1};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (Role r : {Role::Query, Role::Key, Role::Value, Role::Router}) s[gguf_name(r, l)] = {c.emb_size, 1};
    s[gguf_name(Role::AttnLinear, l)] = {c.q_size(), 1};
    s[gguf_name(Role::MoeLinear, l)] = {c.emb_size, c.num_experts};
    s[gguf_name(Role::MoeLinearV, l)] = {c.emb_size, c.num_experts};
    s[gguf_name(Role::MoeLinear1, l)] = {c.ffn_size(), c.num_experts};
  }
  return s;
}

}  // namespace

void check_imatrix(const Imatrix& m, const Model& model) {
  const auto shapes = imatrix_shapes(model);
  for (const auto& [name, v] : m.entries) {
    const auto it = shapes.find(name);
    if (it == shapes.end())
      throw Error("the imatrix has an entry '" + name + "' that this model does not have: it was made for another "
                  "model; make one for this model with groak imatrix");
    const int64_t want = it->second.n_in * it->second.experts;
    if (static_cast<int64_t>(v.size()) != want)
      throw Error("the imatrix entry '" + name + "' has " + std::to_string(v.size()) + " values; this model's tensor needs " +
                  std::to_string(want) + " (" + std::to_string(it->second.n_in) + " inputs × " +
                  std::to_string(it->second.experts) + " experts): it was made for another model; make one for "
                  "this model with groak imatrix");
  }
}

ImatrixCollector::ImatrixCollector(const Model& model) {
  const Config& c = model.config;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = model.weights.layers[static_cast<size_t>(l)];
    const std::pair<Role, const Matrix*> dense[] = {
        {Role::Query, &L.query}, {Role::Key, &L.key}, {Role::Value, &L.value}, {Role::AttnLinear, &L.linear}};
    for (const auto& [role, w] : dense) targets_[w->data] = {gguf_name(role, l), 0, 1};
    const std::pair<Role, const ExpertMatrices*> experts[] = {
        {Role::MoeLinear, &L.moe_linear}, {Role::MoeLinearV, &L.moe_linear_v}, {Role::MoeLinear1, &L.moe_linear_1}};
    for (const auto& [role, list] : experts)
      for (int64_t e = 0; e < c.num_experts; ++e)
        targets_[list->expert(e).data] = {gguf_name(role, l), e, c.num_experts};
  }
}

void ImatrixCollector::on_matmul(const Matrix& w, const float* x, int64_t rows) {
  const auto it = targets_.find(w.data);
  if (it == targets_.end()) return;  // the router, the output head
  const Target& t = it->second;
  std::lock_guard<std::mutex> lock(mutex_);
  Stats& s = stats_[t.name];
  if (s.sum.empty()) {
    s.sum.assign(static_cast<size_t>(t.experts * w.n_in), 0.0);
    s.count.assign(static_cast<size_t>(t.experts), 0);
  }
  double* sum = s.sum.data() + t.expert * w.n_in;  // [n_in] of this expert
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * w.n_in;
    for (int64_t j = 0; j < w.n_in; ++j) sum[j] += static_cast<double>(xr[j]) * xr[j];
  }
  s.count[static_cast<size_t>(t.expert)] += rows;
}

Imatrix ImatrixCollector::result(const std::string& dataset, std::vector<std::string>* notes) const {
  Imatrix m;
  m.chunks = chunks_;
  m.dataset = dataset;
  for (const auto& [name, s] : stats_) {
    const int64_t experts = static_cast<int64_t>(s.count.size());
    const int64_t n_in = static_cast<int64_t>(s.sum.size()) / experts;
    std::vector<float> v(s.sum.size());
    std::vector<double> seen_mean(static_cast<size_t>(n_in), 0.0);  // over the experts that ran
    int64_t seen = 0;
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t n = s.count[static_cast<size_t>(e)];
      if (n == 0) continue;
      ++seen;
      for (int64_t j = 0; j < n_in; ++j) {
        const double mean = s.sum[static_cast<size_t>(e * n_in + j)] / static_cast<double>(n);
        v[static_cast<size_t>(e * n_in + j)] = static_cast<float>(mean);
        seen_mean[static_cast<size_t>(j)] += mean;
      }
    }
    if (seen == 0) continue;
    for (int64_t e = 0; e < experts; ++e) {
      if (s.count[static_cast<size_t>(e)] != 0) continue;
      for (int64_t j = 0; j < n_in; ++j)
        v[static_cast<size_t>(e * n_in + j)] = static_cast<float>(seen_mean[static_cast<size_t>(j)] / static_cast<double>(seen));
      if (notes)
        notes->push_back(name + ": no token chose expert " + std::to_string(e) +
                         "; its columns take the mean of the other experts (use a longer text)");
    }
    m.entries[name] = std::move(v);
  }
  return m;
}

}  // namespace groak
