// The restricted pickle machine shared by groak's pickle readers (xAI's ckpt-0 files, spec §8; torch.save's
// data.pkl, spec §9.1). It interprets the opcode stream of protocols 2-5 without executing or importing
// anything: it keeps the stack, marks and memo, builds plain values (None, bool, int, str, bytes, tuple,
// list, dict) and hands every operation that could run code in Python (GLOBAL, REDUCE, NEWOBJ, BUILD,
// BINPERSID) to the format's reader, which accepts only the few forms its files use and refuses the rest
// by name. Every length is bounds-checked; byte payloads are returned as ranges of the buffer (zero copy).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace groak {

// A value on the machine's stack. A format's reader derives its own object kinds (an ndarray, a tensor …)
// from it; all values live as long as the machine (they may form cycles through the memo) and are freed one
// by one from the machine's list, never by recursion, so no nesting or cycle can overflow the stack.
struct PickleValue {
  enum class Kind : uint8_t { None, Bool, Int, Str, Bytes, Tuple, List, Dict, Global, Object };
  explicit PickleValue(Kind k) : kind(k) {}
  virtual ~PickleValue() = default;
  // What the value is, in words, for error messages ("int", "ndarray", …).
  virtual const char* type_name() const;

  Kind kind;
  int64_t i = 0;                        // Int, Bool; Global: the reader's id for it
  std::string s;                        // Str; Global: "module.name"
  uint64_t off = 0, len = 0;            // Bytes: range in the buffer
  std::vector<PickleValue*> items;      // Tuple, List; Dict as key, value, key, value … (insertion order)
  bool built = false;                   // BUILD applied (the reader decides what that means)
  uint32_t depth = 0;                   // containers around the deepest item (0 for a scalar)
};

// Caps that no real file comes near; they bound the work and memory a hostile file can cause.
struct PickleLimits {
  size_t max_stack = 4096;     // stack depth and MARK nesting
  size_t max_memo = 1u << 16;  // memo index
  size_t max_ops = 1u << 20;   // opcodes executed
  size_t max_items = 4096;     // items of one list or dict
  uint32_t max_depth = 100;    // nesting of tuples/lists/dicts (real files nest a few levels); bounds any
                               // recursive walk a reader or a debugger might make over the values
};

class PickleMachine {
 public:
  // Runs over data[0, size). `file` names the source in errors; `damaged_hint` ends a message about a
  // malformed stream, `refused_hint` one about a forbidden construct.
  PickleMachine(const uint8_t* data, size_t size, std::string file, std::string damaged_hint,
                std::string refused_hint, PickleLimits limits = {});
  virtual ~PickleMachine();
  PickleMachine(const PickleMachine&) = delete;
  PickleMachine& operator=(const PickleMachine&) = delete;

 protected:
  // Executes up to STOP and returns the object it pops (valid while the machine lives). Throws groak::Error.
  PickleValue* run();

  // The format's whitelist. Each hook gets the popped operands and returns the value to push; the
  // defaults refuse. global() must refuse every (module, name) the format does not name.
  virtual PickleValue* global(const std::string& module, const std::string& name) = 0;
  virtual PickleValue* reduce(PickleValue* callable, PickleValue* args);
  virtual PickleValue* newobj(PickleValue* cls, PickleValue* args);
  virtual void build(PickleValue* obj, PickleValue* state);  // obj stays on the stack
  virtual PickleValue* persistent_load(PickleValue* pid);

  // Errors carrying the file, the opcode's position and the hint.
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void refuse(const std::string& what) const;

  // Values are owned by the machine.
  PickleValue* adopt(std::unique_ptr<PickleValue> v);
  PickleValue* make(PickleValue::Kind k) { return adopt(std::make_unique<PickleValue>(k)); }
  PickleValue* make_global(int64_t id, const std::string& module, const std::string& name);
  int64_t as_int(const PickleValue* v, const char* what) const;
  const std::string& file() const { return file_; }

 private:
  const uint8_t* take(uint64_t k);
  uint64_t le(int k);
  void push(PickleValue* v);
  PickleValue* pop();
  PickleValue* top();
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleValue*> pop_mark();
  void memo_put(uint64_t idx);
  PickleValue* memo_get(uint64_t idx);
  PickleValue* make_str(const uint8_t* p, uint64_t k);
  PickleValue* make_bytes(uint64_t k);
  PickleValue* make_tuple(std::vector<PickleValue*> items);
  void deepen(PickleValue* container, const std::vector<PickleValue*>& items);  // fails past max_depth
  void add_items(PickleValue* container, PickleValue::Kind want, std::vector<PickleValue*> items, const char* op);
  std::string read_line();

  const uint8_t* d_;
  size_t n_;
  std::string file_, damaged_hint_, refused_hint_;
  PickleLimits limits_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  std::vector<std::unique_ptr<PickleValue>> values_;
};

}  // namespace groak
