// groak generate and chat with --grammar / --json-schema (llama.cpp's flags): the text follows them, and
// one that cannot be enforced ends the command with an error naming the flag.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace groak::test {

TEST(GrammarCli, GenerateAndChatFollowTheConstraint) {
  TempDir dir;
  const std::string model = dir / "m";
  std::string out;
  ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 4 --out " + model, &out), 0) << out;
  const std::string text = dir / "out.txt";
  const std::string schema =
      R"('{"type":"object","properties":{"pet":{"enum":["cat","dog"]},"age":{"type":"integer"}},"required":["pet","age"],"additionalProperties":false}')";
  for (int seed = 1; seed <= 4; ++seed) {
    ASSERT_EQ(run_command("(" + groak() + " generate --model " + model + " -p 'A pet:' -n 400 --temp 1 --seed " +
                              std::to_string(seed) + " -j " + schema + " > " + text + ")", &out), 0) << out;
    // The grammar's end, or EOS where the grammar may end.
    EXPECT_TRUE(out.find("stopped: the grammar's end") != std::string::npos || out.find("stopped: end of sequence") != std::string::npos) << out;
    const nlohmann::json v = nlohmann::json::parse(read_text(text), nullptr, false);
    ASSERT_TRUE(v.is_object()) << read_text(text);
    EXPECT_TRUE(v["pet"] == "cat" || v["pet"] == "dog") << v;
    EXPECT_TRUE(v["age"].is_number_integer()) << v;
    EXPECT_EQ(v.size(), 2u) << v;
  }
  ASSERT_EQ(run_command("(printf 'Hi\\nAgain\\n' | " + groak() + " chat --model " + model +
                            " -n 20 --grammar 'root ::= (\"yes\" | \"no\") \".\"' > " + text + ")", &out), 0) << out;
  const std::string replies = read_text(text);
  size_t n = 0;
  for (const char* r : {"yes.", "no."})
    for (size_t at = replies.find(r); at != std::string::npos; at = replies.find(r, at + 1)) ++n;
  EXPECT_EQ(n, 2u) << replies;
  // Refused, naming the flag.
  EXPECT_NE(run_command(groak() + " generate --model " + model + " -p x -j '{\"type\":\"string\",\"pattern\":\"a\"}'", &out), 0);
  EXPECT_NE(out.find("--json-schema: schema at pattern"), std::string::npos) << out;
  EXPECT_NE(run_command(groak() + " generate --model " + model + " -p x --grammar 'root ::= root \"a\"'", &out), 0);
  EXPECT_NE(out.find("--grammar: grammar: rule 'root'"), std::string::npos) << out;
  EXPECT_NE(run_command(groak() + " generate --model " + model + " -p x --grammar-file " + dir / "missing.gbnf", &out), 0);
  EXPECT_NE(out.find("--grammar-file"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " generate --model " + model + " -p x --grammar 'root ::= \"a\"' -j '{}'", &out), 2) << out;
}

}  // namespace groak::test
