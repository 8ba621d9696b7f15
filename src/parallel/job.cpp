#include "parallel/job.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kernels/ops.h"
#include "kernels/thread_pool.h"
#include "model/residency.h"
#include "model/shard.h"
#include "runtime/follow.h"
#include "util/error.h"
#include "util/proc_file.h"

#if GROAK_WITH_MPI
#include <mpi.h>
#endif

namespace groak {

namespace {

// Set by mpirun (Open MPI), or by the PMI launchers of other MPIs.
bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
}

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

#if GROAK_WITH_MPI

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The group over MPI_COMM_WORLD. Only the thread that runs the forward pass calls it.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    // A failed call (a peer's connection lost) comes back to us as an error the caller can act on (a
    // server answers 503 and ends the job) instead of aborting this process inside MPI.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* x, int64_t n) override {
    const auto t0 = std::chrono::steady_clock::now();
    if (size_ <= 2) {  // a + b: one addition, commutative, the tree's order whichever rank MPI starts from
      for (int64_t done = 0; done < n; done += INT_MAX)
        check(MPI_Allreduce(MPI_IN_PLACE, x + done, count(std::min<int64_t>(INT_MAX, n - done)), MPI_FLOAT, MPI_SUM,
                            comm_),
              "all-reduce");
    } else {  // MPI's own order is unspecified: gather every rank's x and add them in the tree order
      const int64_t step = INT_MAX / size_;
      std::vector<float*> parts(static_cast<size_t>(size_));
      for (int64_t done = 0; done < n; done += step) {
        const int64_t m = std::min(step, n - done);
        tmp_.resize(static_cast<size_t>(m * size_));
        check(MPI_Allgather(x + done, count(m), MPI_FLOAT, tmp_.data(), count(m), MPI_FLOAT, comm_), "all-gather");
        for (int r = 0; r < size_; ++r) parts[static_cast<size_t>(r)] = tmp_.data() + r * m;
        tree_sum(parts.data(), size_, 0, m);
        std::copy(parts[0], parts[0] + m, x + done);
      }
    }
    stats_.all_reduces += 1;
    stats_.all_reduce_floats += n;
    stats_.reduce_seconds += since(t0);
  }

  void gather_columns(float* x, int64_t rows, int64_t cols) override {
    const auto t0 = std::chrono::steady_clock::now();
    const int n = count(rows * cols);
    if (rows == 1) {  // one row: the pieces land in place, in rank order
      check(MPI_Gather(rank_ == 0 ? MPI_IN_PLACE : x, n, MPI_FLOAT, x, n, MPI_FLOAT, 0, comm_), "gather");
    } else {
      if (rank_ == 0) tmp_.resize(static_cast<size_t>(n) * static_cast<size_t>(size_));
      check(MPI_Gather(x, n, MPI_FLOAT, tmp_.data(), n, MPI_FLOAT, 0, comm_), "gather");  // [rank][rows][cols]
      if (rank_ == 0)
        for (int r = 0; r < size_; ++r)
          for (int64_t i = 0; i < rows; ++i)
            std::copy_n(tmp_.data() + (static_cast<int64_t>(r) * rows + i) * cols, cols, x + (i * size_ + r) * cols);
    }
    stats_.gathers += 1;
    stats_.gather_floats += rows * cols;
    stats_.reduce_seconds += since(t0);
  }

  void broadcast(void* data, size_t bytes) override {
    MPI_Request req;
    check(MPI_Ibcast(data, count(static_cast<int64_t>(bytes)), MPI_BYTE, 0, comm_, &req), "broadcast");
    if (rank_ == 0) {
      check(MPI_Wait(&req, MPI_STATUS_IGNORE), "broadcast");
    } else {
      // A follower may wait long (rank 0 reads stdin, tokenizes, samples): yield for a while, then
      // sleep between polls rather than spin a core.
      const auto t0 = std::chrono::steady_clock::now();
      for (int done = 0;;) {
        check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "broadcast");
        if (done) break;
        if (since(t0) < kYieldSeconds)
          sched_yield();
        else
          std::this_thread::sleep_for(std::chrono::microseconds(kSleepMicros));
      }
    }
    stats_.broadcasts += 1;
    stats_.broadcast_bytes += static_cast<int64_t>(bytes);
  }

  std::vector<std::string> gather_text(const std::string& text) override {
    int len = count(static_cast<int64_t>(text.size()));
    std::vector<int> lens(rank_ == 0 ? static_cast<size_t>(size_) : 0), offsets(lens.size());
    check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm_), "gather");
    std::string all;
    if (rank_ == 0) {
      int64_t total = 0;
      for (int r = 0; r < size_; ++r) offsets[static_cast<size_t>(r)] = count(total), total += lens[static_cast<size_t>(r)];
      all.resize(static_cast<size_t>(total));
    }
    check(MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, 0, comm_), "gather");
    std::vector<std::string> out;
    for (int r = 0; rank_ == 0 && r < size_; ++r)
      out.push_back(all.substr(static_cast<size_t>(offsets[static_cast<size_t>(r)]), static_cast<size_t>(lens[static_cast<size_t>(r)])));
    return out;
  }

  CommStats stats() const override { return stats_; }

 private:
  static constexpr double kYieldSeconds = 0.002;
  static constexpr int kSleepMicros = 200;

  // MPI's own words for a failed call, as a groak::Error (a pass that meets it becomes PassFailed).
  void check(int rc, const char* what) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(std::string("MPI ") + what + " failed on rank " + std::to_string(rank_) + ": " +
                std::string(text, static_cast<size_t>(len)) + " (a rank of the group is gone?)");
  }

  static int count(int64_t n) {
    if (n > INT_MAX) throw Error("a message of " + std::to_string(n) + " elements is too large for one MPI call");
    return static_cast<int>(n);
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  CommStats stats_;
  std::vector<float> tmp_;
};

#endif  // GROAK_WITH_MPI

}  // namespace

uint64_t peak_rss_bytes() { return proc_field("/proc/self/status", "VmHWM:").value_or(0) * 1024; }

struct Job::Impl {
  bool mpi = false;           // MPI_Init was called
  bool following = false;     // the other ranks are in follow() (rank 0 must release them)
  bool finished = false;
  int local_ranks = 1;        // ranks on this host
  std::string command_line;   // the arguments after the program's name, joined (every rank's must agree)
  std::shared_ptr<Communicator> comm;  // null in one process
};

Job::Job(int* argc, char*** argv) : impl_(std::make_unique<Impl>()) {
  if (!launched_by_mpirun()) return;
  for (int i = 1; i < *argc; ++i) {
    if (i > 1) impl_->command_line += ' ';
    impl_->command_line += (*argv)[i];
  }
#if GROAK_WITH_MPI
  int provided = 0;
  // Serialized: the engine thread (main now; a server's worker later) makes every MPI call.
  MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  impl_->mpi = true;
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &impl_->local_ranks);
  MPI_Comm_free(&local);
  auto comm = std::make_shared<MpiCommunicator>();
  if (comm->size() > 1) impl_->comm = comm;
#else
  auto ranks = [](const char* name) { const char* v = std::getenv(name); return v ? std::atoi(v) : 1; };
  if (ranks("OMPI_COMM_WORLD_SIZE") > 1 || ranks("PMI_SIZE") > 1)
    throw Error("this groak was built without MPI, so it cannot run as several ranks: install OpenMPI "
                "(scripts/setup.sh: openmpi-bin, libopenmpi-dev), rebuild, or run without mpirun");
#endif
}

Job::~Job() {
  try {
    finish(Summary::Quiet);
  } catch (const std::exception&) {
  }
#if GROAK_WITH_MPI
  impl_->comm.reset();
  if (impl_->mpi) MPI_Finalize();
#endif
}

int Job::rank() const { return impl_->comm ? impl_->comm->rank() : 0; }
int Job::size() const { return impl_->comm ? impl_->comm->size() : 1; }

int Job::default_threads() const {
  if (!impl_->comm) return 0;
  return std::max(1, ThreadPool::hardware_threads() / std::max(1, impl_->local_ranks));
}

std::string Job::agree(const std::string& error) { return impl_->comm ? impl_->comm->agree(error) : error; }

Model Job::load(const std::function<Model()>& load) {
  if (!impl_->comm) return load();
  Communicator& comm = *impl_->comm;
  Model m;
  ShardReport rep;
  std::string error, fingerprint;
  try {
    m = load();
    fingerprint = model_fingerprint(m);  // of the whole model (a share file carries its source's)
    if (m.shard_count == 1) {
      rep = shard_model(m, comm.rank(), comm.size());
    } else {  // this rank's file of a share set (groak shard): it holds its share only
      rep.view_bytes = weight_file_bytes(m);
    }
    m.group = impl_->comm;
  } catch (const std::bad_alloc&) {
    error = "out of memory while loading its share";
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::string failed = comm.agree(error);
  if (!failed.empty()) throw GroupError(failed);
  // Every rank must run the same command on the same model: rank 0 compares, all agree on its verdict.
  const std::vector<std::string> ids = comm.gather_text(fingerprint + "\n" + impl_->command_line);
  std::string mismatch;
  for (size_t r = 1; r < ids.size(); ++r) {
    const size_t nl0 = ids[0].find('\n'), nl = ids[r].find('\n');
    const std::string rank = "rank " + std::to_string(r);
    if (ids[r].substr(0, nl) != ids[0].substr(0, nl0))
      mismatch += (mismatch.empty() ? "" : "; ") + rank + " loaded another model than rank 0 (weights fingerprint " +
                  ids[r].substr(0, nl) + " against " + ids[0].substr(0, nl0) +
                  "): every rank needs the same model file (or the share set groak shard wrote from it)";
    else if (ids[r].substr(nl + 1) != ids[0].substr(nl0 + 1))
      mismatch += (mismatch.empty() ? "" : "; ") + rank + " was started with other arguments than rank 0 ('" +
                  ids[r].substr(nl + 1) + "' against '" + ids[0].substr(nl0 + 1) + "'): start every rank with the "
                  "same command";
  }
  failed = comm.agree(mismatch);
  if (!failed.empty()) throw GroupError(failed);
  char line[256];
  std::snprintf(line, sizeof line, "share %d/%d: %s read in place, %s packed on first use (strided slices; as views "
                "they would touch %s of pages)", comm.rank() + 1, comm.size(), mb(rep.view_bytes).c_str(),
                mb(rep.packed_bytes).c_str(), mb(rep.packed_page_bytes).c_str());
  const std::vector<std::string> lines = comm.gather_text(comm.where() + ": " + line);
  for (const std::string& l : lines) std::fprintf(stderr, "[groak] %s\n", l.c_str());
  impl_->following = true;
  return m;
}

int Job::follow(const Model& model, int threads, const Kernels& kernels) {
  try {
    Context ctx(threads ? threads : default_threads(), &kernels);
    groak::follow(model, ctx);
  } catch (const std::exception& e) {
    report(e, 1);
  }
  finish();
  return 0;
}

void Job::finish(Summary summary) {
  if (impl_->finished || !impl_->comm) return;
  impl_->finished = true;
  Communicator& comm = *impl_->comm;
  if (impl_->following) release_followers(comm);
  const CommStats s = comm.stats();
  char line[512];
  std::snprintf(line, sizeof line,
                "peak RSS %s; all-reduces %lld (%lld floats), gathers %lld (%lld floats), %.3f s in reductions, "
                "%lld control messages (%lld bytes)",
                mb(peak_rss_bytes()).c_str(), static_cast<long long>(s.all_reduces),
                static_cast<long long>(s.all_reduce_floats), static_cast<long long>(s.gathers),
                static_cast<long long>(s.gather_floats), s.reduce_seconds, static_cast<long long>(s.broadcasts),
                static_cast<long long>(s.broadcast_bytes));
  const std::vector<std::string> lines = comm.gather_text(comm.where() + ": " + line);
  if (summary == Summary::Print)
    for (const std::string& l : lines) std::fprintf(stderr, "[groak] %s\n", l.c_str());
}

int Job::report(const std::exception& e, int code) {
  const std::string message = dynamic_cast<const std::bad_alloc*>(&e) ? "out of memory" : e.what();
  const bool group_wide = dynamic_cast<const GroupError*>(&e) != nullptr;
  if (!impl_->comm || (group_wide && leader())) {
    std::fprintf(stderr, "groak: error: %s\n", message.c_str());
    return code;
  }
  if (group_wide) return code;  // rank 0 says it
  std::fprintf(stderr, "groak: error on %s: %s\n", impl_->comm->where().c_str(), message.c_str());
  // Rank 0 between passes: finish() releases the followers. Otherwise the others may be waiting for
  // this rank in a collective call: end the job.
  if (leader() && impl_->following && !dynamic_cast<const PassFailed*>(&e)) return code;
  std::fflush(stderr);
#if GROAK_WITH_MPI
  MPI_Abort(MPI_COMM_WORLD, code);
#endif
  return code;
}

}  // namespace groak
