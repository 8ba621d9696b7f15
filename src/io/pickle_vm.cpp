#include "io/pickle_vm.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "util/error.h"

namespace groak {

namespace {

// The opcodes of protocols 2-5 that the checkpoints use or that re-saved files may use (spec §8.4), plus
// BINPERSID (torch's storage references). Everything else, INST/OBJ/PERSID/EXT*/NEWOBJ_EX among them, is
// refused.
enum Op : uint8_t {
  MARK = '(', STOP = '.', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N', BINPERSID = 'Q',
  REDUCE = 'R', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', APPENDS = 'e', BINGET = 'h',
  LONG_BINGET = 'j', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', SETITEMS = 'u',
  EMPTY_DICT = '}', EMPTY_LIST = ']', EMPTY_TUPLE = ')', BINBYTES = 'B', SHORT_BINBYTES = 'C',
  PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
  NEWFALSE = 0x89, LONG1 = 0x8a, SHORT_BINUNICODE = 0x8c, BINBYTES8 = 0x8e, STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94, FRAME = 0x95,
};

// Pickle opcodes that exist but are refused (names as in Python's pickletools), for messages.
const char* other_opcode_name(uint8_t op) {
  switch (op) {
    case 'I': return "INT"; case 'L': return "LONG"; case 'F': return "FLOAT"; case 'G': return "BINFLOAT";
    case 'S': return "STRING"; case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE"; case 'P': return "PERSID"; case 'i': return "INST"; case 'o': return "OBJ";
    case 'l': return "LIST"; case 'd': return "DICT"; case 'g': return "GET"; case 'p': return "PUT";
    case '0': return "POP"; case '1': return "POP_MARK"; case '2': return "DUP"; case 0x82: return "EXT1";
    case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x8b: return "LONG4"; case 0x8d: return "BINUNICODE8";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX"; case 0x96: return "BYTEARRAY8"; case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

constexpr uint64_t kMinProtocol = 2, kMaxProtocol = 5;
constexpr uint64_t kMaxLong1Bytes = 8;  // LONG1 integers must fit int64

}  // namespace

const char* PickleValue::type_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "class/function";
    case Kind::Object: return "object";
  }
  return "?";
}

PickleMachine::PickleMachine(const uint8_t* data, size_t size, std::string file, std::string damaged_hint,
                             std::string refused_hint, PickleLimits limits)
    : d_(data), n_(size), file_(std::move(file)), damaged_hint_(std::move(damaged_hint)),
      refused_hint_(std::move(refused_hint)), limits_(limits) {}

PickleMachine::~PickleMachine() = default;

void PickleMachine::fail(const std::string& what) const {
  std::ostringstream o;
  o << file_ << ": pickle byte " << op_pos_ << ": " << what << "; " << damaged_hint_;
  throw Error(o.str());
}

void PickleMachine::refuse(const std::string& what) const {
  std::ostringstream o;
  o << file_ << ": pickle byte " << op_pos_ << ": " << what << "; " << refused_hint_;
  throw Error(o.str());
}

PickleValue* PickleMachine::reduce(PickleValue* callable, PickleValue*) {
  refuse("REDUCE (a call) of " + std::string(callable->type_name()) + " is not allowed");
}

PickleValue* PickleMachine::newobj(PickleValue* cls, PickleValue*) {
  refuse("NEWOBJ (object creation) of " + std::string(cls->type_name()) + " is not allowed");
}

void PickleMachine::build(PickleValue* obj, PickleValue*) {
  refuse("BUILD (setting the state) of a " + std::string(obj->type_name()) + " is not allowed");
}

PickleValue* PickleMachine::persistent_load(PickleValue*) {
  refuse("persistent references (BINPERSID) are not allowed in this format");
}

PickleValue* PickleMachine::adopt(std::unique_ptr<PickleValue> v) {
  values_.push_back(std::move(v));
  return values_.back().get();
}

PickleValue* PickleMachine::make_global(int64_t id, const std::string& module, const std::string& name) {
  PickleValue* v = make(PickleValue::Kind::Global);
  v->i = id;
  v->s = module + "." + name;
  return v;
}

int64_t PickleMachine::as_int(const PickleValue* v, const char* what) const {
  if (v->kind != PickleValue::Kind::Int && v->kind != PickleValue::Kind::Bool)
    fail(std::string(what) + " should be an int, found " + v->type_name());
  return v->i;
}

const uint8_t* PickleMachine::take(uint64_t k) {
  if (k > n_ - pos_) {
    fail("truncated: needs " + std::to_string(k) + " more bytes, the file has " + std::to_string(n_ - pos_) +
         " left (of " + std::to_string(n_) + ")");
  }
  const uint8_t* p = d_ + pos_;
  pos_ += k;
  return p;
}

uint64_t PickleMachine::le(int k) {
  const uint8_t* p = take(static_cast<uint64_t>(k));
  uint64_t v = 0;
  for (int b = k - 1; b >= 0; --b) v = (v << 8) | p[b];
  return v;
}

void PickleMachine::push(PickleValue* v) {
  if (stack_.size() >= limits_.max_stack) fail("stack deeper than " + std::to_string(limits_.max_stack));
  stack_.push_back(v);
}

PickleValue* PickleMachine::pop() {
  if (stack_.size() <= mark_floor()) fail("stack underflow");
  PickleValue* v = stack_.back();
  stack_.pop_back();
  return v;
}

PickleValue* PickleMachine::top() {
  if (stack_.size() <= mark_floor()) fail("stack underflow");
  return stack_.back();
}

std::vector<PickleValue*> PickleMachine::pop_mark() {
  if (marks_.empty()) fail("no MARK to pop to");
  const size_t m = marks_.back();
  marks_.pop_back();
  std::vector<PickleValue*> items(stack_.begin() + static_cast<long>(m), stack_.end());
  stack_.resize(m);
  return items;
}

void PickleMachine::memo_put(uint64_t idx) {
  if (idx >= limits_.max_memo) fail("memo index " + std::to_string(idx) + " too large");
  memo_[idx] = top();
}

PickleValue* PickleMachine::memo_get(uint64_t idx) {
  auto it = memo_.find(idx);
  if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " used before it was stored");
  return it->second;
}

PickleValue* PickleMachine::make_str(const uint8_t* p, uint64_t k) {
  PickleValue* v = make(PickleValue::Kind::Str);
  v->s.assign(reinterpret_cast<const char*>(p), k);
  return v;
}

PickleValue* PickleMachine::make_bytes(uint64_t k) {
  if (k > n_ - pos_) {
    fail("a payload of " + std::to_string(k) + " bytes at offset " + std::to_string(pos_) +
         " runs past the end of the file (" + std::to_string(n_) + " bytes): truncated or corrupt");
  }
  PickleValue* v = make(PickleValue::Kind::Bytes);
  v->off = pos_;
  v->len = k;
  pos_ += k;
  return v;
}

void PickleMachine::deepen(PickleValue* container, const std::vector<PickleValue*>& items) {
  for (const PickleValue* it : items) container->depth = std::max(container->depth, it->depth + 1);
  if (container->depth > limits_.max_depth)
    fail(std::string(container->type_name()) + " nested more than " + std::to_string(limits_.max_depth) +
         " levels deep (real checkpoints nest a few)");
}

PickleValue* PickleMachine::make_tuple(std::vector<PickleValue*> items) {
  PickleValue* v = make(PickleValue::Kind::Tuple);
  deepen(v, items);
  v->items = std::move(items);
  return v;
}

void PickleMachine::add_items(PickleValue* c, PickleValue::Kind want, std::vector<PickleValue*> items,
                              const char* op) {
  if (c->kind != want) fail(std::string(op) + " on a " + c->type_name());
  if (want == PickleValue::Kind::Dict && items.size() % 2) fail(std::string(op) + " with an odd number of items");
  if (c->items.size() + items.size() > limits_.max_items)
    fail(std::string(c->type_name()) + " with more than " + std::to_string(limits_.max_items) + " items");
  deepen(c, items);
  c->items.insert(c->items.end(), items.begin(), items.end());
}

std::string PickleMachine::read_line() {
  const size_t start = pos_;
  while (pos_ < n_ && d_[pos_] != '\n') ++pos_;
  if (pos_ >= n_) fail("truncated GLOBAL");
  std::string s(reinterpret_cast<const char*>(d_ + start), pos_ - start);
  ++pos_;
  return s;
}

PickleValue* PickleMachine::run() {
  using K = PickleValue::Kind;
  if (n_ < 2 || d_[0] != PROTO) {
    op_pos_ = 0;
    fail("not a pickle (no PROTO opcode at the start)");
  }
  for (size_t ops = 0; ops < limits_.max_ops; ++ops) {
    if (pos_ >= n_) fail("truncated: the pickle ends before STOP");
    op_pos_ = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case PROTO: {
        const uint64_t v = le(1);
        if (v < kMinProtocol || v > kMaxProtocol) fail("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case FRAME: le(8); break;  // frames are only an I/O hint; the whole buffer is here
      case STOP: {
        PickleValue* v = pop();
        if (!stack_.empty() || !marks_.empty()) fail("items left on the stack at STOP");
        return v;
      }
      case MARK:
        if (marks_.size() >= limits_.max_stack) fail("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case MEMOIZE: memo_put(memo_.size()); break;
      case BINPUT: memo_put(le(1)); break;
      case LONG_BINPUT: memo_put(le(4)); break;
      case BINGET: push(memo_get(le(1))); break;
      case LONG_BINGET: push(memo_get(le(4))); break;
      case SHORT_BINUNICODE: { const uint64_t k = le(1); push(make_str(take(k), k)); break; }
      case BINUNICODE: { const uint64_t k = le(4); push(make_str(take(k), k)); break; }
      case SHORT_BINBYTES: push(make_bytes(le(1))); break;
      case BINBYTES: push(make_bytes(le(4))); break;
      case BINBYTES8: push(make_bytes(le(8))); break;
      case STACK_GLOBAL: {
        PickleValue* name = pop();
        PickleValue* module = pop();
        if (module->kind != K::Str || name->kind != K::Str) fail("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case GLOBAL: {  // text form: "module\nname\n"
        const std::string module = read_line();
        const std::string name = read_line();
        push(global(module, name));
        break;
      }
      case BININT1: { PickleValue* v = make(K::Int); v->i = static_cast<int64_t>(le(1)); push(v); break; }
      case BININT2: { PickleValue* v = make(K::Int); v->i = static_cast<int64_t>(le(2)); push(v); break; }
      case BININT: {
        PickleValue* v = make(K::Int);
        v->i = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
        push(v);
        break;
      }
      case LONG1: {
        const uint64_t k = le(1);
        if (k > kMaxLong1Bytes) fail("integer of " + std::to_string(k) + " bytes is too large");
        const uint8_t* p = take(k);
        uint64_t u = 0;
        for (int b = static_cast<int>(k) - 1; b >= 0; --b) u = (u << 8) | p[b];
        if (k > 0 && k < 8 && (p[k - 1] & 0x80)) u |= ~uint64_t{0} << (8 * k);  // sign-extend
        PickleValue* v = make(K::Int);
        v->i = static_cast<int64_t>(u);
        push(v);
        break;
      }
      case NONE: push(make(K::None)); break;
      case NEWTRUE: case NEWFALSE: {
        PickleValue* v = make(K::Bool);
        v->i = op == NEWTRUE;
        push(v);
        break;
      }
      case EMPTY_TUPLE: push(make_tuple({})); break;
      case TUPLE: push(make_tuple(pop_mark())); break;
      case TUPLE1: case TUPLE2: case TUPLE3: {
        const size_t k = static_cast<size_t>(op - TUPLE1) + 1;
        std::vector<PickleValue*> items(k);
        for (size_t j = k; j-- > 0;) items[j] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case EMPTY_DICT: push(make(K::Dict)); break;
      case EMPTY_LIST: push(make(K::List)); break;
      case SETITEM: {
        PickleValue* v = pop();
        PickleValue* k = pop();
        add_items(top(), K::Dict, {k, v}, "SETITEM");
        break;
      }
      case SETITEMS: {
        std::vector<PickleValue*> kv = pop_mark();
        add_items(top(), K::Dict, std::move(kv), "SETITEMS");
        break;
      }
      case APPEND: { PickleValue* v = pop(); add_items(top(), K::List, {v}, "APPEND"); break; }
      case APPENDS: {
        std::vector<PickleValue*> items = pop_mark();
        add_items(top(), K::List, std::move(items), "APPENDS");
        break;
      }
      case REDUCE: {
        PickleValue* args = pop();
        PickleValue* fn = pop();
        push(reduce(fn, args));
        break;
      }
      case NEWOBJ: {
        PickleValue* args = pop();
        PickleValue* cls = pop();
        push(newobj(cls, args));
        break;
      }
      case BUILD: {
        PickleValue* state = pop();
        build(top(), state);
        break;
      }
      case BINPERSID: {
        PickleValue* pid = pop();
        push(persistent_load(pid));
        break;
      }
      default: {
        // A flipped byte is far likelier than a hostile file: say "damaged" first, then what it would be.
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        const char* name = other_opcode_name(op);
        std::ostringstream o;
        o << file_ << ": pickle byte " << op_pos_ << ": unexpected byte " << hex << " where an opcode should be; "
          << damaged_hint_;
        if (name)
          o << ". If the file is intact, it uses the pickle opcode " << name << ", which is not allowed: " << refused_hint_;
        throw Error(o.str());
      }
    }
  }
  fail("more than " + std::to_string(limits_.max_ops) + " opcodes");
}

}  // namespace groak
