// Writes the pickles of xAI's raw Grok-1 checkpoint (ckpt-0/tensorNNNNN_000) byte for byte as
// CPython's C pickler does with `pickle.dump(obj, f, protocol=4)` (Python 3.11, numpy 1.x,
// ml_dtypes bfloat16), for exactly the two object graphs those files hold:
//   * a plain numpy ndarray (float32 / int8 / bfloat16), and
//   * a `__main__.QuantizedWeight8bit` with state {'weight': int8 ndarray, 'scales': bf16 ndarray};
// and, in protocol 2, the data.pkl of a torch.save archive of a state dict (synth/torch_zip_writer.h).
// Stream layout, memo and framing rules: shared/docs/GROK1.md §8. Payloads are streamed from a
// callback, so a multi-GB tensor is never held in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace groak::pickle {

// Element types that occur in the checkpoint.
enum class NpDType : uint8_t {
  F32,   // numpy '<f4'
  I8,    // numpy '|i1'
  BF16,  // ml_dtypes.bfloat16 (user-defined numpy type; pickled by reference to the type object)
};
size_t dtype_size(NpDType t);

// Fills buf[0, n) with payload bytes [offset, offset + n) (C order, little-endian).
// The pickler calls it with offset a multiple of kPayloadChunk and n <= kPayloadChunk.
using PayloadFill = std::function<void(uint8_t* buf, uint64_t offset, size_t n)>;
inline constexpr size_t kPayloadChunk = size_t{4} << 20;  // bytes per fill call (multiple of 8)

// A C-contiguous ndarray whose bytes come from `fill`.
struct NpArray {
  NpDType dtype = NpDType::F32;
  std::vector<int64_t> shape;  // () is a scalar array
  PayloadFill fill;
  uint64_t nbytes() const;  // prod(shape) * dtype_size
};

// Where pickle bytes go.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const uint8_t* p, size_t n) = 0;
};

// Buffered file output; every write is checked and failures throw groak::Error naming the file.
class FileSink final : public ByteSink {
 public:
  explicit FileSink(std::string path);  // creates / truncates
  ~FileSink() override;                 // closes without reporting (call close() to check)
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  void write(const uint8_t* p, size_t n) override;
  void close();  // flushes and closes; throws on failure (e.g. disk full)
  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return written_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t written_ = 0;
};

// Collects the bytes in memory (tests, small objects).
class VectorSink final : public ByteSink {
 public:
  void write(const uint8_t* p, size_t n) override;
  std::vector<uint8_t> bytes;
};

// Discards the bytes, counting them; keeps the first `keep` bytes (to inspect headers).
class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(size_t keep = 0) : keep_(keep) {}
  void write(const uint8_t* p, size_t n) override;
  uint64_t count = 0;
  std::vector<uint8_t> head;

 private:
  size_t keep_;
};

// Counts bytes on their way to `inner` (into `done`, shared by the files of one job) and calls
// progress(done, total) every kPayloadChunk bytes.
class ProgressSink final : public ByteSink {
 public:
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  ProgressSink(ByteSink& inner, uint64_t& done, uint64_t total, const Progress& progress)
      : inner_(inner), done_(done), total_(total), progress_(progress) {}
  void write(const uint8_t* p, size_t n) override {
    inner_.write(p, n);
    done_ += n;
    if (progress_ && done_ - last_ >= kPayloadChunk) {
      last_ = done_;
      progress_(done_, total_);
    }
  }

 private:
  ByteSink& inner_;
  uint64_t& done_;
  uint64_t total_;
  const Progress& progress_;
  uint64_t last_ = 0;
};

// Writes `path` through PATH.tmp, renamed only once write_to returned and the file closed without error;
// PATH.tmp is removed again if anything throws.
void write_atomically(const std::string& path, const std::function<void(FileSink&)>& write_to);

// pickle.dump(ndarray, f, protocol=4)
void pickle_ndarray(ByteSink& out, const NpArray& a);
// pickle.dump(QuantizedWeight8bit(weight=..., scales=...), f, protocol=4);
// weight must be I8 and scales BF16 (as in the checkpoint).
void pickle_quantized_weight(ByteSink& out, const NpArray& weight, const NpArray& scales);

// Exact size in bytes of the pickles above, without generating payloads.
uint64_t pickled_size_ndarray(const NpArray& a);
uint64_t pickled_size_quantized_weight(const NpArray& weight, const NpArray& scales);

// One tensor of a torch state dict as torch.save pickles it: a view of storage `storage_key`.
struct TorchTensorRef {
  std::string name;
  std::string storage_type = "BFloat16Storage";  // the class torch.<storage_type>
  std::string storage_key;                       // "0", "1", … : the archive entry data/<key>
  uint64_t storage_numel = 0;                    // elements of the whole storage
  int64_t storage_offset = 0;                    // elements
  std::vector<int64_t> shape, stride;            // stride in elements
};

// A plain dict (what transformers' sharding writes) or what module.state_dict() returns: an OrderedDict
// with a `_metadata` attribute.
enum class StateDictType : uint8_t { Dict, OrderedDict };

// torch.save's data.pkl: pickle.dump(state_dict, f, protocol=2) with torch's persistent_id
// ('storage', torch.<Type>Storage, key, 'cpu', numel) for every tensor's storage; byte for byte what
// torch 1.13 writes (tests/torch_bin_test.cpp compares them where python3-torch is installed).
void pickle_torch_state_dict(ByteSink& out, const std::vector<TorchTensorRef>& tensors, StateDictType type);

// pickle.dumps(n, protocol=4): exposes the BININT1/BININT2/BININT/LONG1 choice to tests.
std::vector<uint8_t> pickle_dumps_int(int64_t n);

}  // namespace groak::pickle
