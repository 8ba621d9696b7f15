#include "tokenizer/vocab_model.h"

#include <bit>
#include <cstdio>
#include <string_view>
#include <utility>

#include "util/error.h"

namespace groak {

namespace {

// ---------------------------------------------------------------------------------------------
// sentencepiece_model.proto (proto2): the field numbers we write. Checked against the fields of
// Grok-1's tokenizer.model, which uses the same numbers (tests/vocab_model_test.cpp compares them).

namespace model_field {  // message ModelProto
constexpr uint32_t kPieces = 1;          // repeated SentencePiece
constexpr uint32_t kTrainerSpec = 2;     // TrainerSpec
constexpr uint32_t kNormalizerSpec = 3;  // NormalizerSpec
}  // namespace model_field

namespace piece_field {  // message ModelProto.SentencePiece
constexpr uint32_t kPiece = 1;  // string
constexpr uint32_t kScore = 2;  // float
constexpr uint32_t kType = 3;   // enum Type (same numbers as TokenType)
}  // namespace piece_field

namespace trainer_field {  // message TrainerSpec
constexpr uint32_t kModelType = 3;                  // enum ModelType
constexpr uint32_t kVocabSize = 4;                  // int32
constexpr uint32_t kMaxSentencepieceLength = 20;    // int32
constexpr uint32_t kSplitByUnicodeScript = 21;      // bool
constexpr uint32_t kSplitByWhitespace = 22;         // bool
constexpr uint32_t kSplitByNumber = 23;             // bool
constexpr uint32_t kTreatWhitespaceAsSuffix = 24;   // bool
constexpr uint32_t kSplitDigits = 25;               // bool
constexpr uint32_t kAllowWhitespaceOnlyPieces = 26; // bool
constexpr uint32_t kByteFallback = 35;              // bool
constexpr uint32_t kUnkId = 40;                     // int32
constexpr uint32_t kBosId = 41;                     // int32
constexpr uint32_t kEosId = 42;                     // int32
constexpr uint32_t kPadId = 43;                     // int32
constexpr uint32_t kUnkSurface = 44;                // string
constexpr uint32_t kUnkPiece = 45;                  // string
constexpr uint32_t kBosPiece = 46;                  // string
constexpr uint32_t kEosPiece = 47;                  // string
constexpr uint32_t kPadPiece = 48;                  // string
}  // namespace trainer_field

namespace normalizer_field {  // message NormalizerSpec
constexpr uint32_t kName = 1;                    // string
constexpr uint32_t kPrecompiledCharsmap = 2;     // bytes
constexpr uint32_t kAddDummyPrefix = 3;          // bool
constexpr uint32_t kRemoveExtraWhitespaces = 4;  // bool
constexpr uint32_t kEscapeWhitespaces = 5;       // bool
}  // namespace normalizer_field

constexpr int32_t kModelTypeBpe = 2;  // TrainerSpec.ModelType.BPE

// Grok-1's tokenizer.model settings (spec §6). Only the normaliser settings, the model type, byte
// fallback and treat_whitespace_as_suffix change what encode/decode do; the splitting rules only
// matter to the trainer and are written so the model describes Grok-1's faithfully.
constexpr std::string_view kNormalizerName = "identity";  // with an empty charsmap: text kept as is
constexpr bool kAddDummyPrefix = true;
constexpr bool kRemoveExtraWhitespaces = false;
constexpr bool kEscapeWhitespaces = true;  // ' ' → U+2581
constexpr bool kTreatWhitespaceAsSuffix = false;
constexpr bool kSplitDigits = true;
constexpr bool kSplitByNumber = true;
constexpr bool kSplitByUnicodeScript = true;
constexpr bool kSplitByWhitespace = true;
constexpr bool kAllowWhitespaceOnlyPieces = true;
constexpr int32_t kMaxSentencepieceLength = 16;

// llama.cpp's name for a SentencePiece vocabulary.
constexpr std::string_view kSentencePieceModelName = "llama";

// ---------------------------------------------------------------------------------------------
// Protobuf wire format: each field is a varint tag (field << 3 | wire type) and its value.

enum class WireType : uint32_t { kVarint = 0, kLengthDelimited = 2, kFixed32 = 5 };

class ProtoWriter {
 public:
  // int32 and enum fields: a negative value is sign-extended to 64 bits (10 bytes), as protobuf does.
  void int32_field(uint32_t field, int32_t value) {
    tag(field, WireType::kVarint);
    varint(static_cast<uint64_t>(static_cast<int64_t>(value)));
  }
  void bool_field(uint32_t field, bool value) {
    tag(field, WireType::kVarint);
    varint(value ? 1 : 0);
  }
  // float: 4 bytes, IEEE-754 little endian (the sign of -0.0 is kept).
  void float_field(uint32_t field, float value) {
    tag(field, WireType::kFixed32);
    const auto bits = std::bit_cast<uint32_t>(value);
    for (int shift = 0; shift < 32; shift += 8) out_.push_back(static_cast<char>((bits >> shift) & 0xFF));
  }
  // string, bytes and embedded messages.
  void bytes_field(uint32_t field, std::string_view value) {
    tag(field, WireType::kLengthDelimited);
    varint(value.size());
    out_.append(value);
  }
  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }
  void clear() { out_.clear(); }

 private:
  void tag(uint32_t field, WireType wire) {
    varint((static_cast<uint64_t>(field) << 3) | static_cast<uint32_t>(wire));
  }
  void varint(uint64_t value) {
    constexpr uint64_t kLow7 = 0x7F, kMore = 0x80;
    while (value > kLow7) {
      out_.push_back(static_cast<char>((value & kLow7) | kMore));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }

  std::string out_;
};

// ---------------------------------------------------------------------------------------------
// Checking the metadata

constexpr const char* kWhere = "GGUF tokenizer metadata: ";

// A piece for an error message: control bytes escaped, long pieces cut.
std::string show_piece(const std::string& piece) {
  constexpr size_t kMaxShown = 40;
  std::string out = "'";
  for (size_t i = 0; i < piece.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(piece[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (piece.size() > kMaxShown) out += "...";
  return out + "'";
}

const char* type_name(TokenType type) {
  switch (type) {
    case TokenType::kNormal: return "normal";
    case TokenType::kUnknown: return "unknown";
    case TokenType::kControl: return "control";
    case TokenType::kUserDefined: return "user-defined";
    case TokenType::kUnused: return "unused";
    case TokenType::kByte: return "byte";
  }
  return "?";
}

// The vocabulary as it will be written: types repaired (see vocab_model.h) and the unk id resolved.
struct CheckedVocab {
  std::vector<TokenType> types;  // [n_vocab]
  int32_t unk = -1;
  int32_t pad = -1;  // vocab.pad, or -1 when it names no control piece (then ignored)
  bool has_byte_pieces = false;
};

CheckedVocab check_vocab(const VocabSpec& vocab) {
  if (vocab.model != kSentencePieceModelName) {
    throw Error(std::string(kWhere) + "tokenizer.ggml.model is '" + vocab.model +
                "', but groak supports only 'llama' (a SentencePiece vocabulary, which Grok-1 uses); "
                "use a GGUF converted with Grok-1's SentencePiece tokenizer or pass its tokenizer.model");
  }
  const size_t n = vocab.tokens.size();
  if (n == 0) {
    throw Error(std::string(kWhere) +
                "tokenizer.ggml.tokens is empty; the file carries no vocabulary, pass Grok-1's "
                "tokenizer.model instead");
  }
  auto check_length = [&](size_t got, const char* key) {
    if (got != n) {
      throw Error(std::string(kWhere) + key + " has " + std::to_string(got) +
                  " entries but tokenizer.ggml.tokens has " + std::to_string(n) +
                  "; they must match one to one, the file is damaged");
    }
  };
  check_length(vocab.scores.size(), "tokenizer.ggml.scores");
  check_length(vocab.types.size(), "tokenizer.ggml.token_type");

  const auto n_vocab = static_cast<int32_t>(n);
  auto check_special = [&](int32_t id, const char* key) {
    if (id < -1 || id >= n_vocab) {
      throw Error(std::string(kWhere) + key + " is " + std::to_string(id) + ", outside the vocabulary [0, " +
                  std::to_string(n_vocab) + "); the special ids do not belong to this vocabulary");
    }
  };
  check_special(vocab.bos, "tokenizer.ggml.bos_token_id");
  check_special(vocab.eos, "tokenizer.ggml.eos_token_id");
  check_special(vocab.unk, "tokenizer.ggml.unknown_token_id");
  check_special(vocab.pad, "tokenizer.ggml.padding_token_id");

  CheckedVocab out;
  out.types.resize(n);
  int32_t first_byte = -1;
  int32_t typed_unk = -1;
  for (int32_t id = 0; id < n_vocab; ++id) {
    const int32_t t = vocab.types[static_cast<size_t>(id)];
    if (t < static_cast<int32_t>(TokenType::kNormal) || t > static_cast<int32_t>(TokenType::kByte)) {
      throw Error(std::string(kWhere) + "tokenizer.ggml.token_type of token " + std::to_string(id) + " (" +
                  show_piece(vocab.tokens[static_cast<size_t>(id)]) + ") is " + std::to_string(t) +
                  "; expected 1..6 (normal, unknown, control, user-defined, unused, byte)");
    }
    const auto type = static_cast<TokenType>(t);
    out.types[static_cast<size_t>(id)] = type;
    if (type == TokenType::kByte && first_byte < 0) first_byte = id;
    if (type == TokenType::kUnknown) {
      if (typed_unk >= 0) {
        throw Error(std::string(kWhere) + "tokens " + std::to_string(typed_unk) + " and " + std::to_string(id) +
                    " are both typed unknown; a SentencePiece vocabulary has exactly one unknown piece");
      }
      typed_unk = id;
    }
  }
  out.has_byte_pieces = first_byte >= 0;

  // User-defined symbols that llama.cpp's converter wrote as NORMAL: they precede the byte pieces.
  for (int32_t id = 0; id < first_byte; ++id) {
    if (out.types[static_cast<size_t>(id)] == TokenType::kNormal) {
      out.types[static_cast<size_t>(id)] = TokenType::kUserDefined;
    }
  }

  // The unknown piece: the typed one, which the unk id (when given) must name.
  if (typed_unk >= 0) {
    if (vocab.unk >= 0 && vocab.unk != typed_unk) {
      throw Error(std::string(kWhere) + "tokenizer.ggml.unknown_token_id is " + std::to_string(vocab.unk) +
                  " but the piece typed unknown is " + std::to_string(typed_unk) + " (" +
                  show_piece(vocab.tokens[static_cast<size_t>(typed_unk)]) +
                  "); the metadata contradicts itself");
    }
    out.unk = typed_unk;
  } else if (vocab.unk >= 0) {
    out.unk = vocab.unk;
    out.types[static_cast<size_t>(vocab.unk)] = TokenType::kUnknown;
  } else {
    throw Error(std::string(kWhere) +
                "no token is typed unknown (2) and tokenizer.ggml.unknown_token_id is absent; SentencePiece "
                "needs an unknown piece (Grok-1's is id 3, '[UNK]')");
  }

  // SentencePiece only treats control pieces as bos/eos/pad.
  auto check_control = [&](int32_t id, const char* key) {
    if (id < 0) return;
    const TokenType type = out.types[static_cast<size_t>(id)];
    if (type != TokenType::kControl) {
      throw Error(std::string(kWhere) + key + " " + std::to_string(id) + " names " +
                  show_piece(vocab.tokens[static_cast<size_t>(id)]) + ", a " + type_name(type) +
                  " piece; SentencePiece uses only control pieces (type 3) for bos, eos and padding");
    }
  };
  check_control(vocab.bos, "tokenizer.ggml.bos_token_id");
  check_control(vocab.eos, "tokenizer.ggml.eos_token_id");
  // Some HF-derived files point the padding id at an ordinary piece; padding plays no part in
  // tokenizing, so such an id is dropped rather than refusing the file.
  out.pad = vocab.pad >= 0 && out.types[static_cast<size_t>(vocab.pad)] == TokenType::kControl ? vocab.pad : -1;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string serialize_model_proto(const VocabSpec& vocab) {
  const CheckedVocab checked = check_vocab(vocab);
  const size_t n = vocab.tokens.size();

  ProtoWriter model;   // ModelProto
  ProtoWriter nested;  // the message being built for one field of `model`
  for (size_t id = 0; id < n; ++id) {
    nested.clear();
    nested.bytes_field(piece_field::kPiece, vocab.tokens[id]);
    nested.float_field(piece_field::kScore, vocab.scores[id]);
    nested.int32_field(piece_field::kType, static_cast<int32_t>(checked.types[id]));
    model.bytes_field(model_field::kPieces, nested.bytes());
  }

  // TrainerSpec: the model type, byte fallback and special pieces, plus Grok-1's training rules.
  nested.clear();
  nested.int32_field(trainer_field::kModelType, kModelTypeBpe);
  nested.int32_field(trainer_field::kVocabSize, static_cast<int32_t>(n));
  nested.int32_field(trainer_field::kMaxSentencepieceLength, kMaxSentencepieceLength);
  nested.bool_field(trainer_field::kSplitByUnicodeScript, kSplitByUnicodeScript);
  nested.bool_field(trainer_field::kSplitByWhitespace, kSplitByWhitespace);
  nested.bool_field(trainer_field::kSplitByNumber, kSplitByNumber);
  nested.bool_field(trainer_field::kTreatWhitespaceAsSuffix, kTreatWhitespaceAsSuffix);
  nested.bool_field(trainer_field::kSplitDigits, kSplitDigits);
  nested.bool_field(trainer_field::kAllowWhitespaceOnlyPieces, kAllowWhitespaceOnlyPieces);
  // SentencePiece requires byte_fallback exactly when byte pieces exist (then all 256 of them).
  nested.bool_field(trainer_field::kByteFallback, checked.has_byte_pieces);
  nested.int32_field(trainer_field::kUnkId, checked.unk);
  nested.int32_field(trainer_field::kBosId, vocab.bos);
  nested.int32_field(trainer_field::kEosId, vocab.eos);
  nested.int32_field(trainer_field::kPadId, checked.pad);
  // decode() prints the unknown piece's own text, as Grok-1 does (unk_surface "[UNK]").
  const std::string& unk_piece = vocab.tokens[static_cast<size_t>(checked.unk)];
  nested.bytes_field(trainer_field::kUnkSurface, unk_piece);
  nested.bytes_field(trainer_field::kUnkPiece, unk_piece);
  // The processor finds bos/eos/pad by these piece texts; an absent id leaves its piece unset.
  auto special_piece = [&](uint32_t field, int32_t id) {
    if (id >= 0) nested.bytes_field(field, vocab.tokens[static_cast<size_t>(id)]);
  };
  special_piece(trainer_field::kBosPiece, vocab.bos);
  special_piece(trainer_field::kEosPiece, vocab.eos);
  special_piece(trainer_field::kPadPiece, checked.pad);
  model.bytes_field(model_field::kTrainerSpec, nested.bytes());

  // NormalizerSpec: identity (empty charsmap), dummy prefix, whitespace kept and escaped.
  nested.clear();
  nested.bytes_field(normalizer_field::kName, kNormalizerName);
  nested.bytes_field(normalizer_field::kPrecompiledCharsmap, std::string_view());
  nested.bool_field(normalizer_field::kAddDummyPrefix, kAddDummyPrefix);
  nested.bool_field(normalizer_field::kRemoveExtraWhitespaces, kRemoveExtraWhitespaces);
  nested.bool_field(normalizer_field::kEscapeWhitespaces, kEscapeWhitespaces);
  model.bytes_field(model_field::kNormalizerSpec, nested.bytes());

  return model.take();
}

Tokenizer tokenizer_from_vocab(const VocabSpec& vocab) {
  return Tokenizer::from_serialized_model(serialize_model_proto(vocab),
                                          "the GGUF vocabulary (tokenizer.ggml.*)");
}

VocabSpec vocab_from_tokenizer(const Tokenizer& tok) {
  VocabSpec v;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    v.tokens.push_back(tok.piece(id));
    v.scores.push_back(tok.score(id));
    v.types.push_back(tok.gguf_type(id));
  }
  v.bos = tok.bos_id();
  v.eos = tok.eos_id();
  v.unk = tok.unk_id();
  v.pad = tok.pad_id();
  return v;
}

}  // namespace groak
