// The processes that share one model (tensor parallelism: each holds a slice of every layer). The model
// calls it at its reduction points; the runtime uses it to make the other ranks follow rank 0. This base
// class is one process: every call is a no-op. parallel/job.cpp implements it over MPI, so nothing below
// the parallel layer sees MPI.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace groak {

// What one process of a tensor-parallel group sent and waited for (docs/distributed.md counts them).
struct CommStats {
  int64_t all_reduces = 0, all_reduce_floats = 0;  // calls; floats summed (each call's n)
  int64_t gathers = 0, gather_floats = 0;          // logits gathers; floats this rank contributed
  int64_t broadcasts = 0, broadcast_bytes = 0;     // control messages from rank 0 (which batch runs next)
  double reduce_seconds = 0;                       // wall time inside all-reduces and gathers
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // x[0, n) = the element-wise sum of every rank's x, added in the halving tree order over the ranks
  // (ops.h tree_sum), so that ranks holding runs of a product's parts add them as one process does
  // (model/parts.h); every rank gets the same bits (the routing of the experts, computed on every rank
  // from the reduced stream, must agree).
  virtual void all_reduce_sum(float* x, int64_t n) {}
  // x: [rows, cols], this rank's columns of a matrix split evenly by columns, ranks in order. On rank 0,
  // x becomes the whole [rows, size·cols] matrix (x must have room for it); elsewhere x is left as is.
  virtual void gather_columns(float* x, int64_t rows, int64_t cols) {}
  // Rank 0's data[0, bytes) to every rank. A rank waiting here for rank 0 sleeps rather than spins.
  virtual void broadcast(void* data, size_t bytes) {}
  // Every rank's text in rank order, on rank 0; an empty list elsewhere.
  virtual std::vector<std::string> gather_text(const std::string& text) { return {text}; }
  virtual CommStats stats() const { return {}; }

  // Collective: "" when every rank's `error` is empty, else one message naming each failed rank and
  // host (identical errors are listed once), the same on every rank.
  std::string agree(const std::string& error);
  // "rank R (host)" of this process, for messages.
  std::string where() const;
};

// The communicator of a model held whole by one process: stateless, every call a no-op.
Communicator& one_process();

}  // namespace groak
