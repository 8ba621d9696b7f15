// Grok-1's tokenizer rebuilt from GGUF vocabulary metadata (spec GROK1.md §9.2), for a lone .gguf
// file that comes without tokenizer.model. The metadata holds only pieces, scores and types; every
// other setting of the SentencePiece model is Grok-1's (§6): BPE, byte fallback, identity
// normalisation, dummy prefix, whitespace kept. From these we write a SentencePiece ModelProto by hand
// (protobuf wire format; Debian's libsentencepiece ships no protobuf headers) and load it with the
// same library that reads tokenizer.model, so both give the same ids for the Grok-1 vocabulary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace groak {

// tokenizer.ggml.token_type values; they are SentencePiece's piece types (ModelProto.SentencePiece.Type).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer keys of a GGUF file, as read from it.
struct VocabSpec {
  std::string model = "llama";      // tokenizer.ggml.model; only "llama" (SentencePiece) is supported
  std::vector<std::string> tokens;  // [n_vocab] tokenizer.ggml.tokens: piece text as stored (U+2581
                                    //   for a space, "<0xE2>" for a byte piece)
  std::vector<float> scores;        // [n_vocab] tokenizer.ggml.scores (BPE: higher merges first)
  std::vector<int32_t> types;       // [n_vocab] tokenizer.ggml.token_type, TokenType values
  // tokenizer.ggml.{bos,eos,unknown,padding}_token_id. The defaults are Grok-1's ids, to be kept when
  // the file has no such key (llama.cpp's raw Grok converter writes none; llama.cpp itself would then
  // assume unk 0, which is wrong for Grok). -1 = the vocabulary has no such piece; for unk that means
  // "the piece typed UNKNOWN".
  int32_t bos = 1, eos = 2, unk = 3, pad = 0;
};

// Serializes the SentencePiece ModelProto for `vocab` with Grok-1's trainer and normaliser settings.
// Types are taken as given, with two repairs:
//  - llama.cpp's converter cannot see SentencePiece's USER_DEFINED type and writes NORMAL instead.
//    A SentencePiece trainer places user-defined symbols among the meta pieces, before the 256 byte
//    pieces, and never a normal (merged) piece there; so a NORMAL piece before the first BYTE piece
//    is written as USER_DEFINED (Grok-1: ids 4–68, "\n"… "<|separator|>"…, which encode must match
//    whole in raw text).
//  - when no piece is typed UNKNOWN, the piece at `unk` becomes the unknown piece.
// Throws groak::Error naming the offending key/id on: an unsupported tokenizer model, an empty
// vocabulary, tokens/scores/types of different lengths, a type outside 1..6, a special id outside
// the vocabulary, an unk id that disagrees with the piece typed UNKNOWN, or a bos/eos/pad id naming
// a piece that is not a control piece.
std::string serialize_model_proto(const VocabSpec& vocab);

// serialize_model_proto() loaded as a Tokenizer. Also throws groak::Error when SentencePiece rejects
// the vocabulary (e.g. a duplicate or empty piece, or byte pieces missing some of <0x00>…<0xFF>).
// The tokenizer's special ids are the vocabulary's; an absent (-1) bos/eos/pad reads as Grok-1's id,
// as for Tokenizer::load.
Tokenizer tokenizer_from_vocab(const VocabSpec& vocab);

// The vocabulary of a loaded tokenizer as GGUF metadata (what `groak convert` embeds).
VocabSpec vocab_from_tokenizer(const Tokenizer& tok);

}  // namespace groak
