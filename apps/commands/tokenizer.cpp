// The tokenizer commands: groak tokenize, detokenize and train-tokenizer.
#include <cstdio>
#include <memory>

#include "../cli.h"
#include "../options.h"
#include "tokenizer/tokenizer.h"

namespace groak::cli {

namespace {

struct TokenizerArgs {
  std::string tokenizer;
  bool pieces = false;
};

int run_tokenize(const TokenizerArgs& a) {
  Tokenizer tok = Tokenizer::load(a.tokenizer);
  std::vector<int32_t> ids = tok.encode(read_stdin());
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (a.pieces)
      write_stdout(std::to_string(ids[i]) + "\t" + tok.piece(ids[i]) + "\n");
    else
      line += (i ? " " : "") + std::to_string(ids[i]);
  }
  if (!a.pieces) write_stdout(line + "\n");
  check_stdout();
  return 0;
}

int run_detokenize(const TokenizerArgs& a) {
  Tokenizer tok = Tokenizer::load(a.tokenizer);
  std::string in = read_stdin();
  std::vector<int32_t> ids = in.find_first_not_of(" \t\r\n,") == std::string::npos
                                 ? std::vector<int32_t>{}
                                 : parse_token_list(in, "stdin");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tok.vocab_size())
      throw Error("token id " + std::to_string(ids[i]) + " (at index " + std::to_string(i) +
                  ") is outside the tokenizer's vocabulary [0, " + std::to_string(tok.vocab_size()) + ")");
  }
  write_stdout(tok.decode(ids));  // exactly the text: tokenize | detokenize round-trips
  check_stdout();
  return 0;
}

struct TrainArgs {
  std::string corpus, out;
  int vocab = 0;
};

}  // namespace

Command tokenize_command() {
  auto a = std::make_shared<TokenizerArgs>();
  Command c;
  c.name = "tokenize";
  c.description = "Read UTF-8 text from stdin and print its token ids (no BOS)";
  c.options = [a](CLI::App& cmd) {
    cmd.add_option("--tokenizer", a->tokenizer, "SentencePiece tokenizer.model")->required()->check(CLI::ExistingFile);
    cmd.add_flag("--pieces", a->pieces, "print one 'id<TAB>piece' per line");
  };
  c.run = [a](Job&) { return run_tokenize(*a); };
  return c;
}

Command detokenize_command() {
  auto a = std::make_shared<TokenizerArgs>();
  Command c;
  c.name = "detokenize";
  c.description = "Read space-separated token ids from stdin and print the text";
  c.options = [a](CLI::App& cmd) {
    cmd.add_option("--tokenizer", a->tokenizer, "SentencePiece tokenizer.model")->required()->check(CLI::ExistingFile);
  };
  c.run = [a](Job&) { return run_detokenize(*a); };
  return c;
}

Command train_tokenizer_command() {
  auto a = std::make_shared<TrainArgs>();
  Command c;
  c.name = "train-tokenizer";
  c.description = "Train a small Grok-1-like SentencePiece tokenizer (BPE, byte fallback) on a text file";
  c.options = [a](CLI::App& cmd) {
    cmd.add_option("--corpus", a->corpus, "UTF-8 text, one paragraph per line")->required()->check(CLI::ExistingFile);
    cmd.add_option("--vocab", a->vocab, "number of pieces (must equal the model's vocab_size)")->required()
        ->check(CLI::Range(300, 1 << 20));
    cmd.add_option("--out", a->out, "output tokenizer.model")->required();
  };
  c.run = [a](Job&) {
    train_tokenizer(a->corpus, a->vocab, a->out);
    std::fprintf(stderr, "train-tokenizer: %d pieces -> %s\n", a->vocab, a->out.c_str());
    return 0;
  };
  return c;
}

}  // namespace groak::cli
