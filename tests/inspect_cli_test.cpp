// groak inspect and groak experts through the CLI on a synthetic tiny model: the files they write (numpy
// loads every .npy with the shape inspect.json states; the report holds its data and no network address),
// and their one-line errors. The report in Chromium: tests/e2e/inspect_report_test.mjs (ctest E2E.inspect).
#include <fstream>

#include "io/npy.h"
#include "test_util.h"

namespace groak::test {

namespace {

// A tiny synthetic model with its trained tokenizer, made once for this file's tests.
const std::string& tiny_model() {
  static TempDir dir;
  static const std::string model = [] {
    const std::string m = dir / "tiny";
    std::string out;
    if (run_command(groak() + " synth --preset tiny --seed 3 --out " + m, &out) != 0)
      throw std::runtime_error("synth failed: " + out);
    return m;
  }();
  return model;
}
}  // namespace

TEST(Npy, HeaderIsNumpysVersionOneAlignedTo64) {
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const std::string b = npy_bytes("<f4", {2, 3}, v.data(), v.size(), sizeof(float));
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header = static_cast<uint8_t>(b[8]) | static_cast<size_t>(static_cast<uint8_t>(b[9])) << 8;
  EXPECT_EQ((10 + header) % 64, 0u);
  EXPECT_NE(b.find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), std::string::npos);
  EXPECT_EQ(b[10 + header - 1], '\n');
  EXPECT_EQ(b.size(), 10 + header + 24);
  EXPECT_NE(npy_bytes("<i4", {5}, v.data(), 5, 4).find("'shape': (5, )"), std::string::npos);
  error_of([&] { npy_bytes("<f4", {4}, v.data(), v.size(), 4); }, {"4 elements", "6 were given"});
}

TEST(Inspect, WritesAReportJsonAndNumpyArrays) {
  TempDir tmp;
  std::string out;
  const std::string dir = tmp / "out";
  ASSERT_EQ(run_command(groak() + " inspect --model " + tiny_model() + " -p 'The quick brown fox jumps over' --layers 1 "
                            "--out " + dir + " -t 2", &out), 0) << out;
  EXPECT_NE(out.find("report.html"), std::string::npos) << out;
  const nlohmann::json j = nlohmann::json::parse(read_text(dir + "/inspect.json"));
  const int64_t P = j["positions"];
  EXPECT_GT(P, 3);
  EXPECT_EQ(j["attention_layers"], nlohmann::json::array({1}));
  EXPECT_TRUE(j["random_weights"].get<bool>());
  EXPECT_EQ(j["router"]["chosen"].size(), static_cast<size_t>(P));
  EXPECT_FALSE(j["attention"]["full"].is_null());
  const std::string html = read_text(dir + "/report.html");
  EXPECT_EQ(html.find("/*GROAK_INSPECT_DATA*/"), std::string::npos) << "the data slot was filled";
  EXPECT_NE(html.find("\"positions\":" + std::to_string(P)), std::string::npos);
  EXPECT_NE(html.find("\"mean_entropy\""), std::string::npos) << "the page's trimmed copy (report_json)";
  EXPECT_TRUE(j["attention"].contains("entropy")) << "inspect.json keeps the per-row statistics";
  EXPECT_EQ(html.find("http://"), std::string::npos) << "self-contained: no address to fetch";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "self-contained: no address to fetch";
  if (run_command("/usr/bin/python3 -c 'import numpy'") != 0) GTEST_SKIP() << "needs /usr/bin/python3 with numpy; skipped";
  // numpy loads each array with the shape the JSON gives.
  const std::string py = "import json, numpy as np, sys\n"
                         "d = sys.argv[1]; j = json.load(open(d + '/inspect.json'))\n"
                         "for name, a in j['arrays'].items():\n"
                         "    x = np.load(d + '/' + a['file'])\n"
                         "    assert list(x.shape) == a['shape'], (name, x.shape, a['shape'])\n"
                         "p = np.load(d + '/router_probs.npy')\n"
                         "assert abs(p.sum(-1) - 1).max() < 1e-5\n"
                         "f = np.load(d + '/attn_full.npy')\n"
                         "assert abs(np.tril(f).sum(-1) - 1).max() < 1e-5\n"
                         "print('numpy ok', len(j['arrays']))\n";
  std::ofstream(tmp / "check.py") << py;
  ASSERT_EQ(run_command("/usr/bin/python3 " + (tmp / "check.py") + " " + dir, &out), 0) << out;
  EXPECT_NE(out.find("numpy ok"), std::string::npos) << out;
}

TEST(Inspect, ErrorsAreOneClearLine) {
  TempDir tmp;
  std::string out;
  EXPECT_EQ(run_command(groak() + " inspect --model /nonexistent/model -p hi --out " + (tmp / "o"), &out), 1) << out;
  EXPECT_NE(out.find("no such file or folder"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " inspect --model " + tiny_model() + " -p hi --layers 1-x --out " + (tmp / "o"), &out), 2)
      << out;
  EXPECT_NE(out.find("--layers '1-x'"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " inspect --model " + tiny_model() + " -p hi --layers 3-1 --out " + (tmp / "o"), &out), 2)
      << out;
  EXPECT_EQ(run_command(groak() + " inspect --model " + tiny_model() + " -p hi --layers 0,7 --out " + (tmp / "o"), &out), 1)
      << out;
  EXPECT_NE(out.find("layer 7 is outside the model's layers 0-1"), std::string::npos) << out;
  EXPECT_EQ(run_command(groak() + " inspect --model " + tiny_model() + " --out " + (tmp / "o"), &out), 2) << out;
  EXPECT_NE(out.find("inspect needs a prompt"), std::string::npos) << out;
  // A prompt longer than the context.
  const std::string model = tmp / "short";
  ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 1 --no-tokenizer --out " + model, &out), 0) << out;
  std::string cfg = read_text(model + "/config.json");
  cfg.replace(cfg.find("\"sequence_len\": 8192"), 20, "\"sequence_len\": 4   ");
  std::ofstream(model + "/config.json") << cfg;
  EXPECT_EQ(run_command(groak() + " inspect --model " + model + " --tokens 1,2,3,4,5 --out " + (tmp / "o"), &out), 1)
      << out;
  EXPECT_NE(out.find("the prompt has 5 tokens but the model's context is 4"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp / "o")) << "nothing written after a failed run";
  // A file where the folder should go.
  std::ofstream(tmp / "file") << "x";
  EXPECT_EQ(run_command(groak() + " inspect --model " + model + " --tokens 1,2 --out " + (tmp / "file"), &out), 1) << out;
  EXPECT_NE(out.find("is not a folder"), std::string::npos) << out;
}

TEST(Experts, CountsATextAsATableAndJson) {
  TempDir tmp;
  std::string out;
  std::ofstream(tmp / "text.txt") << "The quick brown fox jumps over the lazy dog. It was the best of times, it was "
                                     "the worst of times; the age of wisdom and the age of foolishness.\n";
  ASSERT_EQ(run_command(groak() + " experts --model " + tiny_model() + " -f " + (tmp / "text.txt") + " -c 16 --json " +
                            (tmp / "e.json") + " -t 2", &out), 0) << out;
  EXPECT_NE(out.find("| layer | e0 |"), std::string::npos) << out;
  EXPECT_NE(out.find("chosen together"), std::string::npos) << out;
  const nlohmann::json j = nlohmann::json::parse(read_text(tmp / "e.json"));
  const int64_t tokens = j["tokens"];
  EXPECT_GT(j["windows"].get<int64_t>(), 1);
  ASSERT_EQ(j["layers"].size(), 2u);
  for (const auto& l : j["layers"]) {
    int64_t sum = 0;
    for (int64_t c : l["counts"]) sum += c;
    EXPECT_EQ(sum, 2 * tokens);
    EXPECT_GE(l["imbalance"].get<double>(), 1.0);
    // Windows start from an empty context: the first token of each has no predecessor.
    EXPECT_EQ(l["follows"].get<int64_t>(), tokens - j["windows"].get<int64_t>());
  }
}

}  // namespace groak::test
