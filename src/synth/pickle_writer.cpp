#include "synth/pickle_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>

#include "util/error.h"

namespace groak::pickle {

static_assert(std::endian::native == std::endian::little, "the pickle writer assumes a little-endian host");

namespace {

// Opcodes (CPython Lib/pickle.py names).
enum Op : uint8_t {
  MARK = '(',
  STOP = '.',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BUILD = 'b',
  EMPTY_DICT = '}',
  GLOBAL = 'c',
  BINGET = 'h',
  LONG_BINGET = 'j',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINUNICODE = 'X',
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

constexpr uint8_t kProtocol = 4;
constexpr uint8_t kTorchProtocol = 2;             // torch.save's DEFAULT_PROTOCOL
constexpr size_t kBatchSize = 1000;               // _pickle.c BATCHSIZE (SETITEMS per batch)
constexpr size_t kFrameHeaderSize = 9;            // FRAME + u64 length
constexpr size_t kFrameSizeTarget = 64 * 1024;    // _pickle.c FRAME_SIZE_TARGET
constexpr size_t kFrameSizeMin = 4;               // shorter frames are written without a header
constexpr uint32_t kBf16DescrFlags = 0x50;        // NPY_NEEDS_PYAPI | NPY_USE_SETITEM (ml_dtypes <= 0.5.2)

// Emulates CPython 3.11's C Pickler (Modules/_pickle.c) for the object graphs of ckpt-0 files (protocol 4)
// and of torch.save's data.pkl (protocol 2: no frames, BINUNICODE, text GLOBAL, BINPUT).
//
// Memo: CPython memoises by object identity. The objects that recur inside one file are interned
// strings ('numpy'), one-character str/bytes singletons, classes/functions (globals) and numpy's
// singleton dtype objects, so value keys reproduce identity exactly here; every other object
// (tuples, arrays, payloads) is fresh and memoised under an index nobody looks up. In data.pkl the
// recurring strings are torch's constants ('storage', 'cpu') and a shared storage's key; a tensor
// name equal to one of those would become a memo reference here (the same dict, other bytes).
//
// Framing: output goes to buf_; a frame opens lazily on the first write, is committed at the start
// of save() once it holds >= 64 KiB, and a payload >= 64 KiB bypasses framing entirely.
class Pickler {
 public:
  // SizeOnly: a dry run that never calls the payload callbacks nor writes payloads >= 64 KiB.
  enum class Mode { Write, SizeOnly };

  Pickler(ByteSink& out, Mode mode, uint8_t protocol = kProtocol)
      : out_(out), generate_(mode == Mode::Write), protocol_(protocol) {}

  uint64_t skipped_bytes() const { return skipped_; }

  void begin() {
    const uint8_t hdr[2] = {PROTO, protocol_};
    write(hdr, 2);  // before framing starts: PROTO is never inside a frame
    framing_ = protocol_ >= 4;
  }

  void end() {
    op(STOP);
    commit_frame();
    flush();
  }

  void save_int(int64_t v) {
    boundary();
    uint8_t b[16];
    if (v >= INT32_MIN && v <= INT32_MAX) {
      const uint32_t u = static_cast<uint32_t>(static_cast<int32_t>(v));
      if (u > 0xffff) {  // also every negative value
        b[0] = BININT;
        put_le(b + 1, u, 4);
        write(b, 5);
      } else if (u > 0xff) {
        b[0] = BININT2;
        put_le(b + 1, u, 2);
        write(b, 3);
      } else {
        b[0] = BININT1;
        b[1] = static_cast<uint8_t>(u);
        write(b, 2);
      }
      return;
    }
    // LONG1: minimal little-endian two's complement, as pickle.encode_long().
    const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    size_t nbytes = static_cast<size_t>(64 - std::countl_zero(mag)) / 8 + 1;
    const uint64_t u = static_cast<uint64_t>(v);
    auto byte_at = [&](size_t i) -> uint8_t {
      return i < 8 ? static_cast<uint8_t>(u >> (8 * i)) : (v < 0 ? 0xff : 0x00);
    };
    if (v < 0 && nbytes > 1 && byte_at(nbytes - 1) == 0xff && (byte_at(nbytes - 2) & 0x80)) --nbytes;
    b[0] = LONG1;
    b[1] = static_cast<uint8_t>(nbytes);
    for (size_t i = 0; i < nbytes; ++i) b[2 + i] = byte_at(i);
    write(b, 2 + nbytes);
  }

  void save_none() {
    boundary();
    op(NONE);
  }

  void save_bool(bool v) {
    boundary();
    op(v ? NEWTRUE : NEWFALSE);
  }

  void save_str(std::string_view s) {
    boundary();
    const std::string key = "str:" + std::string(s);
    if (get(key)) return;
    uint8_t b[9];
    if (s.size() <= 0xff && protocol_ >= 4) {
      b[0] = SHORT_BINUNICODE;
      b[1] = static_cast<uint8_t>(s.size());
      write(b, 2);
    } else if (s.size() <= 0xffffffffu) {
      b[0] = BINUNICODE;
      put_le(b + 1, s.size(), 4);
      write(b, 5);
    } else {
      b[0] = BINUNICODE8;
      put_le(b + 1, s.size(), 8);
      write(b, 9);
    }
    write(s.data(), s.size());
    memoize(key);
  }

  // A bytes object CPython shares (one-byte bytes are singletons): numpy's b'b'.
  void save_shared_bytes(std::string_view s) {
    boundary();
    const std::string key = "bytes:" + std::string(s);
    if (get(key)) return;
    const uint8_t b[2] = {SHORT_BINBYTES, static_cast<uint8_t>(s.size())};
    write(b, 2);
    write(s.data(), s.size());
    memoize(key);
  }

  // A class or function by reference (protocol 4: module, name, STACK_GLOBAL).
  void save_global(std::string_view module, std::string_view name) {
    boundary();
    const std::string key = "global:" + std::string(module) + ":" + std::string(name);
    if (get(key)) return;
    if (protocol_ >= 4) {
      save_str(module);
      save_str(name);
      op(STACK_GLOBAL);
    } else {
      const std::string text = std::string(module) + "\n" + std::string(name) + "\n";
      op(GLOBAL);
      write(text.data(), text.size());
    }
    memoize(key);
  }

  // A fresh tuple of n items; `items` saves them.
  template <typename F>
  void save_tuple(size_t n, F&& items) {
    boundary();
    if (n == 0) {  // the empty tuple is a singleton: never memoised
      op(EMPTY_TUPLE);
      return;
    }
    if (n <= 3) {
      items();
      op(static_cast<uint8_t>(TUPLE1 + (n - 1)));
    } else {
      op(MARK);
      items();
      op(TUPLE);
    }
    memoize();
  }

  // The raw array data: a fresh bytes object filled by a.fill.
  void save_payload(const NpArray& a) {
    boundary();
    const uint64_t n = a.nbytes();
    uint8_t hdr[9];
    size_t hlen;
    if (n <= 0xff) {
      hdr[0] = SHORT_BINBYTES;
      hdr[1] = static_cast<uint8_t>(n);
      hlen = 2;
    } else if (n <= 0xffffffffu) {
      hdr[0] = BINBYTES;
      put_le(hdr + 1, n, 4);
      hlen = 5;
    } else {
      hdr[0] = BINBYTES8;
      put_le(hdr + 1, n, 8);
      hlen = 9;
    }
    if (n >= kFrameSizeTarget) {
      // _Pickler_write_bytes: end the frame before the opcode, write opcode + data unframed.
      commit_frame();
      framing_ = false;
      write(hdr, hlen);
      flush();
      stream_payload(a, n);
      framing_ = true;
    } else {
      write(hdr, hlen);
      const size_t pos = buf_.size();
      buf_.resize(pos + n);
      if (generate_ && n > 0) a.fill(buf_.data() + pos, 0, n);
    }
    memoize();
  }

  // numpy.dtype: (numpy.dtype, (descr, False, True), state) with numpy 1.x arraydescr_reduce state.
  void save_dtype(NpDType t) {
    boundary();
    const std::string key = std::string("dtype:") + dtype_key(t);
    if (get(key)) return;  // builtin / registered dtypes are singletons
    save_global("numpy", "dtype");
    save_tuple(3, [&] {
      if (t == NpDType::BF16)
        save_global("ml_dtypes", "bfloat16");  // user-defined type: the scalar type object itself
      else
        save_str(t == NpDType::F32 ? "f4" : "i1");
      save_bool(false);
      save_bool(true);
    });
    op(REDUCE);
    memoize(key);
    // (3, endian, names, fields, subarray, elsize, alignment, flags); builtins carry -1, -1.
    save_tuple(8, [&] {
      save_int(3);
      save_str(t == NpDType::I8 ? "|" : "<");
      save_none();
      save_none();
      save_none();
      const bool user = t == NpDType::BF16;
      save_int(user ? 2 : -1);
      save_int(user ? 2 : -1);
      save_int(user ? kBf16DescrFlags : 0);
    });
    op(BUILD);
  }

  // ndarray.__reduce__: (_reconstruct, (ndarray, (0,), b'b'), (1, shape, dtype, False, bytes)).
  void save_ndarray(const NpArray& a) {
    boundary();
    save_global("numpy.core.multiarray", "_reconstruct");
    save_tuple(3, [&] {
      save_global("numpy", "ndarray");
      save_tuple(1, [&] { save_int(0); });  // numpy builds a fresh (0,) every time
      save_shared_bytes("b");
    });
    op(REDUCE);
    memoize();
    save_tuple(5, [&] {
      save_int(1);
      save_tuple(a.shape.size(), [&] {
        for (int64_t d : a.shape) save_int(d);
      });
      save_dtype(a.dtype);
      save_bool(false);  // not Fortran order
      save_payload(a);
    });
    op(BUILD);
  }

  // A dataclass instance via copyreg.__newobj__: cls, (), NEWOBJ, then its __dict__ and BUILD.
  void save_quantized_weight(const NpArray& w, const NpArray& s) {
    boundary();
    save_global("__main__", "QuantizedWeight8bit");
    save_tuple(0, [] {});
    op(NEWOBJ);
    memoize();
    boundary();  // save(state dict)
    op(EMPTY_DICT);
    memoize();
    op(MARK);  // batch_setitems: more than one item -> MARK ... SETITEMS
    save_str("weight");
    save_ndarray(w);
    save_str("scales");
    save_ndarray(s);
    op(SETITEMS);
    op(BUILD);
  }

  // OrderedDict(): its __reduce__ is (OrderedDict, (), state, None, items); the items and state follow.
  void save_empty_ordered_dict() {
    boundary();
    save_global("collections", "OrderedDict");
    save_tuple(0, [] {});
    op(REDUCE);
    memoize();
  }

  // A dict's items, as _batch_setitems writes them: batches of 1000, a lone item without MARK.
  // item(i) saves the i-th key and value.
  template <typename F>
  void save_setitems(size_t n, F&& item) {
    for (size_t b = 0; b < n; b += kBatchSize) {
      const size_t m = std::min(kBatchSize, n - b);
      if (m == 1) {
        item(b);
        op(SETITEM);
        continue;
      }
      op(MARK);
      for (size_t i = b; i < b + m; ++i) item(i);
      op(SETITEMS);
    }
  }

  // Tensor.__reduce_ex__: (_rebuild_tensor_v2, (storage, storage_offset, size, stride, requires_grad,
  // backward_hooks)); torch's persistent_id turns the storage into ('storage', type, key, 'cpu', numel).
  void save_torch_tensor(const TorchTensorRef& t) {
    boundary();
    save_global("torch._utils", "_rebuild_tensor_v2");
    save_tuple(6, [&] {
      boundary();  // save_pers: the id tuple, then BINPERSID
      save_tuple(5, [&] {
        save_str("storage");
        save_global("torch", t.storage_type);
        save_str(t.storage_key);
        save_str("cpu");
        save_int(static_cast<int64_t>(t.storage_numel));
      });
      op(BINPERSID);
      save_int(t.storage_offset);
      save_tuple(t.shape.size(), [&] {
        for (int64_t d : t.shape) save_int(d);
      });
      save_tuple(t.stride.size(), [&] {
        for (int64_t d : t.stride) save_int(d);
      });
      save_bool(false);  // requires_grad
      save_empty_ordered_dict();  // backward_hooks
    });
    op(REDUCE);
    memoize();
  }

  // A state dict {name: tensor}; module.state_dict() returns an OrderedDict whose `_metadata` attribute
  // (per-module versions) is pickled as its state.
  void save_state_dict(const std::vector<TorchTensorRef>& tensors, StateDictType type) {
    boundary();
    if (type == StateDictType::OrderedDict) {
      save_empty_ordered_dict();
    } else {
      op(EMPTY_DICT);
      memoize();
    }
    save_setitems(tensors.size(), [&](size_t i) {
      save_str(tensors[i].name);
      save_torch_tensor(tensors[i]);
    });
    if (type == StateDictType::OrderedDict) {
      boundary();  // {'_metadata': OrderedDict([('', {'version': 1})])}
      op(EMPTY_DICT);
      memoize();
      save_setitems(1, [&](size_t) {
        save_str("_metadata");
        save_empty_ordered_dict();
        save_setitems(1, [&](size_t) {
          save_str("");
          boundary();
          op(EMPTY_DICT);
          memoize();
          save_setitems(1, [&](size_t) {
            save_str("version");
            save_int(1);
          });
        });
      });
      op(BUILD);
    }
  }

 private:
  static void put_le(uint8_t* p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  static const char* dtype_key(NpDType t) {
    switch (t) {
      case NpDType::F32: return "f4";
      case NpDType::I8: return "i1";
      case NpDType::BF16: return "bf16";
    }
    return "?";
  }

  void write(const void* p, size_t n) {
    if (framing_ && frame_start_ < 0) {  // open a frame; its header is patched in commit_frame()
      frame_start_ = static_cast<ptrdiff_t>(buf_.size());
      buf_.resize(buf_.size() + kFrameHeaderSize);
    }
    const size_t pos = buf_.size();
    buf_.resize(pos + n);
    if (n > 0) std::memcpy(buf_.data() + pos, p, n);
  }
  void op(uint8_t o) { write(&o, 1); }

  size_t frame_len() const { return buf_.size() - static_cast<size_t>(frame_start_) - kFrameHeaderSize; }

  void commit_frame() {
    if (!framing_ || frame_start_ < 0) return;
    const size_t len = frame_len();
    if (len >= kFrameSizeMin) {
      uint8_t hdr[kFrameHeaderSize];
      hdr[0] = FRAME;
      put_le(hdr + 1, len, 8);
      std::copy(hdr, hdr + kFrameHeaderSize, buf_.begin() + frame_start_);
    } else {
      buf_.erase(buf_.begin() + frame_start_, buf_.begin() + frame_start_ + kFrameHeaderSize);
    }
    frame_start_ = -1;
  }

  // _Pickler_OpcodeBoundary, called at the start of every save().
  void boundary() {
    if (!framing_ || frame_start_ < 0) return;
    if (frame_len() >= kFrameSizeTarget) {
      commit_frame();
      flush();
    }
  }

  void flush() {
    if (!buf_.empty()) out_.write(buf_.data(), buf_.size());
    buf_.clear();
  }

  void stream_payload(const NpArray& a, uint64_t n) {
    if (!generate_) {
      skipped_ += n;
      return;
    }
    std::vector<uint8_t> chunk(static_cast<size_t>(std::min<uint64_t>(n, kPayloadChunk)));
    for (uint64_t off = 0; off < n; off += chunk.size()) {
      const size_t m = static_cast<size_t>(std::min<uint64_t>(chunk.size(), n - off));
      a.fill(chunk.data(), off, m);
      out_.write(chunk.data(), m);
    }
  }

  void memoize() {
    if (protocol_ >= 4) {
      op(MEMOIZE);
    } else if (memo_size_ <= 0xff) {
      const uint8_t b[2] = {BINPUT, static_cast<uint8_t>(memo_size_)};
      write(b, 2);
    } else {
      uint8_t b[5] = {LONG_BINPUT};
      put_le(b + 1, memo_size_, 4);
      write(b, 5);
    }
    ++memo_size_;
  }
  void memoize(const std::string& key) {
    memo_.emplace(key, memo_size_);
    memoize();
  }
  // Writes a memo reference if `key` was memoised before.
  bool get(const std::string& key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) return false;
    uint8_t b[5];
    if (it->second <= 0xff) {
      b[0] = BINGET;
      b[1] = static_cast<uint8_t>(it->second);
      write(b, 2);
    } else {
      b[0] = LONG_BINGET;
      put_le(b + 1, it->second, 4);
      write(b, 5);
    }
    return true;
  }

  ByteSink& out_;
  bool generate_;
  uint8_t protocol_;
  std::vector<uint8_t> buf_;  // bytes not yet handed to out_ (at most the current frame + a little)
  bool framing_ = false;
  ptrdiff_t frame_start_ = -1;  // offset of the open frame's header in buf_, -1 = no open frame
  std::map<std::string, uint32_t> memo_;
  uint32_t memo_size_ = 0;
  uint64_t skipped_ = 0;
};

void check_quantized(const NpArray& w, const NpArray& s) {
  if (w.dtype != NpDType::I8 || s.dtype != NpDType::BF16)
    throw Error("pickle_quantized_weight: weight must be int8 and scales bfloat16 (as in xAI's ckpt-0)");
}

}  // namespace

size_t dtype_size(NpDType t) {
  switch (t) {
    case NpDType::F32: return 4;
    case NpDType::I8: return 1;
    case NpDType::BF16: return 2;
  }
  return 0;
}

uint64_t NpArray::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) throw Error("NpArray: negative dimension " + std::to_string(d));
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) throw Error("NpArray: size overflows 64 bits");
  }
  return n;
}

// ---- sinks ----

FileSink::FileSink(std::string path) : path_(std::move(path)) {
  f_ = std::fopen(path_.c_str(), "wb");
  if (!f_) throw Error(path_ + ": cannot create file: " + std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, size_t{1} << 20);
}

FileSink::~FileSink() {
  if (f_) std::fclose(f_);
}

void FileSink::write(const uint8_t* p, size_t n) {
  if (!f_) throw Error(path_ + ": write after close");
  if (n == 0) return;
  if (std::fwrite(p, 1, n, f_) != n)
    throw Error(path_ + ": write failed after " + std::to_string(written_) + " bytes: " + std::strerror(errno) +
                " (is the disk full?)");
  written_ += n;
}

void FileSink::close() {
  if (!f_) return;
  const bool flush_ok = std::fflush(f_) == 0;
  const int flush_errno = errno;
  const bool close_ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!flush_ok || !close_ok)
    throw Error(path_ + ": write failed at close after " + std::to_string(written_) +
                " bytes: " + std::strerror(flush_ok ? errno : flush_errno) + " (is the disk full?)");
}

void VectorSink::write(const uint8_t* p, size_t n) {
  const size_t pos = bytes.size();
  bytes.resize(pos + n);
  if (n > 0) std::memcpy(bytes.data() + pos, p, n);
}

void CountingSink::write(const uint8_t* p, size_t n) {
  const size_t take = std::min(n, keep_ - std::min(keep_, head.size()));
  if (take > 0) {
    const size_t pos = head.size();
    head.resize(pos + take);
    std::memcpy(head.data() + pos, p, take);
  }
  count += n;
}

// ---- entry points ----

void pickle_ndarray(ByteSink& out, const NpArray& a) {
  Pickler p(out, Pickler::Mode::Write);
  p.begin();
  p.save_ndarray(a);
  p.end();
}

void pickle_quantized_weight(ByteSink& out, const NpArray& weight, const NpArray& scales) {
  check_quantized(weight, scales);
  Pickler p(out, Pickler::Mode::Write);
  p.begin();
  p.save_quantized_weight(weight, scales);
  p.end();
}

uint64_t pickled_size_ndarray(const NpArray& a) {
  CountingSink sink;
  Pickler p(sink, Pickler::Mode::SizeOnly);
  p.begin();
  p.save_ndarray(a);
  p.end();
  return sink.count + p.skipped_bytes();
}

uint64_t pickled_size_quantized_weight(const NpArray& weight, const NpArray& scales) {
  check_quantized(weight, scales);
  CountingSink sink;
  Pickler p(sink, Pickler::Mode::SizeOnly);
  p.begin();
  p.save_quantized_weight(weight, scales);
  p.end();
  return sink.count + p.skipped_bytes();
}

void pickle_torch_state_dict(ByteSink& out, const std::vector<TorchTensorRef>& tensors, StateDictType type) {
  Pickler p(out, Pickler::Mode::Write, kTorchProtocol);
  p.begin();
  p.save_state_dict(tensors, type);
  p.end();
}

std::vector<uint8_t> pickle_dumps_int(int64_t n) {
  VectorSink sink;
  Pickler p(sink, Pickler::Mode::Write);
  p.begin();
  p.save_int(n);
  p.end();
  return sink.bytes;
}

void write_atomically(const std::string& path, const std::function<void(FileSink&)>& write_to) {
  const std::string tmp = path + ".tmp";
  try {
    FileSink f(tmp);
    write_to(f);
    f.close();
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(path + ": cannot rename from " + tmp + ": " + ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace groak::pickle
