// Grok-1's tokenizer: a thin wrapper over the SentencePiece library (Debian libsentencepiece 0.1.97),
// plus a streaming detokenizer and a trainer for small Grok-like test tokenizers.
// Spec: shared/docs/GROK1.md §6. The official runner encodes without BOS/EOS, so encode() adds none.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace groak {

class Tokenizer {
 public:
  // Loads a SentencePiece .model file; throws groak::Error naming the path if it is missing or is
  // not a SentencePiece model.
  static Tokenizer load(const std::string& path);
  // Builds a tokenizer from a serialized SentencePiece ModelProto held in memory (vocab_model.h
  // writes one from GGUF vocabulary metadata). `origin` names the source in error messages.
  // Throws groak::Error if SentencePiece rejects the model.
  static Tokenizer from_serialized_model(std::string_view model_proto, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text → ids, no BOS/EOS. Invalid UTF-8 is handled as SentencePiece does (each bad byte is read
  // as U+FFFD and encoded like any other character); it never crashes.
  std::vector<int32_t> encode(std::string_view text) const;
  // Ids → text as SentencePiece decodes it (control ids vanish, [UNK] prints as "[UNK]", byte ids
  // are joined and invalid byte runs become U+FFFD). Throws groak::Error on an id outside the vocab.
  std::string decode(const std::vector<int32_t>& ids) const;
  // The stored piece text (with U+2581 for spaces, "<0xE2>" for bytes). Throws on a bad id.
  std::string piece(int32_t id) const;
  // SentencePiece's score of a piece and its type as GGUF numbers it (vocab_model.h TokenType; like
  // llama.cpp's converter, user-defined pieces are reported as normal).
  float score(int32_t id) const;
  int32_t gguf_type(int32_t id) const;
  // The byte a byte-fallback piece stands for, or -1 if `id` is not a byte piece.
  int byte_value(int32_t id) const;

  int32_t vocab_size() const { return vocab_size_; }
  // Grok-1: pad 0, bos 1, eos 2, unk 3. Taken from the model; these values where it defines none.
  int32_t pad_id() const { return pad_id_; }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }

 private:
  Tokenizer() = default;
  // Fills vocab_size_, the special ids and byte_of_ from the loaded sp_; `origin` is for errors.
  void index_model(const std::string& origin);
  void check_id(int32_t id) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t vocab_size_ = 0;
  int32_t pad_id_ = 0, bos_id_ = 1, eos_id_ = 2, unk_id_ = 3;
  std::vector<int16_t> byte_of_;  // [vocab_size] byte value of each byte piece, -1 elsewhere
};

// Finds tokenizer.model for a model path: the folder holding ckpt-0/, ckpt-0/ itself, or a file
// (e.g. a tensor inside ckpt-0/). Looks in ckpt-0/ (when given), beside ckpt-0/, then in the parent of
// that folder (xai-org/grok-1 keeps tokenizer.model at the repo root and the weights in
// checkpoints/ckpt-0/). Returns "" when none exists; `looked` (optional) receives every path tried,
// in order, for the caller's error message.
std::string find_tokenizer(const std::string& model_path, std::vector<std::string>* looked);

// Streaming detokenizer: push() ids as they are generated and print what it returns. It only ever
// returns complete UTF-8 text (byte-fallback pieces of one character are held back until the
// character is complete), and the concatenation of all push() results plus flush() equals
// tok.decode(all ids pushed). Assumes the leading-space trim applies to the first piece only (true
// unless a model sets treat_whitespace_as_suffix). The tokenizer must outlive the stream.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tok);
  std::string push(int32_t id);
  // Returns whatever is still held (an unfinished byte sequence decodes as U+FFFD, as in decode())
  // and starts a fresh stream.
  std::string flush();

 private:
  size_t held_bytes() const;
  std::string decode_window(size_t n) const;

  const Tokenizer* tok_;
  // Decoding restarts at a window so each push costs O(1) instead of re-decoding everything. Once
  // text has been produced, the window is decoded behind an anchor piece (byte 'A', never trimmed)
  // so SentencePiece does not strip the window's first leading space; the 'A' is then dropped.
  int32_t anchor_id_ = -1;       // id of <0x41>, or -1 (then the window is the whole stream)
  bool anchored_ = false;        // text was produced before the window
  std::vector<int32_t> window_;  // ids since the restart point
  std::string emitted_;          // text of the window already returned
};

// Trains a Grok-1-like tokenizer (BPE, byte fallback, [PAD]/[BOS]/[EOS]/[UNK] = 0/1/2/3, identity
// normalisation, split digits, dummy prefix, whitespace kept) with exactly `vocab_size` pieces on
// the text file `corpus_path` (one paragraph per line). Deterministic: fixed seed, one thread.
// Writes `out_model_path` atomically (temp file, then rename). Throws groak::Error on failure.
void train_tokenizer(const std::string& corpus_path, int vocab_size, const std::string& out_model_path);

// The text one token appends as bytes (SentencePiece's ▁ as a space; a byte piece as its byte; a control
// piece as its piece text): what OpenAI's logprobs show and what a grammar matches. "" for an id outside
// the vocabulary.
std::string token_text(const Tokenizer& tok, int32_t id);

}  // namespace groak
