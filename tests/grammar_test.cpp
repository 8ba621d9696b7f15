// Constrained output: the GBNF parser, the token matcher against a brute-force enumeration of a finite
// language, and JSON Schema → grammar with random walks whose every output is checked against the schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace groak {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr int32_t kEos = 0;

// A vocabulary: id 0 is EOS (prints nothing), then the given strings.
std::shared_ptr<const TokenVocab> vocab_of(const std::vector<std::string>& pieces) {
  std::vector<std::string> bytes{""};
  bytes.insert(bytes.end(), pieces.begin(), pieces.end());
  return std::make_shared<const TokenVocab>(std::move(bytes), kEos);
}

// Every single byte, so any text can be written byte by byte.
std::vector<std::string> byte_pieces() {
  std::vector<std::string> v;
  for (int b = 1; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  return v;
}

bool allowed(const std::vector<uint64_t>& mask, int32_t id) { return (mask[static_cast<size_t>(id) / 64] >> (id % 64)) & 1; }

// Does the grammar accept exactly this text (fed byte by byte)?
bool accepts(const std::string& gbnf, const std::string& text) {
  auto g = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab_of(byte_pieces()));
  GrammarMatcher m(g);
  for (unsigned char c : text)
    if (!m.accept(c == 0 ? -1 : static_cast<int32_t>(c))) return false;  // token id = byte value
  return m.can_end();
}

TEST(Gbnf, ReadsLlamaCppSyntax) {
  const std::string g = R"(# a comment
root ::= greeting ("," ws name)+ "!"?   # trailing comment
greeting ::= "hi" | "h\x65llo"
  | "\u00e9t\u00E9"
name ::= [A-Z] [a-z]{1,3} | "\"" [^"\\]* "\""
ws ::= [ \t\n]*
)";
  EXPECT_TRUE(accepts(g, "hi,Ann"));
  EXPECT_TRUE(accepts(g, "hello, Bo,\n\tCat!"));
  EXPECT_TRUE(accepts(g, "été,\"x y é\""));
  EXPECT_FALSE(accepts(g, "hi"));          // + needs one
  EXPECT_FALSE(accepts(g, "hi,Annie"));    // {1,3}
  EXPECT_FALSE(accepts(g, "hi,ann"));      // [A-Z]
  EXPECT_FALSE(accepts(g, "hi,Ann!!"));
  EXPECT_FALSE(accepts(g, "hey,Ann"));
  EXPECT_TRUE(accepts("root ::= [^a] .", "éa"));
  EXPECT_TRUE(accepts("root ::= \"a\"{2} \"b\"{0,} \"c\"{1,}", "aabbbc"));
  EXPECT_FALSE(accepts("root ::= \"a\"{2} \"b\"{0,} \"c\"{1,}", "abc"));
  EXPECT_TRUE(accepts("root ::= x\nx ::= \"\"", ""));
}

// Rules made for groups and repetitions never take a name the text defines later.
TEST(Gbnf, GeneratedRulesDoNotClashWithWrittenOnes) {
  EXPECT_TRUE(accepts("root ::= \"a\"* (\"b\" | \"c\") root-1 root-2\nroot-1 ::= \"x\"\nroot-2 ::= \"y\"", "aacxy"));
}

// Characters are code points, matched byte by byte: multi-byte characters, classes that hold some of a
// lead byte's characters and not others, and invalid UTF-8 (truncated, overlong, surrogates) refused.
TEST(Gbnf, MatchesUtf8ByteByByte) {
  EXPECT_TRUE(accepts("root ::= [^a]+", "日本語€é𝄞"));
  EXPECT_FALSE(accepts("root ::= [^a]+", "日a"));
  EXPECT_TRUE(accepts("root ::= [\u3000-\u30FF]+", "アイ"));
  EXPECT_FALSE(accepts("root ::= [\u3000-\u30FF]+", "日"));
  EXPECT_TRUE(accepts("root ::= [\U0001D11E] \"x\"", "𝄞x"));
  for (const char* bad : {"\xE6\x97x", "\xE6\x97", "\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                          "\x80", "\xFF"})
    EXPECT_FALSE(accepts("root ::= [^a]*", bad)) << bad;
}

TEST(Gbnf, RefusesWhatItCannotRun) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "no rule named 'root'"},
      {"start ::= \"a\"", "no rule named 'root'"},
      {"root ::= missing", "'missing' is used"},
      {"root ::= root \"a\" | \"b\"", "left-recursive"},
      {"root ::= x\nx ::= y \"a\"\ny ::= \"\" | x", "left-recursive"},
      {"root ::= \"a\" root", "can never finish"},
      {"root ::= \"a\" | b\nb ::= \"c\" b", "'b' can never finish"},
      {"root ::= \"abc", "not closed"},
      {"root ::= [a-z", "not closed"},
      {"root ::= \"\\q\"", "unknown escape"},
      {"root ::= \"a\"{99999}", "repetition count"},
      {"root ::= \"a\"{3,1}", "m <= n"},
      {"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
      {"root ::= (\"a\"", "not closed"},
      {"root ::= <think>", "token terminals"},
      {"root = \"a\"", "'::='"},
      {"root ::= [z-a]", "backwards"},
  };
  for (const auto& [text, want] : bad) {
    try {
      parse_gbnf(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const GrammarError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << text << " → " << e.what();
    }
  }
}

// The language L = item{1,3} "!"? over items {"ab", "a€", "b", "€€"}, enumerated independently of the
// grammar, decides every token at every step of random walks over a vocabulary whose tokens span items,
// split "€" (E2 82 AC) between tokens and include invalid UTF-8.
TEST(Matcher, MaskIsExactlyTheViablePrefixes) {
  const std::vector<std::string> items = {"ab", "a\u20ac", "b", "\u20ac\u20ac"};
  std::set<std::string> lang;
  std::vector<std::string> bodies;
  for (const auto& a : items) {
    bodies.push_back(a);
    for (const auto& b : items) {
      bodies.push_back(a + b);
      for (const auto& c : items) bodies.push_back(a + b + c);
    }
  }
  for (const auto& s : bodies) {
    lang.insert(s);
    lang.insert(s + "!");
  }
  const std::vector<std::string> pieces = {"a", "b", "ab", "ba", "bab", "\u20ac", "\xE2", "\x82", "\xAC", "\xE2\x82",
                                           "\x82\xAC", "b\xE2", "\xAC!", "!", "ab!", "\u20ac\u20ac!", "x", "\xFF", "a\u20ac\u20ac", "bb"};
  auto vocab = vocab_of(pieces);
  auto g = std::make_shared<CompiledGrammar>(
      parse_gbnf("root ::= item item? item? \"!\"?\nitem ::= \"ab\" | \"a\u20ac\" | \"b\" | \"\u20ac\u20ac\""), vocab);
  auto viable = [&](const std::string& p) {
    for (const auto& s : lang)
      if (s.compare(0, p.size(), p) == 0) return true;
    return false;
  };
  std::mt19937 rng(7);
  int checked = 0;
  for (int walk = 0; walk < 300; ++walk) {
    GrammarMatcher m(g);
    CompiledGrammar::Ref r = g->start();
    std::string text;
    for (int step = 0; step < 12; ++step) {
      const auto mask = *g->mask(r);
      std::vector<int32_t> ok;
      for (int32_t id = 1; id < vocab->size(); ++id) {
        const bool want = viable(text + vocab->bytes(id));
        ASSERT_EQ(allowed(mask, id), want) << "after '" << text << "' token '" << vocab->bytes(id) << "'";
        if (want) ok.push_back(id);
        ++checked;
      }
      ASSERT_EQ(allowed(mask, kEos), lang.count(text) > 0) << "EOS after '" << text << "'";
      EXPECT_EQ(m.can_end(), lang.count(text) > 0);
      EXPECT_EQ(m.must_end(), ok.empty());
      if (ok.empty()) break;
      const int32_t id = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
      ASSERT_TRUE(m.accept(id));
      ASSERT_TRUE(g->advance(r, id));
      text += vocab->bytes(id);
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(Matcher, RefusesTokensOutsideTheMask) {
  auto g = std::make_shared<CompiledGrammar>(parse_gbnf("root ::= \"ab\""), vocab_of({"a", "b", "ab", "ba"}));
  GrammarMatcher m(g);
  EXPECT_FALSE(m.accept(2));   // "b"
  EXPECT_FALSE(m.accept(4));   // "ba"
  EXPECT_FALSE(m.accept(kEos));  // prints nothing: never a grammar token
  EXPECT_TRUE(m.accept(1));
  EXPECT_FALSE(m.must_end());
  EXPECT_TRUE(m.accept(2));
  EXPECT_TRUE(m.must_end());
  EXPECT_TRUE(m.can_end());
}

TEST(Matcher, NoTokenCanStartIsAnError) {
  auto g = std::make_shared<CompiledGrammar>(parse_gbnf("root ::= \"z\""), vocab_of({"a", "b"}));
  EXPECT_THROW(g->check_start(), GrammarError);
}

// A schema with nested objects, enums, arrays, optional and nullable fields, a $ref and formats.
const char* kSchema = R"({
  "type": "object",
  "title": "a person",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 8},
    "age": {"type": "integer"},
    "kind": {"enum": ["cat", "dog", 3, null]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 1, "maxItems": 3},
    "home": {"$ref": "#/$defs/place"},
    "score": {"type": ["number", "null"]},
    "born": {"type": "string", "format": "date"},
    "ok": {"type": "boolean"}
  },
  "required": ["name", "kind", "home"],
  "additionalProperties": false,
  "$defs": {
    "place": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 6},
              "zip": {"const": "X1"}}, "required": ["zip"], "additionalProperties": false}
  }
})";

// kSchema's rules, checked by hand (independently of the converter). Returns "" or what is wrong.
std::string invalid_for_schema(const std::string& text) {
  const json v = json::parse(text, nullptr, false);
  if (v.is_discarded()) return "not JSON";
  if (!v.is_object()) return "not an object";
  auto utf8_len = [](const std::string& s) {
    return std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  };
  const std::set<std::string> known = {"name", "age", "kind", "tags", "home", "score", "born", "ok"};
  for (const auto& [k, x] : v.items())
    if (!known.count(k)) return "extra property " + k;
  for (const char* r : {"name", "kind", "home"})
    if (!v.contains(r)) return std::string("missing ") + r;
  if (!v["name"].is_string() || utf8_len(v["name"]) < 1 || utf8_len(v["name"]) > 8) return "name";
  if (v.contains("age") && !v["age"].is_number_integer()) return "age";
  const json& kind = v["kind"];
  if (!(kind == "cat" || kind == "dog" || kind == 3 || kind.is_null())) return "kind";
  if (v.contains("tags")) {
    const json& t = v["tags"];
    if (!t.is_array() || t.empty() || t.size() > 3) return "tags size";
    for (const json& s : t)
      if (!s.is_string() || utf8_len(s) > 4) return "tag";
  }
  const json& home = v["home"];
  if (!home.is_object() || !home.contains("zip") || home["zip"] != "X1") return "home.zip";
  for (const auto& [k, x] : home.items())
    if (k != "zip" && k != "city") return "home extra";
  if (home.contains("city") && (!home["city"].is_string() || utf8_len(home["city"]) > 6)) return "home.city";
  if (v.contains("score") && !v["score"].is_number() && !v["score"].is_null()) return "score";
  if (v.contains("born")) {
    const std::string b = v["born"].is_string() ? v["born"].get<std::string>() : "";
    if (b.size() != 10 || b[4] != '-' || b[7] != '-') return "born";
  }
  if (v.contains("ok") && !v["ok"].is_boolean()) return "ok";
  return "";
}

// Random walks over the allowed tokens (uniformly, as a random-weight model would roughly do) until the
// grammar is complete: every output must validate. Returns how many walks ran.
int random_walks(const std::shared_ptr<const TokenVocab>& vocab, int walks, uint32_t seed, std::set<std::string>* keys_seen) {
  auto g = std::make_shared<CompiledGrammar>(parse_gbnf(json_schema_to_gbnf(ordered_json::parse(kSchema))), vocab);
  std::mt19937 rng(seed);
  for (int w = 0; w < walks; ++w) {
    GrammarMatcher m(g);
    CompiledGrammar::Ref r = g->start();
    std::string text;
    for (int step = 0; step < 400 && !m.must_end(); ++step) {
      const auto mask = *g->mask(r);
      std::vector<int32_t> ok;
      for (int32_t id = 0; id < vocab->size(); ++id)
        if (allowed(mask, id)) ok.push_back(id);
      EXPECT_FALSE(ok.empty()) << "dead end after " << text;
      if (ok.empty()) return w;
      const int32_t id = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
      if (id == vocab->eos()) break;
      EXPECT_TRUE(m.accept(id));
      EXPECT_TRUE(g->advance(r, id));
      text += vocab->bytes(id);
    }
    EXPECT_TRUE(m.can_end()) << "unfinished after 400 tokens: " << text;
    const std::string why = invalid_for_schema(text);
    EXPECT_EQ(why, "") << text;
    if (!why.empty()) return w;
    if (keys_seen) {
      const json v = json::parse(text);
      for (const auto& [k, x] : v.items()) keys_seen->insert(k);
    }
  }
  return walks;
}

TEST(JsonSchema, EveryRandomOutputValidates) {
  // Bytes, JSON punctuation runs and multi-byte characters, so tokens span several grammar symbols.
  std::vector<std::string> pieces = byte_pieces();
  for (const char* p : {"{\"", "\":", "\": \"", "\",", "\", \"", "},", "}}", "]}", "\"]", "[\"", "null", "true", "false",
                        "name", "age", "kind", "cat", "dog", "home", "zip", "X1", "\"X1\"", " ", "  ", "\n", "12", "3.5",
                        "é", "日本", "\\n", "\\u00", "2024-", "01-", "e+1", "-0", "00"})
    pieces.push_back(p);
  std::set<std::string> keys;
  EXPECT_EQ(random_walks(vocab_of(pieces), 300, 11, &keys), 300);
  // The walks reached the optional properties too.
  for (const char* k : {"age", "tags", "score", "born", "ok"}) EXPECT_TRUE(keys.count(k)) << k;
}

TEST(JsonSchema, EveryRandomOutputValidatesOnGrokVocabulary) {
  if (!std::filesystem::exists(test::kGrokModel)) GTEST_SKIP() << "needs ../shared/grok-1/tokenizer.model";
  const Tokenizer tok = Tokenizer::load(test::kGrokModel);
  EXPECT_EQ(random_walks(TokenVocab::of(tok), 40, 5, nullptr), 40);
}

TEST(JsonSchema, PropertiesComeInTheSchemasOrder) {
  const std::string g = json_schema_to_gbnf(ordered_json::parse(
      R"({"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"}},"required":["zeta","alpha"]})"));
  EXPECT_TRUE(accepts(g, "{\"zeta\": 1, \"alpha\": 2}"));
  EXPECT_FALSE(accepts(g, "{\"alpha\": 2, \"zeta\": 1}"));
  EXPECT_FALSE(accepts(g, "{\"zeta\": 1}"));
}

TEST(JsonSchema, OptionalPropertiesAndCommas) {
  const std::string g = json_schema_to_gbnf(ordered_json::parse(
      R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"required":["b"]})"));
  for (const char* ok : {"{\"b\":1}", "{\"a\":1,\"b\":2}", "{\"b\":1,\"c\":2}", "{\"a\":1,\"b\":2,\"c\":3}"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* no : {"{}", "{\"a\":1}", "{,\"b\":1}", "{\"b\":1,}", "{\"a\":1\"b\":2}", "{\"c\":1,\"b\":2}"})
    EXPECT_FALSE(accepts(g, no)) << no;
  const std::string all_opt = json_schema_to_gbnf(ordered_json::parse(
      R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"additionalProperties":false})"));
  for (const char* ok : {"{}", "{\"a\":1}", "{\"b\":1}", "{\"a\":1,\"b\":2}"}) EXPECT_TRUE(accepts(all_opt, ok)) << ok;
  EXPECT_FALSE(accepts(all_opt, "{,\"b\":1}"));
}

TEST(JsonSchema, ArraysMapsAndRecursion) {
  const std::string arr = json_schema_to_gbnf(json::parse(R"({"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":3})"));
  EXPECT_FALSE(accepts(arr, "[true]"));
  EXPECT_TRUE(accepts(arr, "[true, false]"));
  EXPECT_TRUE(accepts(arr, "[true,false,true]"));
  EXPECT_FALSE(accepts(arr, "[true,false,true,true]"));
  const std::string map = json_schema_to_gbnf(json::parse(R"({"type":"object","additionalProperties":{"type":"integer"}})"));
  EXPECT_TRUE(accepts(map, "{\"x\": 1, \"y\": -2}"));
  EXPECT_FALSE(accepts(map, "{\"x\": \"1\"}"));
  const std::string tree = json_schema_to_gbnf(ordered_json::parse(
      R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
          "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],"additionalProperties":false}}})"));
  EXPECT_TRUE(accepts(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"));
  EXPECT_FALSE(accepts(tree, "{\"v\":1,\"kids\":[{}]}"));
  EXPECT_TRUE(accepts(json_object_gbnf(), "{\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\"}"));
  EXPECT_FALSE(accepts(json_object_gbnf(), "[1]"));
}

TEST(JsonSchema, RefusesWhatItCannotEnforceNamingThePath) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"type":"object","properties":{"age":{"type":"integer","minimum":0}}})", "properties.age.minimum"},
      {R"({"type":"string","pattern":"^a+$"})", "'pattern' is not supported"},
      {R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", "use 'anyOf'"},
      {R"({"type":"object","properties":{"a":{"type":"string"}},"required":["b"]})", "not one of the properties"},
      {R"({"$ref":"#/$defs/nope"})", "points at nothing"},
      {R"({"$ref":"https://example.com/s.json"})", "only local references"},
      {R"({"type":"strin"})", "unknown type 'strin'"},
      {R"({"type":"string","format":"email"})", "format 'email'"},
      {R"({"type":"array","uniqueItems":true})", "uniqueItems"},
      {R"({"type":"string","maxLength":1,"minLength":2})", "below minLength"},
      {R"({"enum":[]})", "non-empty"},
      {R"(false)", "matches nothing"},
      {R"(42)", "must be an object"},
  };
  for (const auto& [text, want] : bad) {
    try {
      json_schema_to_gbnf(ordered_json::parse(text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const GrammarError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << text << " → " << e.what();
    }
  }
  // A schema that needs itself forever is refused by the grammar's checks.
  const std::string endless = json_schema_to_gbnf(json::parse(
      R"({"$ref":"#/$defs/n","$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}},"required":["next"]}}})"));
  EXPECT_THROW(parse_gbnf(endless), GrammarError);
}

}  // namespace
}  // namespace groak

namespace groak {
namespace {

// Runs a grammar a little: a few random walks over the byte vocabulary. GrammarError is an answer.
void exercise(const std::string& text, std::mt19937& rng, int* parsed, int* rejected) {
  try {
    auto g = std::make_shared<CompiledGrammar>(parse_gbnf(text), vocab_of(byte_pieces()));
    ++*parsed;
    for (int w = 0; w < 3; ++w) {
      CompiledGrammar::Ref r = g->start();
      for (int step = 0; step < 16; ++step) {
        const auto mask = *g->mask(r);
        std::vector<int32_t> ok;
        for (int32_t id = 1; id < 256; ++id)
          if (allowed(mask, id)) ok.push_back(id);
        if (ok.empty()) break;
        ASSERT_TRUE(g->advance(r, ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)]));
      }
    }
  } catch (const GrammarError&) {
    ++*rejected;
  }
}

// Mutations of valid grammars parse (and then run) or throw GrammarError: never another exception, a
// crash or a hang (ASan runs this too).
TEST(Gbnf, MiniFuzzParsesOrThrowsGrammarError) {
  const std::vector<std::string> seeds = {
      json_object_gbnf(),
      json_schema_to_gbnf(ordered_json::parse(kSchema)),
      "root ::= greeting (\",\" ws name)+ \"!\"?\ngreeting ::= \"hi\" | \"h\\x65llo\"\nname ::= [A-Z] [a-z]{1,3} | \"\\\"\" [^\"\\\\]* \"\\\"\"\nws ::= [ \\t\\n]*\n",
  };
  const std::string alphabet = "\"()[]|*+?{},:=-^.#\\ \nazAZ019ux";
  std::mt19937 rng(123);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string t = seeds[static_cast<size_t>(i) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 2);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      const size_t at = rng() % t.size();
      switch (rng() % 4) {
        case 0: t[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: t.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: t.erase(at, 1 + rng() % 8); break;
        default: t.resize(at); break;
      }
    }
    exercise(t, rng, &parsed, &rejected);
  }
  std::printf("grammar fuzz: %d parsed, %d rejected with GrammarError\n", parsed, rejected);
  EXPECT_GT(parsed, 50);
  EXPECT_GT(rejected, 100);
}

TEST(Gbnf, DeepInputsAreBoundedNotAStackOverflow) {
  std::mt19937 rng(1);
  int parsed = 0, rejected = 0;
  exercise("root ::= " + std::string(100000, '(') + "\"a\"" + std::string(100000, ')'), rng, &parsed, &rejected);
  EXPECT_EQ(rejected, 1);
  // A chain of 50000 rules, each starting with the next: expanded by a work list, not recursion.
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 50000; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
  chain += "r50000 ::= \"a\"\n";
  EXPECT_TRUE(accepts(chain, "a"));
  // A schema nested 100000 deep is refused naming the depth.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "{\"items\":";
  deep += "{}" + std::string(100000, '}');
  EXPECT_THROW(json_schema_to_gbnf(ordered_json::parse(deep)), GrammarError);
}

// Random schemas built from the keywords (with values of every JSON type, right or wrong): the converter
// gives a grammar that parses, or throws GrammarError naming what it refuses.
TEST(JsonSchema, MiniFuzzConvertsOrThrowsGrammarError) {
  std::mt19937 rng(77);
  const std::vector<std::string> keys = {"type", "properties", "required", "additionalProperties", "items", "minItems",
                                         "maxItems", "enum", "const", "anyOf", "allOf", "$ref", "minLength", "maxLength",
                                         "format", "nullable", "title", "$defs", "oneOf", "pattern", "x"};
  std::function<ordered_json(int)> value;
  std::function<ordered_json(int)> schema = [&](int depth) -> ordered_json {
    ordered_json s = ordered_json::object();
    const int n = static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) s[keys[rng() % keys.size()]] = value(depth + 1);
    return s;
  };
  value = [&](int depth) -> ordered_json {
    switch (depth > 4 ? rng() % 6 : rng() % 10) {
      case 0: return "string";
      case 1: return static_cast<int>(rng() % 5) - 1;
      case 2: return rng() % 2 == 0;
      case 3: return nullptr;
      case 4: return ordered_json::array({"object", "null"});
      case 5: return "#/$defs/a";
      case 6: return ordered_json::array({schema(depth), schema(depth)});
      case 7: return ordered_json{{"a", schema(depth)}, {"b", schema(depth)}};
      default: return schema(depth);
    }
  };
  int converted = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    const ordered_json s = rng() % 8 == 0 ? value(0) : schema(0);
    try {
      const std::string g = json_schema_to_gbnf(s);
      parse_gbnf(g);
      ++converted;
    } catch (const GrammarError&) {
      ++rejected;
    }
  }
  std::printf("schema fuzz: %d converted, %d rejected with GrammarError\n", converted, rejected);
  EXPECT_GT(converted, 100);
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace groak
