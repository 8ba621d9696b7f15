// Parsers bounded by what is sane, not only by the file size (issue 9): pickle nesting, configuration
// arithmetic, non-regular files, oversized safetensors headers.
#include <sys/stat.h>

#include <cmath>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/xai_pickle.h"
#include "model/config.h"
#include "test_util.h"

namespace groak::test {

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

std::string pickle_error(const std::string& pickle) {
  const std::vector<uint8_t> b = bytes_of(pickle);
  return error_of([&] { parse_xai_pickle(b.data(), b.size(), "t.pkl"); }, {"t.pkl"});
}

}  // namespace

// 200,000 nested TUPLE1s in 200 KB: refused with a clear error at the depth cap (the values are freed from
// the machine's list, so even without the cap nothing recurses; ASan/UBSan would see a stack overflow).
TEST(PickleLimits, DeepNestingIsRefusedClearly) {
  std::string p = "\x80\x04N";
  p.append(200000, '\x85');  // TUPLE1
  p += '.';
  const std::string msg = pickle_error(p);
  EXPECT_NE(msg.find("nested more than 100 levels"), std::string::npos) << msg;
  // Lists nest through APPEND as well.
  std::string q = "\x80\x04";
  for (int i = 0; i < 150; ++i) q += ']';     // 150 empty lists on the stack
  for (int i = 0; i < 149; ++i) q += 'a';     // each appended into the one below it
  q += '.';
  const std::string msg2 = pickle_error(q);
  EXPECT_NE(msg2.find("list nested more than 100 levels"), std::string::npos) << msg2;
}

// A list appended to itself (a cycle through the memo) is freed with the machine: no leak under ASan, no
// endless walk; the reader then says what it expected.
TEST(PickleLimits, SelfContainingListIsFreed) {
  const std::string p = std::string("\x80\x04]\x94h\x00", 6) + "a.";  // l = []; l.append(l)
  const std::string msg = pickle_error(p);
  EXPECT_NE(msg.find("t.pkl"), std::string::npos) << msg;
}

// Every derived size is checked before anything is allocated; absurd values get the config error, not UB.
TEST(ConfigLimits, AbsurdValuesGetTheConfigError) {
  auto invalid = [](auto mutate, const char* needle) {
    Config c;
    mutate(c);
    error_of([&] { c.validate("cfg.json"); }, {"cfg.json: invalid configuration", needle, "fix config.json"});
  };
  invalid([](Config& c) { c.widening_factor = 1e300; }, "widening_factor");
  invalid([](Config& c) { c.widening_factor = 1e12; }, "above the sane limit");
  invalid([](Config& c) { c.num_layers = int64_t{1} << 40; }, "num_layers is 1099511627776");
  // Each within 2^24 but the KV cache (layers x context x kv width) is not addressable.
  invalid([](Config& c) { c.num_layers = 1 << 24; c.sequence_len = 1 << 24; }, "the KV cache");
  invalid([](Config& c) { c.num_experts = 1 << 24; c.emb_size = 1 << 24; c.widening_factor = 1; }, "the expert weights");
  Config ok;
  EXPECT_NO_THROW(ok.validate("grok-1 defaults"));
  // The hint is the caller's: a GGUF has no config.json to fix.
  Config bad;
  bad.num_layers = 0;
  const std::string msg = error_of([&] { bad.validate("m.gguf", "re-convert the model"); }, {"m.gguf", "re-convert"});
  EXPECT_EQ(msg.find("config.json"), std::string::npos) << msg;
}

// open() on a FIFO would block forever: the type is checked first.
TEST(MappedFileLimits, FifoAndFolderAreRefusedWithoutBlocking) {
  TempDir tmp;
  const std::string fifo = tmp / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  error_of([&] { MappedFile m(fifo); }, {"fifo", "not a regular file", "a FIFO"});
  error_of([&] { MappedFile m(tmp.path()); }, {"not a regular file", "a folder"});
  error_of([&] { MappedFile m("/dev/zero"); }, {"/dev/zero", "not a regular file"});
}

// A header length just above groak's bound is refused before any JSON is parsed (the file need not hold it).
TEST(SafetensorsLimits, OversizedHeaderRefusedBeforeParsing) {
  std::vector<uint8_t> f(64, ' ');
  const uint64_t n = 17'000'000;
  for (int b = 0; b < 8; ++b) f[static_cast<size_t>(b)] = static_cast<uint8_t>(n >> (8 * b));
  error_of([&] { parse_safetensors_header(f.data(), f.size(), "big.safetensors"); },
           {"big.safetensors", "header length 17000000", "above the 16 MB"});
}

}  // namespace groak::test
