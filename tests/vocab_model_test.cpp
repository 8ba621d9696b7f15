// Tokenizer from GGUF vocabulary metadata (src/tokenizer/vocab_model.h): the Grok-1 vocabulary, taken
// out of the real tokenizer.model the way llama.cpp's converter writes it into a GGUF, must give the
// same ids as SentencePiece on the oracle cases of spec §6 and on random text; a small synthetic
// vocabulary round-trips text; malformed metadata is refused with groak::Error.
//
// If a Grok case fails: the serialized model differs from tokenizer.model in a setting that matters
// (GrokSerializedModelMatchesTokenizerModel names the field), or a repair of the types in
// vocab_model.cpp (user-defined pieces, unknown piece) went wrong.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_model.h"
#include "util/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using groak::test::read_tokenizer_cases;
using groak::test::TokenizerCase;
using groak::test::kGrokDir;
using groak::test::kGrokModel;
using groak::TokenType;
using groak::Tokenizer;
using groak::VocabSpec;

namespace {

constexpr int32_t kGrokVocabSize = 131072;
constexpr int32_t kGrokByteBase = 69;  // Grok-1: byte b ↔ id 69 + b

// ---------------------------------------------------------------------------------------------
// A minimal protobuf wire reader, to read piece types and spec fields out of a ModelProto.

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;       // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
  uint64_t value = 0;      // varint / fixed value
  std::string_view bytes;  // length-delimited payload
};

uint64_t read_varint(std::string_view msg, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; pos < msg.size() && shift < 64; shift += 7) {
    const auto c = static_cast<unsigned char>(msg[pos++]);
    v |= static_cast<uint64_t>(c & 0x7F) << shift;
    if (c < 0x80) return v;
  }
  throw std::runtime_error("truncated varint");
}

std::vector<Field> read_fields(std::string_view msg) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < msg.size()) {
    Field f;
    const uint64_t key = read_varint(msg, pos);
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    auto fixed = [&](size_t n) {
      if (pos + n > msg.size()) throw std::runtime_error("truncated fixed field");
      for (size_t i = 0; i < n; ++i) f.value |= static_cast<uint64_t>(static_cast<unsigned char>(msg[pos + i])) << (8 * i);
      pos += n;
    };
    if (f.wire == 0) {
      f.value = read_varint(msg, pos);
    } else if (f.wire == 1) {
      fixed(8);
    } else if (f.wire == 5) {
      fixed(4);
    } else if (f.wire == 2) {
      const uint64_t n = read_varint(msg, pos);
      if (pos + n > msg.size()) throw std::runtime_error("truncated bytes field");
      f.bytes = msg.substr(pos, n);
      pos += n;
    } else {
      throw std::runtime_error("unsupported wire type " + std::to_string(f.wire));
    }
    fields.push_back(f);
  }
  return fields;
}

// A piece as stored: text, score bits (so -0.0 and 0.0 differ), type (absent = NORMAL).
struct StoredPiece {
  std::string text;
  uint32_t score_bits = 0;
  int32_t type = static_cast<int32_t>(TokenType::kNormal);
  bool operator==(const StoredPiece&) const = default;
};

// The parts of a ModelProto the tests compare.
struct ParsedModel {
  std::vector<StoredPiece> pieces;
  // Fields point into the parsed bytes, which must outlive them.
  std::map<uint32_t, Field> trainer;     // last occurrence of each TrainerSpec field
  std::map<uint32_t, Field> normalizer;  // same for NormalizerSpec
};

ParsedModel parse_model(std::string_view proto) {
  ParsedModel m;
  for (const Field& f : read_fields(proto)) {
    if (f.number == 1) {
      StoredPiece p;
      for (const Field& pf : read_fields(f.bytes)) {
        if (pf.number == 1) p.text = std::string(pf.bytes);
        if (pf.number == 2) p.score_bits = static_cast<uint32_t>(pf.value);
        if (pf.number == 3) p.type = static_cast<int32_t>(pf.value);
      }
      m.pieces.push_back(p);
    } else if (f.number == 2) {
      for (const Field& tf : read_fields(f.bytes)) m.trainer[tf.number] = tf;
    } else if (f.number == 3) {
      for (const Field& nf : read_fields(f.bytes)) m.normalizer[nf.number] = nf;
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// The Grok-1 vocabulary as a GGUF would carry it

const sentencepiece::SentencePieceProcessor& grok_sp() {
  static const auto sp = [] {
    auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = p->Load(kGrokModel);
    if (!status.ok()) throw std::runtime_error("cannot load " + kGrokModel + ": " + status.ToString());
    return p;
  }();
  return *sp;
}

const Tokenizer& grok_reference() {
  static const Tokenizer tok = Tokenizer::load(kGrokModel);
  return tok;
}

enum class TypeSource {
  // llama.cpp's converter (convert_hf_to_gguf.py _create_vocab_sentencepiece, and the raw Grok
  // converter): unknown / control / unused / byte through the SentencePiece API, everything else
  // NORMAL (the API cannot tell user-defined pieces apart); no special-id keys.
  kLlamaCppConverter,
  // The exact piece types, USER_DEFINED included, read from the model protobuf; special ids given.
  kModelProto,
};

const char* source_name(TypeSource source) {
  return source == TypeSource::kLlamaCppConverter ? "llama.cpp converter types" : "model proto types";
}

VocabSpec grok_vocab(TypeSource source) {
  const auto& sp = grok_sp();
  VocabSpec v;
  const int n = sp.GetPieceSize();
  for (int id = 0; id < n; ++id) {
    v.tokens.push_back(sp.IdToPiece(id));
    v.scores.push_back(sp.GetScore(id));
    TokenType type = TokenType::kNormal;
    if (sp.IsUnknown(id)) {
      type = TokenType::kUnknown;
    } else if (sp.IsControl(id)) {
      type = TokenType::kControl;
    } else if (sp.IsUnused(id)) {
      type = TokenType::kUnused;
    } else if (sp.IsByte(id)) {
      type = TokenType::kByte;
    }
    v.types.push_back(static_cast<int32_t>(type));
  }
  if (source == TypeSource::kModelProto) {
    const std::string proto = sp.serialized_model_proto();
    const ParsedModel real = parse_model(proto);
    for (size_t id = 0; id < real.pieces.size(); ++id) {
      if (real.pieces[id].type == static_cast<int32_t>(TokenType::kUserDefined)) v.types[id] = real.pieces[id].type;
    }
    v.bos = sp.bos_id();
    v.eos = sp.eos_id();
    v.unk = sp.unk_id();
    v.pad = sp.pad_id();
  }
  return v;
}

// One tokenizer per type source for all tests: each parses a 131,072-piece model.
const Tokenizer& grok_from_vocab(TypeSource source) {
  static const Tokenizer from_converter = groak::tokenizer_from_vocab(grok_vocab(TypeSource::kLlamaCppConverter));
  static const Tokenizer from_proto = groak::tokenizer_from_vocab(grok_vocab(TypeSource::kModelProto));
  return source == TypeSource::kLlamaCppConverter ? from_converter : from_proto;
}

constexpr TypeSource kAllSources[] = {TypeSource::kLlamaCppConverter, TypeSource::kModelProto};

// Random text mixing scripts, whitespace runs, digits, user-defined and special-looking strings and
// invalid UTF-8: the inputs where a wrong setting or type would show.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> atoms = {
      "the", "The", " answer", "Grok", "tokenizer", "x", "é", "naïve", "Straße", "ﬁ", "Å", "Å",
      " ", "  ", "    ", "        ", "\n", "\n\n", "\n\n\n\n\n\n\n\n\n\n\n\n", "\t", "\t\t\t", "\r\n", " \n ",
      "0", "42", "1234567890", "3.14159", "-7", "٣", "½",
      "日本語", "中文", "漢字かな", "한국어", "Привет", "мир", "Ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย",
      "😀", "👍🏽", "🇺🇳", "∑", "→", "€", "©", "\u00A0", "\u3000", "\u200B", "\u0301", "e\u0301",
      "▁", "▁▁", "<|separator|>", "<|mask|>", "<|control7|>", "<|control20|>", "<|control21|>",
      "[BOS]", "[EOS]", "[PAD]", "[UNK]", "<s>", "</s>", "<0x41>",
      "(", ")", "{", "}", ".", ",", "!", "?", "'", "\"", "\\", "#", "//", "==", "->", "::",
      "http://x.ai/", "if (x) { return y; }", "def f(a, b):\n    return a + b\n",
      "\xFF", "\xC0\x80", "\xE2\x82", "\x80", std::string("\0", 1)};
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1);
  std::uniform_int_distribution<int> count(0, 12);
  std::string s;
  for (int i = count(rng); i > 0; --i) s += atoms[pick(rng)];
  return s;
}

// ---------------------------------------------------------------------------------------------
// Synthetic vocabulary laid out like Grok-1's (as shared/tools/gen_grok.py's synthetic_vocab):
// [PAD] [BOS] [EOS] [UNK], 256 byte pieces, then "▁a", "a", "▁b", "b", …, "▁aa", "aa", … with
// decreasing scores.

constexpr int32_t kSyntheticByteBase = 4;
const std::string kSpace = "\u2581";

VocabSpec synthetic_vocab(size_t n) {
  VocabSpec v;
  v.tokens = {"[PAD]", "[BOS]", "[EOS]", "[UNK]"};
  v.types = {3, 3, 3, 2};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.tokens.push_back(buf);
    v.types.push_back(static_cast<int32_t>(TokenType::kByte));
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  const std::string letters = "abcdefghijklmnopqrstuvwxyz";
  std::vector<std::string> words = {""};
  float score = 0.0f;
  while (v.tokens.size() < n) {
    std::vector<std::string> longer;
    for (const std::string& w : words)
      for (char c : letters) longer.push_back(w + c);
    for (const std::string& w : longer) {
      for (const std::string& piece : {kSpace + w, w}) {
        if (v.tokens.size() >= n) break;
        v.tokens.push_back(piece);
        v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
        v.scores.push_back(score);
        score -= 1.0f;
      }
    }
    words = longer;
  }
  return v;
}

int32_t id_of(const VocabSpec& v, const std::string& piece) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == piece) return static_cast<int32_t>(i);
  return -1;
}

// Builds `v` and expects a groak::Error whose message contains `needle`.
void expect_vocab_error(const VocabSpec& v, const std::string& needle) {
  try {
    groak::tokenizer_from_vocab(v);
    ADD_FAILURE() << "expected groak::Error mentioning '" << needle << "'";
  } catch (const groak::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Grok-1

TEST(VocabModel, GrokOracleCases) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const auto cases = read_tokenizer_cases(kGrokDir + "/tokenizer_cases.tsv");
  for (TypeSource source : kAllSources) {
    SCOPED_TRACE(source_name(source));
    const Tokenizer& tok = grok_from_vocab(source);
    for (const TokenizerCase& c : cases) {
      EXPECT_EQ(tok.encode(c.input), c.ids) << "encode(" << c.input_json << ")";
      EXPECT_EQ(tok.decode(c.ids), c.decoded) << "decode of the ids for " << c.input_json;
    }
  }
}

TEST(VocabModel, GrokRandomTextMatchesSentencePiece) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  constexpr int kStrings = 3000;
  constexpr unsigned kSeed = 1234;
  const Tokenizer& reference = grok_reference();
  for (TypeSource source : kAllSources) {
    SCOPED_TRACE(source_name(source));
    const Tokenizer& tok = grok_from_vocab(source);
    std::mt19937 rng(kSeed);
    int mismatches = 0;
    for (int i = 0; i < kStrings && mismatches < 10; ++i) {
      const std::string text = random_text(rng);
      const auto want = reference.encode(text);
      const auto got = tok.encode(text);
      if (got != want) {
        ++mismatches;
        ADD_FAILURE() << "encode differs for "
                      << nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        continue;
      }
      EXPECT_EQ(tok.decode(got), reference.decode(want));
    }
  }
}

TEST(VocabModel, GrokSpecialIdsAndPieces) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  for (TypeSource source : kAllSources) {
    SCOPED_TRACE(source_name(source));
    const Tokenizer& tok = grok_from_vocab(source);
    EXPECT_EQ(tok.vocab_size(), kGrokVocabSize);
    EXPECT_EQ(tok.pad_id(), 0);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.unk_id(), 3);
    EXPECT_EQ(tok.piece(47), "<|separator|>");
    EXPECT_EQ(tok.piece(kGrokByteBase + 0xE2), "<0xE2>");
    EXPECT_EQ(tok.byte_value(kGrokByteBase + 0xE2), 0xE2);
    EXPECT_EQ(tok.byte_value(325), -1);
    EXPECT_EQ(tok.decode({3}), "[UNK]");
  }
}

// The serialized model equals tokenizer.model in every piece and in every spec field we write, so
// the two can differ only in training-only fields we leave out (input paths, seeds, …).
TEST(VocabModel, GrokSerializedModelMatchesTokenizerModel) {
  SKIP_WITHOUT_GROK_TOKENIZER();
  const std::string real_proto = grok_sp().serialized_model_proto();  // `real` points into it
  const ParsedModel real = parse_model(real_proto);
  // proto2 defaults for fields the real model leaves out.
  const std::map<uint32_t, uint64_t> normalizer_defaults = {{5, 1}};  // escape_whitespaces = true
  for (TypeSource source : kAllSources) {
    SCOPED_TRACE(source_name(source));
    const std::string our_proto = groak::serialize_model_proto(grok_vocab(source));
    const ParsedModel ours = parse_model(our_proto);
    ASSERT_EQ(ours.pieces.size(), real.pieces.size());
    int bad = 0;
    for (size_t id = 0; id < real.pieces.size() && bad < 10; ++id) {
      if (!(ours.pieces[id] == real.pieces[id])) {
        ++bad;
        ADD_FAILURE() << "piece " << id << " differs: ours type " << ours.pieces[id].type << " score bits "
                      << ours.pieces[id].score_bits << ", real type " << real.pieces[id].type << " score bits "
                      << real.pieces[id].score_bits;
      }
    }
    auto compare = [](const std::map<uint32_t, Field>& got, const std::map<uint32_t, Field>& want,
                      const std::map<uint32_t, uint64_t>& defaults, const char* spec) {
      for (const auto& [number, field] : got) {
        const auto it = want.find(number);
        if (it == want.end()) {
          const auto d = defaults.find(number);
          ASSERT_NE(d, defaults.end()) << spec << " field " << number << " is not in tokenizer.model";
          EXPECT_EQ(field.value, d->second) << spec << " field " << number << " differs from its default";
          continue;
        }
        EXPECT_EQ(field.wire, it->second.wire) << spec << " field " << number;
        EXPECT_EQ(field.value, it->second.value) << spec << " field " << number;
        EXPECT_EQ(field.bytes, it->second.bytes) << spec << " field " << number;
      }
    };
    compare(ours.trainer, real.trainer, {}, "TrainerSpec");
    compare(ours.normalizer, real.normalizer, normalizer_defaults, "NormalizerSpec");
  }
}

// ---------------------------------------------------------------------------------------------
// Synthetic vocabularies

TEST(VocabModel, SyntheticVocabRoundTrips) {
  constexpr size_t kPieces = 4 + 256 + 2 * 26 + 2 * 26 * 26;  // every one- and two-letter word
  const VocabSpec v = synthetic_vocab(kPieces);
  const Tokenizer tok = groak::tokenizer_from_vocab(v);
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(kPieces));
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.piece(kSyntheticByteBase + 'A'), "<0x41>");
  EXPECT_EQ(tok.byte_value(kSyntheticByteBase + 'A'), 'A');

  // Merges follow the scores: "ab ba" → "▁ab" "▁ba"; "abc" → "▁ab" "c" (no three-letter pieces).
  EXPECT_EQ(tok.encode("ab ba"), (std::vector<int32_t>{id_of(v, kSpace + "ab"), id_of(v, kSpace + "ba")}));
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{id_of(v, kSpace + "ab"), id_of(v, "c")}));
  // Anything outside the letters falls back to bytes.
  EXPECT_EQ(tok.encode("aZ"), (std::vector<int32_t>{id_of(v, kSpace + "a"), kSyntheticByteBase + 'Z'}));
  EXPECT_TRUE(tok.encode("").empty());

  // Text round-trips where every space is followed by a letter ("▁" + letter is a piece) ...
  const std::string texts[] = {"hello world", "the quick brown fox jumps over the lazy dog", "grok-1 says:42!",
                               "aünïcödé☃ xyz日本語😀", "tabs\tand\nnewlines\n\n", "zz yy xx"};
  for (const std::string& text : texts) {
    const auto ids = tok.encode(text);
    for (int32_t id : ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, tok.vocab_size());
    }
    EXPECT_EQ(tok.decode(ids), text) << "round trip of '" << text << "'";
  }
  // ... but this layout (gen_grok.py's) has no "▁" piece: a space before anything else falls back to
  // the bytes of U+2581, and SentencePiece decodes byte pieces literally, so it comes back as "▁".
  EXPECT_EQ(tok.decode(tok.encode("a 4")), "a" + kSpace + "4");

  // With a "▁" piece (every trained SentencePiece model has one) all text round-trips.
  VocabSpec with_space = v;
  const auto first_normal = static_cast<std::ptrdiff_t>(kSyntheticByteBase + 256);
  with_space.tokens.insert(with_space.tokens.begin() + first_normal, kSpace);
  with_space.scores.insert(with_space.scores.begin() + first_normal, 0.0f);
  with_space.types.insert(with_space.types.begin() + first_normal, static_cast<int32_t>(TokenType::kNormal));
  const Tokenizer spaced = groak::tokenizer_from_vocab(with_space);
  const std::string hard_texts[] = {" leading and  double  spaces ", "Grok-1 says: 42!", "ünïcödé ☃ 日本語 😀",
                                    "a \n b", "   "};
  for (const std::string& text : hard_texts) {
    EXPECT_EQ(spaced.decode(spaced.encode(text)), text) << "round trip of '" << text << "'";
  }
}

// A user-defined piece the converter wrote as NORMAL (it precedes the byte pieces) is still matched
// whole in raw text, exactly like one typed USER_DEFINED.
TEST(VocabModel, RecoversUserDefinedPieces) {
  constexpr size_t kPieces = 4 + 256 + 2 * 26;
  for (TokenType as : {TokenType::kNormal, TokenType::kUserDefined}) {
    SCOPED_TRACE(static_cast<int>(as));
    VocabSpec v = synthetic_vocab(kPieces);
    const std::vector<std::string> user = {"\n", "\n\n", "<|separator|>"};
    constexpr int32_t kFirstUser = 4;  // after [PAD] [BOS] [EOS] [UNK], before the bytes
    v.tokens.insert(v.tokens.begin() + kFirstUser, user.begin(), user.end());
    v.scores.insert(v.scores.begin() + kFirstUser, user.size(), 0.0f);
    v.types.insert(v.types.begin() + kFirstUser, user.size(), static_cast<int32_t>(as));
    const Tokenizer tok = groak::tokenizer_from_vocab(v);
    const int32_t sep = kFirstUser + 2, nl = kFirstUser, nl2 = kFirstUser + 1;
    EXPECT_EQ(tok.encode("a<|separator|>b"), (std::vector<int32_t>{id_of(v, kSpace + "a"), sep, id_of(v, "b")}));
    // Longest user-defined prefix first: three newlines → "\n\n" "\n".
    const auto ids = tok.encode("a\n\n\n");
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_EQ(ids[1], nl2);
    EXPECT_EQ(ids[2], nl);
    EXPECT_EQ(tok.decode(ids), "a\n\n\n");
  }
}

TEST(VocabModel, SpecialIds) {
  constexpr size_t kPieces = 4 + 256 + 2 * 26;
  // unk -1: the piece typed unknown.
  VocabSpec v = synthetic_vocab(kPieces);
  v.unk = -1;
  EXPECT_EQ(groak::tokenizer_from_vocab(v).unk_id(), 3);
  // No piece typed unknown: the unk id's piece becomes the unknown piece and decodes as its text.
  v = synthetic_vocab(kPieces);
  v.types[3] = static_cast<int32_t>(TokenType::kNormal);
  const Tokenizer tok = groak::tokenizer_from_vocab(v);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.decode({3}), "[UNK]");
  // Other control pieces can serve as bos/eos.
  v = synthetic_vocab(kPieces);
  v.bos = 2;
  v.eos = 1;
  const Tokenizer swapped = groak::tokenizer_from_vocab(v);
  EXPECT_EQ(swapped.bos_id(), 2);
  EXPECT_EQ(swapped.eos_id(), 1);
}

TEST(VocabModel, Errors) {
  constexpr size_t kPieces = 4 + 256 + 2 * 26;
  const VocabSpec good = synthetic_vocab(kPieces);
  const auto n = static_cast<int32_t>(kPieces);

  VocabSpec v = good;
  v.model = "gpt2";
  expect_vocab_error(v, "supports only 'llama' (a SentencePiece vocabulary");

  expect_vocab_error(VocabSpec{}, "tokenizer.ggml.tokens is empty");

  v = good;
  v.scores.pop_back();
  expect_vocab_error(v, "tokenizer.ggml.scores has");
  v = good;
  v.types.push_back(1);
  expect_vocab_error(v, "tokenizer.ggml.token_type has");

  v = good;
  v.bos = n;
  expect_vocab_error(v, "tokenizer.ggml.bos_token_id is " + std::to_string(n) + ", outside the vocabulary");
  v = good;
  v.eos = -2;
  expect_vocab_error(v, "tokenizer.ggml.eos_token_id is -2");
  v = good;
  v.unk = n + 100;
  expect_vocab_error(v, "tokenizer.ggml.unknown_token_id");
  v = good;
  v.pad = n;
  expect_vocab_error(v, "tokenizer.ggml.padding_token_id");

  // Contradictions and types SentencePiece cannot use.
  v = good;
  v.types[10] = 9;
  expect_vocab_error(v, "is 9; expected 1..6");
  v = good;
  v.unk = 0;
  expect_vocab_error(v, "unknown_token_id is 0 but the piece typed unknown is 3");
  v = good;
  v.types[5] = static_cast<int32_t>(TokenType::kUnknown);
  expect_vocab_error(v, "both typed unknown");
  v = good;
  v.bos = n - 1;
  expect_vocab_error(v, "uses only control pieces");
  v = good;
  v.unk = -1;
  v.types[3] = static_cast<int32_t>(TokenType::kControl);
  expect_vocab_error(v, "no token is typed unknown");
  // A padding id on an ordinary piece (seen in HF-derived files) is dropped, not fatal.
  v = good;
  v.pad = n - 1;
  EXPECT_NO_THROW(tokenizer_from_vocab(v));

  // Rejected by SentencePiece itself: a duplicate piece, a missing byte piece.
  v = good;
  v.tokens.back() = v.tokens[v.tokens.size() - 2];
  expect_vocab_error(v, "SentencePiece rejects");
  v = good;
  v.types[kSyntheticByteBase + 7] = static_cast<int32_t>(TokenType::kNormal);
  expect_vocab_error(v, "SentencePiece rejects");
}
