// Tokenizer tests: the SentencePiece oracle cases of spec §6, the streaming detokenizer, model
// discovery and training a small Grok-like tokenizer on data/corpus.txt.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using groak::test::read_tokenizer_cases;
using groak::test::TokenizerCase;
using groak::test::kGrokDir;
using groak::test::kGrokModel;
using groak::Tokenizer;

namespace {

const std::string kCorpus = std::string(GROAK_SOURCE_DIR) + "/data/corpus.txt";
constexpr int32_t kByteBase = 69;  // Grok-1: byte b ↔ id 69 + b

// One Grok-1 tokenizer for all tests: loading parses a 2 MB protobuf.
const Tokenizer& grok() {
  static const Tokenizer tok = Tokenizer::load(kGrokModel);
  return tok;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// A fresh folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("groak_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

// Pushes ids one by one; checks every chunk is valid UTF-8 and the whole equals decode(ids).
std::vector<std::string> stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  groak::TextStream stream(tok);
  std::vector<std::string> chunks;
  std::string all;
  for (int32_t id : ids) {
    chunks.push_back(stream.push(id));
    EXPECT_TRUE(valid_utf8(chunks.back())) << "chunk after id " << id << " is not valid UTF-8";
    all += chunks.back();
  }
  chunks.push_back(stream.flush());
  all += chunks.back();
  EXPECT_EQ(all, tok.decode(ids));
  return chunks;
}

}  // namespace

TEST(Tokenizer, GrokOracleCases) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  for (const TokenizerCase& c : read_tokenizer_cases(kGrokDir + "/tokenizer_cases.tsv")) {
    EXPECT_EQ(grok().encode(c.input), c.ids) << "encode(" << c.input_json << ")";
    EXPECT_EQ(grok().decode(c.ids), c.decoded) << "decode of the ids for " << c.input_json;
  }
}

TEST(Tokenizer, GrokVocabularyAndSpecialIds) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const Tokenizer& tok = grok();
  EXPECT_EQ(tok.vocab_size(), 131072);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.piece(0), "[PAD]");
  EXPECT_EQ(tok.piece(3), "[UNK]");
  EXPECT_EQ(tok.piece(47), "<|separator|>");
  EXPECT_EQ(tok.piece(kByteBase + 0xE2), "<0xE2>");
  EXPECT_EQ(tok.byte_value(kByteBase + 0xE2), 0xE2);
  EXPECT_EQ(tok.byte_value(325), -1);
  EXPECT_THROW(tok.piece(131072), groak::Error);
  EXPECT_THROW(tok.decode({5, -1}), groak::Error);
}

// The decode rules of spec §6 that the streaming detokenizer depends on.
TEST(Tokenizer, GrokDecodeRules) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const Tokenizer& tok = grok();
  EXPECT_EQ(tok.decode({1, 325}), " ");
  EXPECT_EQ(tok.decode({130089}), "");
  EXPECT_EQ(tok.decode({4, 1734}), "\n x");
  EXPECT_EQ(tok.decode({32}), "  ");
  EXPECT_EQ(tok.decode({3}), "[UNK]");
  EXPECT_EQ(tok.decode({kByteBase + 0xE2, kByteBase + 0x82}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok.encode("The answer to life the universe and everything is of course"),
            (std::vector<int32_t>{422, 3033, 356, 1180, 333, 9072, 360, 2175, 391, 359, 1805}));
}

TEST(Tokenizer, InvalidUtf8NeverCrashes) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const std::string bad[] = {"\xFF", "ab\xE2\x82", "\xC0\x80 x", std::string("a\0b", 3), "\xED\xA0\x80"};
  for (const std::string& s : bad) {
    const auto ids = grok().encode(s);
    EXPECT_FALSE(ids.empty());
    EXPECT_TRUE(valid_utf8(grok().decode(ids))) << "decode of encode of a bad string";
  }
}

TEST(Tokenizer, LoadErrorsNameThePath) {
  TempDir dir("tok_load");
  const std::string missing = (dir.path / "nope.model").string();
  try {
    Tokenizer::load(missing);
    FAIL() << "loading a missing file must throw";
  } catch (const groak::Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const fs::path junk = dir.path / "junk.model";
  std::ofstream(junk) << "this is not a protobuf\n";
  EXPECT_THROW(Tokenizer::load(junk.string()), groak::Error);
  EXPECT_THROW(Tokenizer::load(dir.path.string()), groak::Error);  // a folder
}

TEST(Tokenizer, FindTokenizer) {
  TempDir dir("tok_find");
  // xai-org/grok-1 layout: tokenizer.model at the repo root, weights in checkpoints/ckpt-0/.
  const fs::path repo = dir.path / "grok-1";
  const fs::path ckpt = repo / "checkpoints" / "ckpt-0";
  fs::create_directories(ckpt);
  touch(ckpt / "tensor00000_000");
  touch(repo / "tokenizer.model");
  const std::string want = (repo / "tokenizer.model").string();
  EXPECT_EQ(groak::find_tokenizer((repo / "checkpoints").string(), nullptr), want);
  EXPECT_EQ(groak::find_tokenizer(ckpt.string(), nullptr), want);
  EXPECT_EQ(groak::find_tokenizer(ckpt.string() + "/", nullptr), want);
  EXPECT_EQ(groak::find_tokenizer((ckpt / "tensor00000_000").string(), nullptr), want);

  // tokenizer.model beside ckpt-0/ wins over the parent's.
  touch(repo / "checkpoints" / "tokenizer.model");
  EXPECT_EQ(groak::find_tokenizer(ckpt.string(), nullptr), (repo / "checkpoints" / "tokenizer.model").string());

  // Nothing found: "" and every path tried.
  const fs::path lone = dir.path / "lone" / "models" / "ckpt-0";
  fs::create_directories(lone);
  std::vector<std::string> looked;
  EXPECT_EQ(groak::find_tokenizer(lone.string(), &looked), "");
  EXPECT_EQ(looked, (std::vector<std::string>{(lone / "tokenizer.model").string(),
                                              (dir.path / "lone" / "models" / "tokenizer.model").string(),
                                              (dir.path / "lone" / "tokenizer.model").string()}));
}

TEST(TextStream, HoldsBackASplitCharacter) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const Tokenizer& tok = grok();
  // "Price" then "€" (E2 82 AC) as three byte-fallback pieces, then " x".
  std::vector<int32_t> ids = {tok.bos_id()};
  for (int32_t id : tok.encode("Price")) ids.push_back(id);
  const size_t euro_at = ids.size();
  ids.insert(ids.end(), {kByteBase + 0xE2, kByteBase + 0x82, kByteBase + 0xAC});
  for (int32_t id : tok.encode(" x")) ids.push_back(id);
  ASSERT_EQ(tok.decode(ids), "Price€  x");

  const auto chunks = stream_all(tok, ids);
  EXPECT_EQ(chunks[euro_at], "");
  EXPECT_EQ(chunks[euro_at + 1], "");
  EXPECT_EQ(chunks[euro_at + 2], "€");
}

TEST(TextStream, LeadingSpaceAndFlush) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const Tokenizer& tok = grok();
  stream_all(tok, {1, 130089, 1734, 1734});     // "▁" first: trimmed, later ones not
  stream_all(tok, {1, 1, 325, 4, 32, 3, 2});   // controls, user-defined, [UNK]
  // An unfinished character at the end comes out of flush() as decode() shows it.
  const auto chunks = stream_all(tok, {1734, kByteBase + 0xF0, kByteBase + 0x9F});
  EXPECT_EQ(chunks.back(), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // A fresh stream after flush() trims the first space again, like decode() of the new ids.
  groak::TextStream stream(tok);
  std::string first = stream.push(1734);
  first += stream.flush();
  std::string second = stream.push(1734);
  second += stream.flush();
  EXPECT_EQ(first, tok.decode({1734}));
  EXPECT_EQ(second, first);
}

// Random id sequences heavy in byte pieces (valid and broken UTF-8), controls and ▁ pieces.
TEST(TextStream, RandomSequencesMatchDecode) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const Tokenizer& tok = grok();
  std::mt19937 gen(1234);  // only picks test inputs; its exact stream does not matter
  const std::vector<int32_t> specials = {0, 1, 2, 3, 4, 5, 24, 32, 47, 130089, 325};
  const std::vector<int> utf8_bytes = {0x41, 0x20, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F,
                                       0x98, 0x80, 0xBF, 0xFF, 0xC0, 0xED, 0xA0};
  const std::vector<std::string> texts = {"héllo wörld", "€ 100", " 日本語 ", "\n\nx", "😀!"};
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids;
    const int len = 1 + static_cast<int>(gen() % 24);
    for (int i = 0; i < len; ++i) {
      switch (gen() % 5) {
        case 0: ids.push_back(specials[gen() % specials.size()]); break;
        case 1:
        case 2: ids.push_back(kByteBase + utf8_bytes[gen() % utf8_bytes.size()]); break;
        case 3: ids.push_back(static_cast<int32_t>(325 + gen() % 130000)); break;
        default:
          for (int32_t id : tok.encode(texts[gen() % texts.size()])) ids.push_back(id);
      }
    }
    stream_all(tok, ids);
    if (HasFailure()) {
      ADD_FAILURE() << "failing round " << round;
      return;
    }
  }
}

TEST(TrainTokenizer, CorpusGives2048PiecesAndRoundTrips) {
  ASSERT_TRUE(fs::exists(kCorpus)) << kCorpus << " is missing; it ships with the repository";
  TempDir dir("tok_train");
  const std::string model = (dir.path / "small.model").string();
  groak::train_tokenizer(kCorpus, 2048, model);
  EXPECT_FALSE(fs::exists(model + ".tmp"));
  const Tokenizer tok = Tokenizer::load(model);
  EXPECT_EQ(tok.vocab_size(), 2048);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.piece(1), "[BOS]");
  EXPECT_EQ(tok.piece(4), "<0x00>");  // byte pieces follow the specials
  EXPECT_EQ(tok.byte_value(4 + 0xE2), 0xE2);

  const std::string texts[] = {
      "The router sends each token to two experts.",
      "  Keys and values stay in the cache;\tqueries do not.  ",
      "Prices: 2024 tokens cost €3.50 — naïve café 日本 😀",
      "",
  };
  for (const std::string& text : texts) {
    const auto ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text);
    stream_all(tok, ids);
  }
  // split_digits: every digit is its own token.
  const auto digits = tok.encode("2024");
  EXPECT_EQ(tok.decode({digits.back()}), "4");
  // The corpus is mostly English prose, so common words are whole pieces.
  EXPECT_LE(tok.encode(" the attention").size(), 3u);

  // Deterministic: training again gives the same bytes.
  const std::string again = (dir.path / "again.model").string();
  groak::train_tokenizer(kCorpus, 2048, again);
  std::ifstream a(model, std::ios::binary), b(again, std::ios::binary);
  const std::string bytes_a((std::istreambuf_iterator<char>(a)), {});
  const std::string bytes_b((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(bytes_a, bytes_b);
}

TEST(TrainTokenizer, ErrorsAreClear) {
  TempDir dir("tok_train_err");
  EXPECT_THROW(groak::train_tokenizer((dir.path / "none.txt").string(), 2048, (dir.path / "m.model").string()),
               groak::Error);
  EXPECT_THROW(groak::train_tokenizer(kCorpus, 100, (dir.path / "m.model").string()), groak::Error);
  const fs::path tiny = dir.path / "tiny.txt";
  std::ofstream(tiny) << "just a few words\n";
  try {
    groak::train_tokenizer(tiny.string(), 4000, (dir.path / "m.model").string());
    FAIL() << "a tiny corpus cannot give 4000 pieces";
  } catch (const groak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("corpus"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path / "m.model"));
}
