// The groak command line: one subcommand per entry of the command table (options.h), each defined in
// its own file under commands/. This file only wires them up: parsing, the MPI agreement on the command
// line, and turning errors into exit codes.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "options.h"

using namespace groak;
using namespace groak::cli;

namespace {

// llama.cpp habits that do not fit CLI11's option grammar: `-np N` (a two-letter short option) becomes
// --parallel, and `-ngl N` / `--n-gpu-layers N` / `--gpu-layers N` are dropped with one note, so a copied
// llama.cpp command line runs (CLI11 would read `-ngl 99` as `-n gl`). Returns the note, if any.
std::string rewrite_llama_habits(std::vector<std::string>& args) {
  std::string note;
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const std::string name = a.substr(0, a.find('='));
    if (name == "-np") {
      out.push_back(a.size() > name.size() ? "--parallel" + a.substr(name.size()) : "--parallel");
    } else if (name == "-ngl" || name == "--n-gpu-layers" || name == "--gpu-layers") {
      std::string value = a.size() > name.size() ? a.substr(name.size() + 1) : "";
      if (value.empty() && i + 1 < args.size()) value = args[++i];
      note = name + " " + value + " ignored: no GPU offload in this build (groak runs on the CPU)";
    } else {
      out.push_back(a);
    }
  }
  args = std::move(out);
  return note;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe becomes a write error (EPIPE) the command sees: a full disk is reported, a reader that
  // went away (`| head`) ends the command quietly with status 141.
  std::signal(SIGPIPE, SIG_IGN);
  // One process, or a rank of a tensor-parallel group under mpirun (docs/distributed.md).
  std::unique_ptr<Job> job;
  try {
    job = std::make_unique<Job>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "groak: error: %s\n", e.what());
    return kExitError;
  }
  load_settings().rank = job->rank();
  load_settings().ranks = job->size();
  std::vector<std::string> args(argv, argv + argc);
  const std::string habit_note = rewrite_llama_habits(args);
  if (!habit_note.empty() && job->leader()) std::fprintf(stderr, "groak: note: %s\n", habit_note.c_str());
  std::vector<char*> arg_ptrs;
  for (std::string& s : args) arg_ptrs.push_back(s.data());
  argc = static_cast<int>(arg_ptrs.size());
  arg_ptrs.push_back(nullptr);
  argv = arg_ptrs.data();

  CLI::App app{"groak: runs and explains xAI's Grok-1 (314B mixture-of-experts) on the CPU"};
  app.require_subcommand(1);
  // A repeated option takes its last value (llama.cpp's behaviour; scripts/demo.sh -n 64 overrides its -n 48).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "groak 0.1");
  // A usage error is one line naming the command and the option, and where the options are listed.
  app.failure_message([](const CLI::App* root, const CLI::Error& e) {
    std::string cmd;
    for (const CLI::App* s : root->get_subcommands()) cmd = s->get_name();
    const std::string where = cmd.empty() ? "groak" : "groak " + cmd;
    return where + ": " + e.what() + " (" + where + " --help lists the options)\n";
  });
  const std::vector<Command> commands = all_commands();
  std::vector<CLI::App*> subs;
  for (const Command& c : commands) {
    subs.push_back(app.add_subcommand(c.name, c.description));
    c.options(*subs.back());
  }

  // An unknown command gets named (CLI11 would only say that a subcommand is required).
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const Command& c : commands) {
      known = known || c.name == argv[1];
      names += (names.empty() ? "" : ", ") + c.name;
    }
    if (!known) {
      std::fprintf(stderr, "groak: unknown command '%s'; commands: %s (groak --help)\n", argv[1], names.c_str());
      return kExitUsage;
    }
  }
  const Command* chosen = nullptr;
  int parse_rc = -1;  // under mpirun: set when parsing ended the command (help, version, usage error)
  std::string parse_error;
  try {
    app.parse(argc, argv);
    for (size_t i = 0; i < commands.size(); ++i)
      if (*subs[i]) chosen = &commands[i];
    if (chosen && chosen->check) chosen->check();
  } catch (const CLI::ParseError& e) {  // help, version or a usage error
    if (job->size() == 1) return app.exit(e) == 0 ? 0 : kExitUsage;
    if (job->leader()) app.exit(e);  // under mpirun rank 0 prints it
    parse_rc = e.get_exit_code() == 0 ? 0 : kExitUsage;
    if (parse_rc != 0) parse_error = e.what();
  }
  if (job->size() > 1) {  // every rank parsed its own command line (files checked on its own machine): agree
    const std::string failed = job->agree(parse_error);
    if (!failed.empty()) {
      if (job->leader() && parse_error.empty()) std::fprintf(stderr, "groak: %s\n", failed.c_str());
      return kExitUsage;
    }
    if (parse_rc >= 0) return parse_rc;
  }
  if (!chosen) return kExitUsage;
  if (job->size() > 1 && !chosen->under_mpirun) {
    std::vector<std::string> names;
    for (const Command& c : commands)
      if (c.under_mpirun) names.push_back(c.name);
    std::string allowed;  // "a, b and c"
    for (size_t i = 0; i < names.size(); ++i)
      allowed += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
    return job->report(GroupError("only " + allowed + " run as several ranks; run this command without mpirun"),
                       kExitUsage);
  }

  try {
    const int rc = chosen->run(*job);
    if (chosen->under_mpirun) job->finish();
    return rc;
  } catch (const OutputClosed&) {
    return kExitPipeClosed;
  } catch (const Interrupted&) {
    std::fprintf(stderr, "groak: interrupted (Ctrl-C); partial output removed\n");
    return kExitInterrupted;
  } catch (const CLI::ValidationError& e) {
    if (job->leader()) std::fprintf(stderr, "groak: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {  // groak::Error, out of memory, a library's own (filesystem, json …): a clear exit
    return job->report(e, kExitError);
  }
}
