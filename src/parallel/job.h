// The processes one groak command runs as. Without mpirun: one process, exactly as always. Under
// `mpirun -np R groak logits|generate|bench ...`: R ranks of a tensor-parallel group over MPI
// (docs/distributed.md). Every rank loads its own share of the model from the same path; rank 0 runs
// the command (tokenizer, standard input/output, sampling, files) and the others follow its sessions
// (runtime/follow.h). Errors found while loading are gathered and reported once by rank 0, with the rank
// and host of each; an error on a follower later in the run aborts the whole job with its rank and host.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "kernels/context.h"
#include "model/weights.h"

namespace groak {

// An error every rank of the group knows about (rank 0 reports it; the others stay quiet).
class GroupError : public std::runtime_error {
 public:
  explicit GroupError(const std::string& what) : std::runtime_error(what) {}
};

class Job {
 public:
  // Starts MPI when launched by mpirun (else does nothing). Throws groak::Error when launched by mpirun
  // with several ranks but built without MPI.
  Job(int* argc, char*** argv);
  ~Job();  // finish() if not done yet, then MPI_Finalize
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const;
  int size() const;
  bool leader() const { return rank() == 0; }
  // Threads for a rank when -t is not given: 0 (= every core) in one process, else the cores of this
  // host divided among the ranks that share it.
  int default_threads() const;

  // Collective (several ranks): "" when no rank has an error, else one message naming each failed rank
  // and host. One process: `error` itself.
  std::string agree(const std::string& error);
  // Every rank runs `load` (rank 0 may also do its own preparations in it: they fail like a load) and keeps its share of the result (model/shard.h), joined to the group;
  // rank 0 prints what each rank holds. Any rank's failure becomes a GroupError on every rank.
  Model load(const std::function<Model()>& load);
  // Ranks > 0, after load(): mirror rank 0's sessions until it is done, then finish(). Returns the exit
  // code; an error here is printed with this rank and host and aborts the job.
  int follow(const Model& model, int threads, const Kernels& kernels);
  // After the command (its sessions closed): rank 0 releases the followers; then every rank sends its
  // peak memory and communication counts, which rank 0 prints (Summary::Print).
  enum class Summary { Print, Quiet };
  void finish(Summary summary = Summary::Print);
  // An error that reached main(): printed once, by rank 0 when every rank has it (GroupError), else with
  // this rank and host; when the others cannot go on without this rank (a follower's error, a failed
  // pass, anything before the group formed), the job is aborted. Returns the exit code to use.
  int report(const std::exception& e, int code);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// This process's peak resident set (VmHWM) in bytes; 0 where /proc is absent.
uint64_t peak_rss_bytes();

}  // namespace groak
