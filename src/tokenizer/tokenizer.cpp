#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <unordered_map>

#include "util/error.h"

namespace groak {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Tokenizer

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error("tokenizer: '" + path +
                "' does not exist or is not a file; pass the SentencePiece tokenizer.model "
                "(Grok-1 ships it at the root of the xai-org/grok-1 repository)");
  }
  Tokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = t.sp_->Load(path);
  if (!status.ok()) {
    throw Error("tokenizer: '" + path + "' is not a SentencePiece model (" + status.ToString() +
                "); pass the tokenizer.model file that came with the checkpoint");
  }
  t.index_model("'" + path + "'");
  return t;
}

Tokenizer Tokenizer::from_serialized_model(std::string_view model_proto, const std::string& origin) {
  Tokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = t.sp_->LoadFromSerializedProto(model_proto);
  if (!status.ok()) {
    throw Error("tokenizer: SentencePiece rejects the model built from " + origin + " (" +
                status.ToString() + ")");
  }
  t.index_model(origin);
  return t;
}

void Tokenizer::index_model(const std::string& origin) {
  Tokenizer& t = *this;
  t.vocab_size_ = t.sp_->GetPieceSize();
  if (t.vocab_size_ <= 0) {
    throw Error("tokenizer: " + origin + " has an empty vocabulary; the file is damaged");
  }
  // SentencePiece answers -1 for a special piece the model does not define: keep Grok-1's ids then.
  auto pick = [&](int from_model, int32_t fallback) {
    return from_model >= 0 ? static_cast<int32_t>(from_model) : fallback;
  };
  t.pad_id_ = pick(t.sp_->pad_id(), 0);
  t.bos_id_ = pick(t.sp_->bos_id(), 1);
  t.eos_id_ = pick(t.sp_->eos_id(), 2);
  t.unk_id_ = pick(t.sp_->unk_id(), 3);

  t.byte_of_.assign(static_cast<size_t>(t.vocab_size_), -1);
  for (int id = 0; id < t.vocab_size_; ++id) {
    if (!t.sp_->IsByte(id)) continue;
    unsigned value = 0;
    // Byte pieces are stored as "<0xHH>".
    if (std::sscanf(t.sp_->IdToPiece(id).c_str(), "<0x%2X>", &value) == 1 && value < 256) {
      t.byte_of_[static_cast<size_t>(id)] = static_cast<int16_t>(value);
    }
  }
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size_) {
    throw Error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size_) + "); the ids do not belong to this tokenizer");
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error("tokenizer: encode failed: " + status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  // SentencePiece does not range-check ids on every path, so check before handing them over.
  for (int32_t id : ids) check_id(id);
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw Error("tokenizer: decode failed: " + status.ToString());
  return text;
}

std::string Tokenizer::piece(int32_t id) const {
  check_id(id);
  return sp_->IdToPiece(id);
}

int Tokenizer::byte_value(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return -1;
  return byte_of_[static_cast<size_t>(id)];
}

// ---------------------------------------------------------------------------------------------
// find_tokenizer

std::string find_tokenizer(const std::string& model_path, std::vector<std::string>* looked) {
  constexpr const char* kFile = "tokenizer.model";
  constexpr const char* kCkptDir = "ckpt-0";
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(model_path), ec).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();  // "…/ckpt-0/"

  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  std::vector<fs::path> dirs;
  fs::path holder = dir;  // the folder holding ckpt-0/
  if (dir.filename() == kCkptDir) {
    dirs.push_back(dir);
    holder = dir.parent_path();
  }
  dirs.push_back(holder);
  if (holder.has_parent_path() && holder.parent_path() != holder) dirs.push_back(holder.parent_path());

  std::string found;
  for (const fs::path& d : dirs) {
    const fs::path candidate = d / kFile;
    if (looked) looked->push_back(candidate.string());
    if (fs::is_regular_file(candidate, ec)) {
      found = candidate.string();
      break;
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// TextStream

namespace {
constexpr int kAnchorByte = 'A';

// Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that cannot lead).
// Deliberately lenient (C0..F7): holding back a byte that later proves invalid only delays output.
size_t utf8_sequence_length(int lead) {
  if (lead >= 0xF0 && lead <= 0xF7) return 4;
  if (lead >= 0xE0) return lead <= 0xEF ? 3 : 1;
  if (lead >= 0xC0) return 2;
  return 1;
}
}  // namespace

TextStream::TextStream(const Tokenizer& tok) : tok_(&tok) {
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.byte_value(id) == kAnchorByte) {
      anchor_id_ = id;
      break;
    }
  }
}

// How many trailing ids of the window are byte pieces of a UTF-8 character still missing bytes.
size_t TextStream::held_bytes() const {
  constexpr size_t kMaxUtf8 = 4;
  for (size_t back = 1; back <= kMaxUtf8 && back <= window_.size(); ++back) {
    const int b = tok_->byte_value(window_[window_.size() - back]);
    if (b < 0) return 0;                 // a non-byte piece ends any byte run
    if ((b & 0xC0) == 0x80) continue;    // continuation byte: keep looking for the lead
    return utf8_sequence_length(b) > back ? back : 0;
  }
  return 0;
}

std::string TextStream::decode_window(size_t n) const {
  std::vector<int32_t> ids;
  ids.reserve(n + 1);
  if (anchored_) ids.push_back(anchor_id_);
  ids.insert(ids.end(), window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(n));
  std::string text = tok_->decode(ids);
  if (anchored_) text.erase(0, 1);  // the anchor decodes to exactly "A"
  return text;
}

std::string TextStream::push(int32_t id) {
  window_.push_back(id);
  const size_t held = held_bytes();
  const std::string text = decode_window(window_.size() - held);
  // decode(prefix) is a prefix of decode(prefix + more) once incomplete bytes are held back.
  std::string out = text.compare(0, emitted_.size(), emitted_) == 0 ? text.substr(emitted_.size())
                                                                    : std::string();
  emitted_ = text;
  // Restart the window at a point where nothing is held and text has been produced, so the next
  // piece is not the first one (whose leading space SentencePiece strips).
  if (held == 0 && anchor_id_ >= 0 && (anchored_ || !text.empty())) {
    anchored_ = true;
    window_.clear();
    emitted_.clear();
  }
  return out;
}

std::string TextStream::flush() {
  const std::string text = decode_window(window_.size());
  std::string out = text.size() > emitted_.size() ? text.substr(emitted_.size()) : std::string();
  anchored_ = false;
  window_.clear();
  emitted_.clear();
  return out;
}

// ---------------------------------------------------------------------------------------------
// train_tokenizer

void train_tokenizer(const std::string& corpus_path, int vocab_size, const std::string& out_model_path) {
  // 4 special pieces + 256 byte pieces must fit, plus some room for characters and merges.
  constexpr int kMinVocab = 4 + 256 + 16;
  constexpr unsigned kSeed = 42;
  std::error_code ec;
  if (!fs::is_regular_file(corpus_path, ec)) {
    throw Error("train_tokenizer: corpus '" + corpus_path + "' does not exist; pass a UTF-8 text file");
  }
  if (vocab_size < kMinVocab) {
    throw Error("train_tokenizer: vocab_size " + std::to_string(vocab_size) + " is too small; use at least " +
                std::to_string(kMinVocab) + " (4 special + 256 byte pieces + characters)");
  }
  const std::unordered_map<std::string, std::string> args = {
      {"input", corpus_path},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"pad_id", "0"}, {"pad_piece", "[PAD]"},
      {"bos_id", "1"}, {"bos_piece", "[BOS]"},
      {"eos_id", "2"}, {"eos_piece", "[EOS]"},
      {"unk_id", "3"}, {"unk_piece", "[UNK]"}, {"unk_surface", "[UNK]"},
      {"normalization_rule_name", "identity"},
      {"split_digits", "true"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentencepiece_length", "16"},
      {"hard_vocab_limit", "true"},
      {"num_threads", "1"},
      {"minloglevel", "2"},  // errors only: the trainer is chatty at INFO
  };
  // The trainer only draws random numbers when sub-sampling the input; fix the seed regardless.
  sentencepiece::SetRandomGeneratorSeed(kSeed);
  std::string model_bytes;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &model_bytes);
  if (!status.ok()) {
    throw Error("train_tokenizer: SentencePiece training on '" + corpus_path + "' failed: " +
                status.ToString() + "; use a larger corpus or a smaller vocab_size");
  }
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(model_bytes).ok() || sp.GetPieceSize() != vocab_size) {
    throw Error("train_tokenizer: the corpus '" + corpus_path + "' yields " +
                std::to_string(sp.GetPieceSize()) + " pieces, not " + std::to_string(vocab_size) +
                "; use a larger corpus or a smaller vocab_size");
  }

  // A reader never sees a half-written model: write beside the target, then rename over it.
  const std::string tmp = out_model_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(model_bytes.data(), static_cast<std::streamsize>(model_bytes.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      throw Error("train_tokenizer: cannot write '" + tmp + "'; check the folder exists and is writable");
    }
  }
  fs::rename(tmp, out_model_path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    throw Error("train_tokenizer: cannot rename '" + tmp + "' to '" + out_model_path + "' (" + why + ")");
  }
}

float Tokenizer::score(int32_t id) const {
  check_id(id);
  return sp_->GetScore(id);
}

int32_t Tokenizer::gguf_type(int32_t id) const {
  check_id(id);
  if (sp_->IsUnknown(id)) return 2;
  if (sp_->IsControl(id)) return 3;
  if (sp_->IsUnused(id)) return 5;
  if (sp_->IsByte(id)) return 6;
  return 1;
}

std::string token_text(const Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.vocab_size()) return "";
  const int b = tok.byte_value(id);
  if (b >= 0) return std::string(1, static_cast<char>(b));
  const std::string p = tok.piece(id);
  const std::string_view space = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  std::string out;
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, space.size(), space) == 0) {
      out += ' ';
      i += space.size();
    } else {
      out += p[i++];
    }
  }
  return out;
}

}  // namespace groak
