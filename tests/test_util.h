// Helpers shared by the tests: where ../shared is, temporary folders, small file utilities.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <initializer_list>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace groak::test {

namespace fs = std::filesystem;

inline std::string shared_dir() { return GROAK_SHARED_DIR; }
inline std::string fixture_dir() { return shared_dir() + "/fixtures/tiny-a"; }
inline std::string groak() { return GROAK_BIN; }  // the CLI under test
// Grok-1's tokenizer in ../shared (tests that need it skip without it).
inline const std::string kGrokDir = std::string(GROAK_SHARED_DIR) + "/grok-1";
inline const std::string kGrokModel = kGrokDir + "/tokenizer.model";
// The golden logits' bar: max|Δ| / max|golden|; f32 engines reach ~2e-6.
constexpr double kGoldenTolerance = 2e-5;

// n standard normal floats (× scale) from seed.
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Skips the current test with a message when ../shared (or a file in it) is absent.
#define GROAK_REQUIRE_SHARED(path)                                                                     \
  do {                                                                                                 \
    if (!std::filesystem::exists(path))                                                                \
      GTEST_SKIP() << "needs " << (path) << " (the shared/ folder beside the repository); skipped";   \
  } while (0)

// Skips unless Grok-1's tokenizer is in ../shared/grok-1.
#define SKIP_WITHOUT_GROK_TOKENIZER() GROAK_REQUIRE_SHARED(::groak::test::kGrokModel)

// A fresh folder under /tmp, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "groak-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// One line of shared/grok-1/tokenizer_cases.tsv (spec §6): input and decoded text as JSON literals.
struct TokenizerCase {
  std::string input_json;  // as written in the file, for messages
  std::string input;
  std::vector<int32_t> ids;
  std::string decoded;
};

// Reads the oracle; fails the calling test (and returns what it has) on a malformed file.
inline std::vector<TokenizerCase> read_tokenizer_cases(const std::string& path) {
  std::vector<TokenizerCase> cases;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "input_json\tids\tdecoded_json") << "unexpected header in " << path;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t t1 = line.find('\t');
    const size_t t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos) {
      ADD_FAILURE() << "line " << cases.size() + 2 << " of " << path << " lacks 3 columns";
      break;
    }
    TokenizerCase c;
    c.input_json = line.substr(0, t1);
    c.input = nlohmann::json::parse(c.input_json).get<std::string>();
    c.decoded = nlohmann::json::parse(line.substr(t2 + 1)).get<std::string>();
    std::istringstream ids(line.substr(t1 + 1, t2 - t1 - 1));
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_GE(cases.size(), 40u) << "the oracle file looks truncated";
  return cases;
}

inline std::vector<int32_t> read_tokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<int32_t> t;
  int32_t v;
  while (in >> v) t.push_back(v);
  return t;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A file's bytes ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs a shell command; returns its exit status and (if out != nullptr) its stdout+stderr.
inline int run_command(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs fn, requires a groak::Error whose message holds every needle, and returns the message.
template <class Fn>
std::string error_of(Fn&& fn, std::initializer_list<const char*> needles) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no groak::Error thrown (expected one mentioning " << *needles.begin() << ")";
  return "";
}

// Real torch.save files come from tests/torch_save.py under Debian's python3-torch; tests that need them skip
// without it (groak's own writer covers the format either way).
inline std::string torch_save_py() { return std::string("/usr/bin/python3 ") + GROAK_SOURCE_DIR + "/tests/torch_save.py"; }
#define GROAK_REQUIRE_PYTHON_TORCH()                                                                         \
  do {                                                                                                       \
    if (::groak::test::run_command("/usr/bin/python3 -c 'import torch, numpy'") != 0)                        \
      GTEST_SKIP() << "needs /usr/bin/python3 with torch (Debian: apt-get install python3-torch) to check "   \
                      "real torch.save files; skipped (groak's own writer covers the format without it)";     \
  } while (0)

// max |a - b| / max |b| over all elements.
inline double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double md = 0, mb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    md = std::max(md, std::abs(static_cast<double>(a[i]) - b[i]));
    mb = std::max(mb, std::abs(static_cast<double>(b[i])));
  }
  return mb > 0 ? md / mb : md;
}

inline std::vector<int64_t> argmax_rows(const std::vector<float>& x, int64_t cols) {
  std::vector<int64_t> r;
  for (size_t o = 0; o + static_cast<size_t>(cols) <= x.size(); o += static_cast<size_t>(cols))
    r.push_back(std::max_element(x.begin() + static_cast<long>(o), x.begin() + static_cast<long>(o) + cols) -
                (x.begin() + static_cast<long>(o)));
  return r;
}

}  // namespace groak::test
