#include "io/xai_pickle.h"

#include <memory>

#include "io/pickle_vm.h"
#include "util/error.h"
#include "util/text.h"

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

// The only globals a checkpoint may name.
enum class XaiGlobal : int64_t { Reconstruct, NdArray, DTypeClass, QuantizedWeight8bit, BFloat16 };

// The objects a checkpoint builds.
struct ArrayValue final : PickleValue {
  ArrayValue() : PickleValue(Kind::Object) {}
  const char* type_name() const override { return "ndarray"; }
  PickledArray arr;  // after BUILD
};
struct DTypeValue final : PickleValue {
  DTypeValue() : PickleValue(Kind::Object) {}
  const char* type_name() const override { return "dtype"; }
  ArrayDType dt = ArrayDType::F32;
};
struct QuantizedValue final : PickleValue {
  QuantizedValue() : PickleValue(Kind::Object) {}
  const char* type_name() const override { return "QuantizedWeight8bit"; }
  const ArrayValue* weight = nullptr;  // after BUILD
  const ArrayValue* scales = nullptr;
};

constexpr size_t kXaiMaxRank = 8;

bool is_global(const PickleValue* v, XaiGlobal g) {
  return v->kind == PickleValue::Kind::Global && v->i == static_cast<int64_t>(g);
}

class XaiReader final : public PickleMachine {
 public:
  XaiReader(const uint8_t* d, size_t n, const std::string& file)
      : PickleMachine(d, n, file,
                      "the file is damaged or not a tensor of xAI's Grok-1 checkpoint (re-download or regenerate it)",
                      "groak only reads numpy arrays and QuantizedWeight8bit and never runs code from a pickle") {}

  PickledTensor parse() { return finish(run()); }

 private:
  PickleValue* global(const std::string& module, const std::string& name) override {
    XaiGlobal g;
    if ((module == "numpy.core.multiarray" || module == "numpy._core.multiarray") && name == "_reconstruct") {
      g = XaiGlobal::Reconstruct;
    } else if (module == "numpy" && name == "ndarray") {
      g = XaiGlobal::NdArray;
    } else if (module == "numpy" && name == "dtype") {
      g = XaiGlobal::DTypeClass;
    } else if (module == "__main__" && name == "QuantizedWeight8bit") {
      g = XaiGlobal::QuantizedWeight8bit;
    } else if (name == "bfloat16" && (module == "ml_dtypes" || module.rfind("ml_dtypes.", 0) == 0 ||
                                      module.rfind("jax", 0) == 0)) {
      g = XaiGlobal::BFloat16;
    } else {
      refuse("global '" + printable(module + "." + name) + "' is not on the whitelist");
    }
    return make_global(static_cast<int64_t>(g), module, name);
  }

  PickleValue* reduce(PickleValue* fn, PickleValue* args) override {
    if (fn->kind != PickleValue::Kind::Global) fail("REDUCE on a " + std::string(fn->type_name()));
    if (args->kind != PickleValue::Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    if (is_global(fn, XaiGlobal::Reconstruct)) {
      // _reconstruct(ndarray, (0,), b'b') -> an empty array that BUILD fills.
      const bool ok = a.size() == 3 && is_global(a[0], XaiGlobal::NdArray) && a[1]->kind == PickleValue::Kind::Tuple &&
                      a[2]->kind == PickleValue::Kind::Bytes;
      if (!ok) refuse("_reconstruct called with other arguments than (ndarray, (0,), b'b')");
      return adopt(std::make_unique<ArrayValue>());
    }
    if (is_global(fn, XaiGlobal::DTypeClass)) {
      // dtype(descr, False, True): descr 'f4' / 'i1' or the bfloat16 type object.
      if (a.size() != 3) refuse("numpy.dtype called with " + std::to_string(a.size()) + " arguments");
      auto v = std::make_unique<DTypeValue>();
      if (a[0]->kind == PickleValue::Kind::Str && (a[0]->s == "f4" || a[0]->s == "<f4")) {
        v->dt = ArrayDType::F32;
      } else if (a[0]->kind == PickleValue::Kind::Str && (a[0]->s == "i1" || a[0]->s == "|i1")) {
        v->dt = ArrayDType::I8;
      } else if (is_global(a[0], XaiGlobal::BFloat16)) {
        v->dt = ArrayDType::BF16;
      } else {
        std::string d = a[0]->kind == PickleValue::Kind::Str ? "'" + a[0]->s + "'" : a[0]->type_name();
        fail("unsupported dtype " + d + " (a Grok-1 checkpoint holds only float32, int8 and bfloat16)");
      }
      return adopt(std::move(v));
    }
    refuse("REDUCE of a global other than _reconstruct or numpy.dtype");
  }

  PickleValue* newobj(PickleValue* cls, PickleValue* args) override {
    if (!is_global(cls, XaiGlobal::QuantizedWeight8bit))
      refuse("NEWOBJ of something other than __main__.QuantizedWeight8bit");
    if (args->kind != PickleValue::Kind::Tuple || !args->items.empty())
      refuse("NEWOBJ of QuantizedWeight8bit with arguments");
    return adopt(std::make_unique<QuantizedValue>());
  }

  void build(PickleValue* obj, PickleValue* state) override {
    if (obj->built) fail("BUILD applied twice to one " + std::string(obj->type_name()));
    if (auto* a = dynamic_cast<ArrayValue*>(obj)) {
      build_array(*a, state);
    } else if (auto* d = dynamic_cast<DTypeValue*>(obj)) {
      // state = (3, endian, None, None, None, elsize, alignment, flags)
      if (state->kind != PickleValue::Kind::Tuple || state->items.size() != 8) fail("dtype state is not an 8-tuple");
      const auto& s = state->items;
      if (as_int(s[0], "dtype state version") != 3) fail("dtype state version is not 3");
      if (s[1]->kind != PickleValue::Kind::Str) fail("dtype byte order is not a string");
      const std::string& e = s[1]->s;
      if (e == ">") fail("big-endian " + std::string(dtype_name(d->dt)) + " data is not supported");
      if (e != "<" && e != "|" && e != "=") fail("unknown dtype byte order '" + e + "'");
    } else if (auto* q = dynamic_cast<QuantizedValue*>(obj)) {
      if (state->kind != PickleValue::Kind::Dict) fail("QuantizedWeight8bit state is not a dict");
      for (size_t k = 0; k + 1 < state->items.size(); k += 2) {
        const PickleValue* key = state->items[k];
        const auto* val = dynamic_cast<const ArrayValue*>(state->items[k + 1]);
        if (key->kind != PickleValue::Kind::Str) fail("QuantizedWeight8bit attribute name is not a string");
        if (key->s != "weight" && key->s != "scales")
          fail("QuantizedWeight8bit has an unexpected attribute '" + key->s + "'");
        if (!val || !val->built) fail("QuantizedWeight8bit." + key->s + " is not an ndarray");
        (key->s == "weight" ? q->weight : q->scales) = val;
      }
      if (!q->weight || !q->scales) fail("QuantizedWeight8bit lacks 'weight' or 'scales'");
    } else {
      refuse("BUILD on a " + std::string(obj->type_name()));
    }
    obj->built = true;
  }

  // state = (version 1, shape, dtype, fortran False, raw bytes)
  void build_array(ArrayValue& obj, const PickleValue* state) {
    if (state->kind != PickleValue::Kind::Tuple || state->items.size() != 5) fail("ndarray state is not a 5-tuple");
    const auto& s = state->items;
    if (as_int(s[0], "ndarray state version") != 1) fail("ndarray state version is not 1");
    if (s[1]->kind != PickleValue::Kind::Tuple) fail("ndarray shape is not a tuple");
    const auto* dt = dynamic_cast<const DTypeValue*>(s[2]);
    if (!dt || !dt->built) fail("ndarray dtype is missing");
    if (as_int(s[3], "ndarray fortran flag") != 0) fail("Fortran-ordered arrays are not supported");
    if (s[4]->kind != PickleValue::Kind::Bytes) fail("ndarray data is not a bytes payload");
    PickledArray& arr = obj.arr;
    arr.dtype = dt->dt;
    if (s[1]->items.size() > kXaiMaxRank) fail("ndarray rank above " + std::to_string(kXaiMaxRank));
    unsigned __int128 count = 1;
    for (const PickleValue* dim : s[1]->items) {
      const int64_t v = as_int(dim, "ndarray dimension");
      if (v < 0) fail("negative ndarray dimension " + std::to_string(v));
      arr.shape.push_back(v);
      count *= static_cast<uint64_t>(v);
      if (count > (static_cast<unsigned __int128>(1) << 62)) fail("ndarray element count overflows");
    }
    const unsigned __int128 want = count * dtype_size(arr.dtype);
    if (want != s[4]->len) {
      fail("ndarray " + std::string(dtype_name(arr.dtype)) + " " + arr.shape_str() + " needs " +
           std::to_string(static_cast<uint64_t>(want)) + " bytes of data, the payload has " +
           std::to_string(s[4]->len));
    }
    arr.offset = s[4]->off;
    arr.nbytes = s[4]->len;
  }

  PickledTensor finish(const PickleValue* v) {
    PickledTensor t;
    const auto* a = dynamic_cast<const ArrayValue*>(v);
    const auto* q = dynamic_cast<const QuantizedValue*>(v);
    if (a && a->built) {
      t.kind = PickledTensor::Kind::Array;
      t.array = a->arr;
    } else if (q && q->built) {
      t.kind = PickledTensor::Kind::QuantizedWeight8bit;
      t.weight = q->weight->arr;
      t.scales = q->scales->arr;
      if (t.weight.dtype != ArrayDType::I8)
        fail(std::string("QuantizedWeight8bit.weight should be int8, found ") + dtype_name(t.weight.dtype));
      if (t.scales.dtype != ArrayDType::BF16)
        fail(std::string("QuantizedWeight8bit.scales should be bfloat16, found ") + dtype_name(t.scales.dtype));
    } else {
      fail(std::string("the pickle holds a ") + v->type_name() + ", expected an ndarray or a QuantizedWeight8bit");
    }
    return t;
  }
};

}  // namespace

PickledTensor parse_xai_pickle(const uint8_t* data, size_t size, const std::string& file) {
  return XaiReader(data, size, file).parse();
}

}  // namespace groak
