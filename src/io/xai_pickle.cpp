#include "io/xai_pickle.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "util/error.h"

namespace groak {

const char* dtype_name(ArrayDType t) {
  switch (t) {
    case ArrayDType::F32: return "float32";
    case ArrayDType::I8: return "int8";
    case ArrayDType::BF16: return "bfloat16";
  }
  return "?";
}

size_t dtype_size(ArrayDType t) { return t == ArrayDType::F32 ? 4 : t == ArrayDType::I8 ? 1 : 2; }

std::string PickledArray::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Opcodes of pickle protocols 0-4 that the checkpoint uses or that re-saved files may use (§8.4).
enum Op : uint8_t {
  MARK = '(', STOP = '.', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N', REDUCE = 'R',
  BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', APPENDS = 'e', BINGET = 'h',
  LONG_BINGET = 'j', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', SETITEMS = 'u',
  EMPTY_DICT = '}', EMPTY_LIST = ']', EMPTY_TUPLE = ')', BINBYTES = 'B', SHORT_BINBYTES = 'C',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
  NEWFALSE = 0x89, LONG1 = 0x8a, SHORT_BINUNICODE = 0x8c, BINBYTES8 = 0x8e, STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94, FRAME = 0x95,
};

// The only globals a checkpoint may name.
enum class Global : uint8_t { Reconstruct, NdArray, DTypeClass, QuantizedWeight8bit, BFloat16 };

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind : uint8_t { None, Bool, Int, Str, Bytes, Tuple, List, Dict, Global, Array, DType, QW };
  Kind kind = Kind::None;
  int64_t i = 0;                   // Int, Bool
  std::string s;                   // Str
  uint64_t off = 0, len = 0;       // Bytes: range in the file
  std::vector<ValuePtr> items;     // Tuple, List; Dict as key, value, key, value …
  Global g = Global::NdArray;      // Global
  bool built = false;              // Array, DType, QW: BUILD seen
  PickledArray arr;                // Array (after BUILD)
  ArrayDType dt = ArrayDType::F32; // DType
  ValuePtr weight, scales;         // QW (after BUILD)
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Str: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "class/function";
    case Value::Kind::Array: return "ndarray";
    case Value::Kind::DType: return "dtype";
    case Value::Kind::QW: return "QuantizedWeight8bit";
  }
  return "?";
}

// Caps that no real checkpoint file comes near; they bound the work a hostile file can cause.
constexpr size_t kMaxStack = 4096;
constexpr size_t kMaxMemo = 1u << 16;
constexpr size_t kMaxOps = 1u << 20;
constexpr int kMaxRank = 8;

class Reader {
 public:
  Reader(const uint8_t* d, size_t n, const std::string& file) : d_(d), n_(n), file_(file) {}

  PickledTensor run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::ostringstream o;
    o << file_ << ": pickle byte " << op_pos_ << ": " << what
      << "; the file is damaged or not a tensor of xAI's Grok-1 checkpoint (re-download or regenerate it)";
    throw Error(o.str());
  }
  [[noreturn]] void refuse(const std::string& what) const {
    std::ostringstream o;
    o << file_ << ": pickle byte " << op_pos_ << ": " << what
      << "; groak only reads numpy arrays and QuantizedWeight8bit and never runs code from a pickle";
    throw Error(o.str());
  }

  const uint8_t* take(uint64_t k) {
    if (k > n_ - pos_) {
      fail("truncated: needs " + std::to_string(k) + " more bytes, the file has " + std::to_string(n_ - pos_) +
           " left (of " + std::to_string(n_) + ")");
    }
    const uint8_t* p = d_ + pos_;
    pos_ += k;
    return p;
  }
  uint64_t le(int k) {
    const uint8_t* p = take(k);
    uint64_t v = 0;
    for (int b = k - 1; b >= 0; --b) v = (v << 8) | p[b];
    return v;
  }

  void push(ValuePtr v) {
    if (stack_.size() >= kMaxStack) fail("stack deeper than " + std::to_string(kMaxStack));
    stack_.push_back(std::move(v));
  }
  ValuePtr pop() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    return stack_.back();
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + static_cast<long>(m)),
                                std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t idx) {
    if (idx >= kMaxMemo) fail("memo index " + std::to_string(idx) + " too large");
    memo_[idx] = top();
  }
  ValuePtr memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " used before it was stored");
    return it->second;
  }

  static ValuePtr make(Value::Kind k) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
  }
  ValuePtr make_int(int64_t i) {
    auto v = make(Value::Kind::Int);
    v->i = i;
    return v;
  }
  ValuePtr make_str(const uint8_t* p, uint64_t k) {
    auto v = make(Value::Kind::Str);
    v->s.assign(reinterpret_cast<const char*>(p), k);
    return v;
  }
  ValuePtr make_bytes(uint64_t k) {
    auto v = make(Value::Kind::Bytes);
    v->off = pos_;
    v->len = k;
    if (k > n_ - pos_) {
      fail("a payload of " + std::to_string(k) + " bytes at offset " + std::to_string(pos_) +
           " runs past the end of the file (" + std::to_string(n_) + " bytes): truncated or corrupt");
    }
    pos_ += k;
    return v;
  }
  ValuePtr make_tuple(std::vector<ValuePtr> items) {
    auto v = make(Value::Kind::Tuple);
    v->items = std::move(items);
    return v;
  }

  ValuePtr resolve_global(const std::string& module, const std::string& name);
  void reduce();
  void newobj();
  void build();
  void set_items(std::vector<ValuePtr> kv);
  PickledTensor finish(const ValuePtr& v);

  int64_t as_int(const ValuePtr& v, const char* what) {
    if (v->kind != Value::Kind::Int && v->kind != Value::Kind::Bool)
      fail(std::string(what) + " should be an int, found " + kind_name(v->kind));
    return v->i;
  }

  const uint8_t* d_;
  size_t n_;
  const std::string& file_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
};

ValuePtr Reader::resolve_global(const std::string& module, const std::string& name) {
  auto v = make(Value::Kind::Global);
  if ((module == "numpy.core.multiarray" || module == "numpy._core.multiarray") && name == "_reconstruct") {
    v->g = Global::Reconstruct;
  } else if (module == "numpy" && name == "ndarray") {
    v->g = Global::NdArray;
  } else if (module == "numpy" && name == "dtype") {
    v->g = Global::DTypeClass;
  } else if (module == "__main__" && name == "QuantizedWeight8bit") {
    v->g = Global::QuantizedWeight8bit;
  } else if (name == "bfloat16" && (module == "ml_dtypes" || module.rfind("ml_dtypes.", 0) == 0 ||
                                    module.rfind("jax", 0) == 0)) {
    v->g = Global::BFloat16;
  } else {
    refuse("global '" + module + "." + name + "' is not on the whitelist");
  }
  return v;
}

void Reader::reduce() {
  ValuePtr args = pop();
  ValuePtr fn = pop();
  if (fn->kind != Value::Kind::Global) fail("REDUCE on a " + std::string(kind_name(fn->kind)));
  if (args->kind != Value::Kind::Tuple) fail("REDUCE arguments are not a tuple");
  const auto& a = args->items;
  if (fn->g == Global::Reconstruct) {
    // _reconstruct(ndarray, (0,), b'b') -> an empty array that BUILD fills.
    bool ok = a.size() == 3 && a[0]->kind == Value::Kind::Global && a[0]->g == Global::NdArray &&
              a[1]->kind == Value::Kind::Tuple && a[2]->kind == Value::Kind::Bytes;
    if (!ok) refuse("_reconstruct called with other arguments than (ndarray, (0,), b'b')");
    push(make(Value::Kind::Array));
  } else if (fn->g == Global::DTypeClass) {
    // dtype(descr, False, True): descr 'f4' / 'i1' or the bfloat16 type object.
    if (a.size() != 3) refuse("numpy.dtype called with " + std::to_string(a.size()) + " arguments");
    auto v = make(Value::Kind::DType);
    if (a[0]->kind == Value::Kind::Str && (a[0]->s == "f4" || a[0]->s == "<f4")) {
      v->dt = ArrayDType::F32;
    } else if (a[0]->kind == Value::Kind::Str && (a[0]->s == "i1" || a[0]->s == "|i1")) {
      v->dt = ArrayDType::I8;
    } else if (a[0]->kind == Value::Kind::Global && a[0]->g == Global::BFloat16) {
      v->dt = ArrayDType::BF16;
    } else {
      std::string d = a[0]->kind == Value::Kind::Str ? "'" + a[0]->s + "'" : kind_name(a[0]->kind);
      fail("unsupported dtype " + d + " (a Grok-1 checkpoint holds only float32, int8 and bfloat16)");
    }
    push(v);
  } else {
    refuse("REDUCE of a global other than _reconstruct or numpy.dtype");
  }
}

void Reader::newobj() {
  ValuePtr args = pop();
  ValuePtr cls = pop();
  if (cls->kind != Value::Kind::Global || cls->g != Global::QuantizedWeight8bit)
    refuse("NEWOBJ of something other than __main__.QuantizedWeight8bit");
  if (args->kind != Value::Kind::Tuple || !args->items.empty())
    refuse("NEWOBJ of QuantizedWeight8bit with arguments");
  push(make(Value::Kind::QW));
}

void Reader::build() {
  ValuePtr state = pop();
  ValuePtr& obj = top();
  if (obj->built) fail("BUILD applied twice to one " + std::string(kind_name(obj->kind)));
  if (obj->kind == Value::Kind::Array) {
    // state = (version 1, shape, dtype, fortran False, raw bytes)
    if (state->kind != Value::Kind::Tuple || state->items.size() != 5) fail("ndarray state is not a 5-tuple");
    const auto& s = state->items;
    if (as_int(s[0], "ndarray state version") != 1) fail("ndarray state version is not 1");
    if (s[1]->kind != Value::Kind::Tuple) fail("ndarray shape is not a tuple");
    if (s[2]->kind != Value::Kind::DType || !s[2]->built) fail("ndarray dtype is missing");
    if (as_int(s[3], "ndarray fortran flag") != 0) fail("Fortran-ordered arrays are not supported");
    if (s[4]->kind != Value::Kind::Bytes) fail("ndarray data is not a bytes payload");
    PickledArray& arr = obj->arr;
    arr.dtype = s[2]->dt;
    if (s[1]->items.size() > kMaxRank) fail("ndarray rank above " + std::to_string(kMaxRank));
    unsigned __int128 count = 1;
    for (const auto& dim : s[1]->items) {
      int64_t v = as_int(dim, "ndarray dimension");
      if (v < 0) fail("negative ndarray dimension " + std::to_string(v));
      arr.shape.push_back(v);
      count *= static_cast<uint64_t>(v);
      if (count > (static_cast<unsigned __int128>(1) << 62)) fail("ndarray element count overflows");
    }
    unsigned __int128 want = count * dtype_size(arr.dtype);
    if (want != s[4]->len) {
      fail("ndarray " + std::string(dtype_name(arr.dtype)) + " " + arr.shape_str() + " needs " +
           std::to_string(static_cast<uint64_t>(want)) + " bytes of data, the payload has " +
           std::to_string(s[4]->len));
    }
    arr.offset = s[4]->off;
    arr.nbytes = s[4]->len;
  } else if (obj->kind == Value::Kind::DType) {
    // state = (3, endian, None, None, None, elsize, alignment, flags)
    if (state->kind != Value::Kind::Tuple || state->items.size() != 8) fail("dtype state is not an 8-tuple");
    const auto& s = state->items;
    if (as_int(s[0], "dtype state version") != 3) fail("dtype state version is not 3");
    if (s[1]->kind != Value::Kind::Str) fail("dtype byte order is not a string");
    const std::string& e = s[1]->s;
    if (e == ">") fail("big-endian " + std::string(dtype_name(obj->dt)) + " data is not supported");
    if (e != "<" && e != "|" && e != "=") fail("unknown dtype byte order '" + e + "'");
  } else if (obj->kind == Value::Kind::QW) {
    if (state->kind != Value::Kind::Dict) fail("QuantizedWeight8bit state is not a dict");
    for (size_t k = 0; k + 1 < state->items.size(); k += 2) {
      const ValuePtr& key = state->items[k];
      const ValuePtr& val = state->items[k + 1];
      if (key->kind != Value::Kind::Str) fail("QuantizedWeight8bit attribute name is not a string");
      if (key->s != "weight" && key->s != "scales")
        fail("QuantizedWeight8bit has an unexpected attribute '" + key->s + "'");
      if (val->kind != Value::Kind::Array || !val->built)
        fail("QuantizedWeight8bit." + key->s + " is not an ndarray");
      (key->s == "weight" ? obj->weight : obj->scales) = val;
    }
    if (!obj->weight || !obj->scales) fail("QuantizedWeight8bit lacks 'weight' or 'scales'");
  } else {
    refuse("BUILD on a " + std::string(kind_name(obj->kind)));
  }
  obj->built = true;
}

void Reader::set_items(std::vector<ValuePtr> kv) {
  ValuePtr& dict = top();
  if (dict->kind != Value::Kind::Dict) fail("SETITEMS on a " + std::string(kind_name(dict->kind)));
  if (kv.size() % 2) fail("SETITEMS with an odd number of items");
  if (dict->items.size() + kv.size() > kMaxStack) fail("dict too large");
  for (auto& v : kv) dict->items.push_back(std::move(v));
}

PickledTensor Reader::finish(const ValuePtr& v) {
  PickledTensor t;
  if (v->kind == Value::Kind::Array && v->built) {
    t.kind = PickledTensor::Kind::Array;
    t.array = v->arr;
  } else if (v->kind == Value::Kind::QW && v->built) {
    t.kind = PickledTensor::Kind::QuantizedWeight8bit;
    t.weight = v->weight->arr;
    t.scales = v->scales->arr;
    if (t.weight.dtype != ArrayDType::I8)
      fail(std::string("QuantizedWeight8bit.weight should be int8, found ") + dtype_name(t.weight.dtype));
    if (t.scales.dtype != ArrayDType::BF16)
      fail(std::string("QuantizedWeight8bit.scales should be bfloat16, found ") + dtype_name(t.scales.dtype));
  } else {
    fail(std::string("the pickle holds a ") + kind_name(v->kind) +
         ", expected an ndarray or a QuantizedWeight8bit");
  }
  return t;
}

PickledTensor Reader::run() {
  if (n_ < 2 || d_[0] != PROTO) {
    op_pos_ = 0;
    fail("not a pickle (no PROTO opcode at the start)");
  }
  for (size_t ops = 0; ops < kMaxOps; ++ops) {
    if (pos_ >= n_) fail("truncated: the pickle ends before STOP");
    op_pos_ = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case PROTO: {
        uint64_t v = le(1);
        if (v < 2 || v > 5) fail("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case FRAME: le(8); break;  // frames are only an I/O hint; the whole file is mapped
      case STOP: {
        ValuePtr v = pop();
        if (!stack_.empty() || !marks_.empty()) fail("items left on the stack at STOP");
        return finish(v);
      }
      case MARK:
        if (marks_.size() >= kMaxStack) fail("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case MEMOIZE: memo_put(memo_.size()); break;
      case BINPUT: memo_put(le(1)); break;
      case LONG_BINPUT: memo_put(le(4)); break;
      case BINGET: push(memo_get(le(1))); break;
      case LONG_BINGET: push(memo_get(le(4))); break;
      case SHORT_BINUNICODE: { uint64_t k = le(1); push(make_str(take(k), k)); break; }
      case BINUNICODE: { uint64_t k = le(4); push(make_str(take(k), k)); break; }
      case SHORT_BINBYTES: push(make_bytes(le(1))); break;
      case BINBYTES: push(make_bytes(le(4))); break;
      case BINBYTES8: push(make_bytes(le(8))); break;
      case STACK_GLOBAL: {
        ValuePtr name = pop();
        ValuePtr module = pop();
        if (module->kind != Value::Kind::Str || name->kind != Value::Kind::Str)
          fail("STACK_GLOBAL needs two strings");
        push(resolve_global(module->s, name->s));
        break;
      }
      case GLOBAL: {  // text form: "module\nname\n"
        auto line = [&]() {
          size_t start = pos_;
          while (pos_ < n_ && d_[pos_] != '\n') ++pos_;
          if (pos_ >= n_) fail("truncated GLOBAL");
          std::string s(reinterpret_cast<const char*>(d_ + start), pos_ - start);
          ++pos_;
          return s;
        };
        std::string module = line();
        std::string name = line();
        push(resolve_global(module, name));
        break;
      }
      case BININT1: push(make_int(static_cast<int64_t>(le(1)))); break;
      case BININT2: push(make_int(static_cast<int64_t>(le(2)))); break;
      case BININT: push(make_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); break;
      case LONG1: {
        uint64_t k = le(1);
        if (k > 8) fail("integer of " + std::to_string(k) + " bytes is too large");
        const uint8_t* p = take(k);
        uint64_t u = 0;
        for (int b = static_cast<int>(k) - 1; b >= 0; --b) u = (u << 8) | p[b];
        if (k > 0 && k < 8 && (p[k - 1] & 0x80)) u |= ~uint64_t{0} << (8 * k);  // sign-extend
        push(make_int(static_cast<int64_t>(u)));
        break;
      }
      case NONE: push(make(Value::Kind::None)); break;
      case NEWTRUE: case NEWFALSE: {
        auto v = make(Value::Kind::Bool);
        v->i = op == NEWTRUE;
        push(v);
        break;
      }
      case EMPTY_TUPLE: push(make_tuple({})); break;
      case TUPLE: push(make_tuple(pop_mark())); break;
      case TUPLE1: case TUPLE2: case TUPLE3: {
        size_t k = op - TUPLE1 + 1;
        std::vector<ValuePtr> items(k);
        for (size_t j = k; j-- > 0;) items[j] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case EMPTY_DICT: push(make(Value::Kind::Dict)); break;
      case EMPTY_LIST: push(make(Value::Kind::List)); break;
      case SETITEM: {
        ValuePtr v = pop();
        ValuePtr k = pop();
        set_items({k, v});
        break;
      }
      case SETITEMS: set_items(pop_mark()); break;
      case APPEND: case APPENDS: {
        std::vector<ValuePtr> items = op == APPENDS ? pop_mark() : std::vector<ValuePtr>{pop()};
        ValuePtr& list = top();
        if (list->kind != Value::Kind::List) fail("APPEND to a " + std::string(kind_name(list->kind)));
        if (list->items.size() + items.size() > kMaxStack) fail("list too large");
        for (auto& v : items) list->items.push_back(std::move(v));
        break;
      }
      case REDUCE: reduce(); break;
      case NEWOBJ: newobj(); break;
      case BUILD: build(); break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        refuse(std::string("opcode ") + hex + " is not allowed");
      }
    }
  }
  fail("more than " + std::to_string(kMaxOps) + " opcodes");
}

}  // namespace

PickledTensor parse_xai_pickle(const uint8_t* data, size_t size, const std::string& file) {
  Reader r(data, size, file);
  return r.run();
}

}  // namespace groak
