// groak bench as llama-bench users drive it: lists of -p/-n/-t in one run, -o csv|json|jsonl that a
// script can read (nothing else on stdout), and --profile's phases of the step. Speeds are not checked
// here (benchmarks measure, tests do not time); the shapes and the accounting are.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>

#include <nlohmann/json.hpp>

#include "kernels/probe.h"
#include "runtime/bench.h"
#include "test_util.h"
#include "util/proc_file.h"

namespace groak::test {

namespace {

std::string bench_cmd(const std::string& model, const std::string& args) {
  // stdout only: progress goes to stderr.
  return "{ " + std::string(GROAK_BIN) + " bench --model " + model + " --no-probes -r 1 " + args + " 2>/dev/null; }";
}

}  // namespace

TEST(BenchCli, ListsFormatsAndProfile) {
  TempDir tmp;
  const std::string model = tmp / "m";
  std::string out;
  ASSERT_EQ(run_command(std::string(GROAK_BIN) + " synth --preset tiny --seed 1 --no-tokenizer --out " + model, &out), 0)
      << out;

  // Every combination: for each thread count, each pp then each tg.
  ASSERT_EQ(run_command(bench_cmd(model, "-p 8,16 -n 4 -t 1,2 -o json --profile"), &out), 0) << out;
  const auto rows = nlohmann::json::parse(out);
  ASSERT_EQ(rows.size(), 6u) << out;
  const std::vector<std::pair<std::string, int>> want = {{"pp8", 1}, {"pp16", 1}, {"tg4", 1},
                                                         {"pp8", 2}, {"pp16", 2}, {"tg4", 2}};
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    EXPECT_EQ(r["test"], want[i].first) << r.dump();
    EXPECT_EQ(r["n_threads"], want[i].second) << r.dump();
    EXPECT_GT(r["avg_ts"].get<double>(), 0) << r.dump();
    // The phases add up to no more than the test's time, and the experts (most of the work) are in it.
    const auto& p = r["profile_ms_per_token"];
    double phases = 0;
    for (const char* k : {"embed", "attention", "router", "experts", "head", "reduce", "other"}) {
      ASSERT_TRUE(p.contains(k)) << k << " missing: " << p.dump();
      EXPECT_GE(p[k].get<double>(), 0) << k;
      phases += p[k].get<double>();
    }
    EXPECT_GT(p["experts"].get<double>(), 0) << p.dump();
    EXPECT_NEAR(phases, 1e3 / r["avg_ts"].get<double>(), 0.05 * 1e3 / r["avg_ts"].get<double>())
        << "the phases and 'other' are the whole test: " << r.dump();
    // The thread pool: one thread never wakes it (all serial); two threads run the products as loops
    // (the tiny preset is below the size worth waking the pool for, so its rows and heads are the loops).
    const double loops = r["parallel_loops_per_token"].get<double>(), serial = r["serial_share"].get<double>();
    EXPECT_GE(serial, 0) << r.dump();
    EXPECT_LE(serial, 1) << r.dump();
    if (want[i].second == 1) {
      EXPECT_EQ(loops, 0) << r.dump();
      EXPECT_EQ(serial, 1) << r.dump();
    } else {
      EXPECT_GT(loops, 0) << r.dump();
      EXPECT_LT(serial, 1) << r.dump();
    }
  }
  EXPECT_EQ(rows[0]["n_prompt"], 8);
  EXPECT_EQ(rows[2]["n_gen"], 4);
  EXPECT_TRUE(rows[2].contains("bytes_per_token"));
  if (fs::exists("/proc/self/io")) {  // storage reads per token: none to speak of once the model is cached
    for (const auto& r : rows) EXPECT_GE(r.value("disk_read_bytes_per_token", -1.0), 0) << r.dump();
  }

  // -p 8 -p 16 is the same list as -p 8,16; csv: a header and one line per test, model first.
  ASSERT_EQ(run_command(bench_cmd(model, "-p 8 -p 16 -n 0 -t 1 -o csv"), &out), 0) << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0].rfind("model_filename,", 0), 0u) << lines[0];
  EXPECT_NE(lines[1].find("\"pp8\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"pp16\""), std::string::npos) << lines[2];

  // jsonl: one object per line.
  ASSERT_EQ(run_command(bench_cmd(model, "-p 0 -n 2,3 -t 1 -o jsonl"), &out), 0) << out;
  std::istringstream jl(out);
  int n = 0;
  for (std::string l; std::getline(jl, l); ++n) EXPECT_EQ(nlohmann::json::parse(l)["n_gen"], n + 2) << l;
  EXPECT_EQ(n, 2);

  // Usage errors.
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " bench --model " + model + " -p 0 -n 0", &out), 2) << out;
  EXPECT_NE(out.find("nothing to measure"), std::string::npos) << out;
  EXPECT_EQ(run_command(std::string(GROAK_BIN) + " bench --model " + model + " -o xml", &out), 2) << out;
  EXPECT_NE(out.find("--output"), std::string::npos) << out;
}

// The counter behind disk_read_bytes_per_token sees what a model larger than the RAM costs: pages of a
// mapped file faulted in from storage after they were dropped from the page cache (and plain reads).
TEST(Bench, DiskReadCounterSeesMappedPagesComingFromStorage) {
  if (!process_disk_read_bytes()) GTEST_SKIP() << "/proc/self/io is not readable here; skipped";
  TempDir tmp;
  struct statfs sf {};
  ASSERT_EQ(::statfs(tmp.path().c_str(), &sf), 0);
  if (sf.f_type == 0x01021994 /* TMPFS_MAGIC */) GTEST_SKIP() << tmp.path() << " is tmpfs (no storage); skipped";
  const size_t n = 32u << 20;
  const std::string path = tmp / "weights.bin";
  write_bytes(path, std::vector<uint8_t>(n, 7));
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);  // out of the page cache: the next use reads
  void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  const uint64_t before = *process_disk_read_bytes();
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i += 4096) sum += static_cast<const uint8_t*>(p)[i];
  const uint64_t after = *process_disk_read_bytes();
  ::munmap(p, n);
  ::close(fd);
  EXPECT_EQ(sum, 7u * (n / 4096));
  EXPECT_GE(after - before, n / 2) << "faulting in " << n << " bytes of a dropped file read " << after - before
                                   << " from storage";
}

// The read probe sizes its buffer to the memory this process may take, so that `groak bench` under a
// memory cap (a model larger than the RAM) is not killed by its own probe.
TEST(Bench, MemoryBudgetIsWhatTheMachineAndCgroupAllow) {
  const auto total_kb = proc_field("/proc/meminfo", "MemTotal:");
  if (!total_kb) GTEST_SKIP() << "/proc/meminfo is not readable here; skipped";
  const uint64_t total = *total_kb * 1024;
  const size_t budget = memory_budget_bytes();
  EXPECT_GT(budget, 0u);
  EXPECT_LE(budget, total);
  ThreadPool pool(1);
  EXPECT_EQ(probe_read_bandwidth(pool, 0, 1) > 0, budget / 8 >= (size_t{64} << 20))
      << "budget " << budget << ": the probe runs exactly when an eighth of it is at least 64 MB";
}

}  // namespace groak::test
