// Data safety of the CLI (issue 9): outputs never destroy inputs, devices, FIFOs or folders; synth never
// mixes old and new tensor files; Ctrl-C removes partial output; write errors on stdout are reported.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "test_util.h"

namespace groak::test {

namespace {


std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it)
    n += it->is_regular_file() ? 1 : 0;
  return n;
}

// A child running `args` (argv[0] = groak) with stdout and stderr to `log`; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Polls (up to 10 minutes: a loaded machine under ASan is slow) until pred() holds or the child has exited.
template <class Pred>
bool wait_for(pid_t pid, Pred pred) {
  for (int i = 0; i < 600000; ++i) {
    if (pred()) return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // exited first
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

class SafetyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string out;
    ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 3 --out " + model_, &out), 0) << out;
  }
  TempDir tmp_;
  const std::string model_ = tmp_ / "m";
};

}  // namespace

TEST_F(SafetyCli, LogitsNeverOverwritesItsInputs) {
  const std::string weights = model_ + "/ckpt-0/tensor00000_000";
  const std::string before = file_bytes(weights);
  ASSERT_GT(before.size(), 1000u);
  ASSERT_EQ(::link(weights.c_str(), (tmp_ / "hardlink").c_str()), 0);
  // The file itself, another spelling of it, a hard link to it and the config are all inputs.
  for (const std::string& out : {weights, model_ + "/./ckpt-0/../ckpt-0/tensor00000_000", tmp_ / "hardlink",
                                 model_ + "/config.json"}) {
    SCOPED_TRACE(out);
    std::string msg;
    EXPECT_EQ(run_command(groak() + " logits --model " + model_ + " --tokens 1,2 --out " + out, &msg), 1) << msg;
    EXPECT_NE(msg.find("is one of this command's inputs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("pass --out a new file name"), std::string::npos) << msg;
  }
  EXPECT_EQ(file_bytes(weights), before) << "the model's weights were changed";
  EXPECT_FALSE(fs::exists(weights + ".tmp"));
}

TEST_F(SafetyCli, ConvertNeverOverwritesAnyPartOfItsInput) {
  std::string out;
  const std::string gguf = tmp_ / "a.gguf";
  ASSERT_EQ(run_command(groak() + " convert --model " + model_ + " --type f32 --out " + gguf, &out), 0) << out;
  const std::string before = file_bytes(gguf);
  EXPECT_EQ(run_command(groak() + " convert --model " + gguf + " --type f16 --out " + gguf, &out), 1) << out;
  EXPECT_NE(out.find("is one of this command's inputs"), std::string::npos) << out;
  EXPECT_EQ(file_bytes(gguf), before);
  // A split set: writing the logits of part 1 over part 2 destroys the model too.
  const std::string split = tmp_ / "s.gguf";
  ASSERT_EQ(run_command(groak() + " convert --model " + model_ + " --type f32 --split-max-size 3M --out " + split, &out),
            0) << out;
  const std::string part1 = tmp_ / "s-00001-of-00002.gguf", part2 = tmp_ / "s-00002-of-00002.gguf";
  ASSERT_TRUE(fs::exists(part2)) << out;
  const std::string part2_before = file_bytes(part2);
  EXPECT_EQ(run_command(groak() + " logits --model " + part1 + " --tokens 1 --out " + part2, &out), 1) << out;
  EXPECT_NE(out.find("one of this command's inputs"), std::string::npos) << out;
  EXPECT_EQ(file_bytes(part2), part2_before);
}

TEST_F(SafetyCli, OutputsThatAreNotRegularFilesAreRefused) {
  const std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directory(tmp_ / "dir");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/dev/null", "a character device"}, {"/dev/full", "a character device"}, {fifo, "a FIFO (named pipe)"},
      {tmp_ / "dir", "a folder"}};
  for (const auto& [path, kind] : cases) {
    SCOPED_TRACE(path);
    std::string out;
    EXPECT_EQ(run_command(groak() + " logits --model " + model_ + " --tokens 1 --out " + path, &out), 1) << out;
    EXPECT_NE(out.find(kind + ", not a regular file"), std::string::npos) << out;
    EXPECT_EQ(run_command(groak() + " convert --model " + model_ + " --type f32 --out " + path, &out), 1) << out;
    EXPECT_NE(out.find(kind), std::string::npos) << out;
  }
  struct stat st {};
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/full was replaced";
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(SafetyCli, SymlinkOutputIsWrittenThroughToItsTarget) {
  std::string out;
  const std::string target = tmp_ / "target.f32", link = tmp_ / "link.f32";
  std::ofstream(target) << "old";
  fs::create_symlink(target, link);
  ASSERT_EQ(run_command(groak() + " logits --model " + model_ + " --tokens 1,2 --out " + link, &out), 0) << out;
  EXPECT_TRUE(fs::is_symlink(link)) << "the link itself was replaced";
  EXPECT_EQ(read_f32(target).size(), 2u * 512u) << "the target did not get the logits";
  // A link pointing at the model is an input like the model itself.
  const std::string to_model = tmp_ / "to-model";
  fs::create_symlink(model_ + "/ckpt-0/tensor00001_000", to_model);
  EXPECT_EQ(run_command(groak() + " logits --model " + model_ + " --tokens 1 --out " + to_model, &out), 1) << out;
  EXPECT_NE(out.find("one of this command's inputs"), std::string::npos) << out;
}

TEST_F(SafetyCli, SynthRefusesNonEmptyFolderAndForceNeverMixesFiles) {
  std::string out;
  // model_ holds the tiny checkpoint; a second synth there is refused and changes nothing.
  const size_t tiny_files = count_files(model_ + "/ckpt-0");
  EXPECT_EQ(run_command(groak() + " synth --preset tiny-12l --seed 1 --out " + model_, &out), 1) << out;
  EXPECT_NE(out.find("is not empty"), std::string::npos) << out;
  EXPECT_NE(out.find("--force"), std::string::npos) << out;
  EXPECT_EQ(count_files(model_ + "/ckpt-0"), tiny_files);
  // --force: the 12-layer checkpoint replaces it entirely; a tokenizer beside it stays.
  std::ofstream(model_ + "/tokenizer.model") << "keep me";
  ASSERT_EQ(run_command(groak() + " synth --preset tiny-12l --seed 1 --out " + model_ + " --force", &out), 0) << out;
  EXPECT_EQ(count_files(model_ + "/ckpt-0"), 2u + 12u * 12u) << "tensor files of two checkpoints mixed";
  EXPECT_EQ(file_bytes(model_ + "/tokenizer.model"), "keep me");
  // Back to the smaller one: no 12-layer file may survive.
  ASSERT_EQ(run_command(groak() + " synth --preset tiny --seed 3 --out " + model_ + " --force", &out), 0) << out;
  EXPECT_EQ(count_files(model_ + "/ckpt-0"), tiny_files);
  EXPECT_EQ(run_command(groak() + " info --model " + model_, &out), 0) << out;
  // A file where the folder should be.
  EXPECT_EQ(run_command(groak() + " synth --preset tiny --out " + model_ + "/config.json", &out), 1) << out;
  EXPECT_NE(out.find("not a folder"), std::string::npos) << out;
}

// Ctrl-C while synth writes a big tensor: exit 130, a message, and neither .tmp nor finished files left.
// Deterministic: the signal is sent once the first .tmp exists, and the grok1-2l preset takes minutes to
// finish, so the job is always mid-write when it arrives.
TEST(SafetyInterrupt, SynthRemovesWhatItWrote) {
  TempDir tmp;
  const std::string out = tmp / "big", log = tmp / "log";
  const pid_t pid = spawn({groak(), "synth", "--preset", "grok1-2l", "--seed", "1", "--out", out}, log);
  const bool started = wait_for(pid, [&] { return fs::exists(out + "/ckpt-0/tensor00000_000.tmp"); });
  if (started) ::kill(pid, SIGINT);
  const int rc = wait_exit(pid);
  ASSERT_TRUE(started) << file_bytes(log);
  EXPECT_EQ(rc, 130) << file_bytes(log);
  EXPECT_NE(file_bytes(log).find("interrupted"), std::string::npos) << file_bytes(log);
  EXPECT_EQ(count_files(out), 0u) << "partial files left behind";
}

// The same for convert (SIGTERM this time): the job is stopped while its .tmp exists, then signalled, so
// it cannot finish in between.
TEST(SafetyInterrupt, ConvertRemovesItsTemporaryFile) {
  TempDir tmp;
  std::string msg;
  const std::string model = tmp / "m", gguf = tmp / "o.gguf", log = tmp / "log";
  ASSERT_EQ(run_command(groak() + " synth --preset demo --seed 1 --out " + model, &msg), 0) << msg;
  const pid_t pid = spawn({groak(), "convert", "--model", model, "--type", "q4_k", "--out", gguf}, log);
  const bool started = wait_for(pid, [&] { return fs::exists(gguf + ".tmp"); });
  if (started) {
    ::kill(pid, SIGSTOP);
    ::kill(pid, SIGTERM);
    ::kill(pid, SIGCONT);
  }
  const int rc = wait_exit(pid);
  if (!started && rc == 0) GTEST_SKIP() << "the conversion finished before its .tmp was seen";
  ASSERT_TRUE(started) << file_bytes(log);
  EXPECT_EQ(rc, 130) << file_bytes(log);
  EXPECT_NE(file_bytes(log).find("interrupted"), std::string::npos) << file_bytes(log);
  EXPECT_FALSE(fs::exists(gguf + ".tmp"));
  EXPECT_FALSE(fs::exists(gguf));
}

TEST_F(SafetyCli, StdoutWriteErrorsAreReported) {
  std::string out;
  // A full disk (/dev/full) and a closed standard output, for every command that prints results.
  for (const std::string& redirect : {std::string(" > /dev/full"), std::string(" >&-")}) {
    SCOPED_TRACE(redirect);
    // Braces: the redirection applies to stdout only; stderr still reaches the test.
    EXPECT_EQ(run_command("{ " + groak() + " info --model " + model_ + redirect + "; }", &out), 1) << out;
    EXPECT_NE(out.find("writing to standard output failed"), std::string::npos) << out;
    GROAK_REQUIRE_SHARED(shared_dir() + "/grok-1/tokenizer.model");
    const std::string tok = shared_dir() + "/grok-1/tokenizer.model";
    EXPECT_EQ(run_command("echo hello | { " + groak() + " tokenize --tokenizer " + tok + redirect + "; }", &out), 1)
        << out;
    EXPECT_NE(out.find("writing to standard output failed"), std::string::npos) << out;
    EXPECT_EQ(run_command("echo 1 2 3 | { " + groak() + " detokenize --tokenizer " + tok + redirect + "; }", &out), 1)
        << out;
    EXPECT_NE(out.find("writing to standard output failed"), std::string::npos) << out;
  }
}

}  // namespace groak::test
