#include "io/torch_bin.h"

#include <algorithm>
#include <map>
#include <memory>

#include "io/pickle_vm.h"
#include "io/zip_reader.h"
#include "util/error.h"
#include "util/text.h"

namespace groak {

namespace {

const char* const kTorchDamagedHint = "the file is damaged or not a torch.save archive (re-download it)";
const char* const kRefusedHint =
    "groak reads only state dicts of tensors (torch.save(model.state_dict())) and never runs code from a pickle";

constexpr size_t kTorchMaxRank = 16;
constexpr uint8_t kPickleProto = 0x80;
constexpr uint8_t kMaxPickleProtocol = 5;

// The storage classes a state dict names (torch.<Name>), with the element each holds. Only the first three
// are computed with; the others are parsed so that an integer buffer does not stop a model from loading.
struct StorageType {
  const char* name;
  TensorDType dtype;
  const char* dtype_name;  // safetensors' spelling, as TensorView carries it
  uint64_t element_size;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", TensorDType::F32, "F32", 4},    {"HalfStorage", TensorDType::F16, "F16", 2},
    {"BFloat16Storage", TensorDType::BF16, "BF16", 2}, {"DoubleStorage", TensorDType::Other, "F64", 8},
    {"LongStorage", TensorDType::Other, "I64", 8},   {"IntStorage", TensorDType::Other, "I32", 4},
    {"ShortStorage", TensorDType::Other, "I16", 2},  {"CharStorage", TensorDType::Other, "I8", 1},
    {"ByteStorage", TensorDType::Other, "U8", 1},    {"BoolStorage", TensorDType::Other, "BOOL", 1},
};

// The only globals data.pkl may name.
enum class TorchGlobal : int64_t { OrderedDict, RebuildTensorV2, RebuildParameter, Storage };

struct StorageClassValue final : PickleValue {
  explicit StorageClassValue(const StorageType& t) : PickleValue(Kind::Global), type(t) {}
  const StorageType& type;
};
// collections.OrderedDict(): a dict that BUILD may give a `_metadata` attribute (module.state_dict() does).
struct OrderedDictValue final : PickleValue {
  OrderedDictValue() : PickleValue(Kind::Dict) {}
  const char* type_name() const override { return "OrderedDict"; }
};
// A persistent reference ('storage', <Type>Storage, key, location, numel).
struct StorageValue final : PickleValue {
  explicit StorageValue(const StorageType& t) : PickleValue(Kind::Object), type(t) {}
  const char* type_name() const override { return "storage"; }
  const StorageType& type;
  std::string key;
  uint64_t numel = 0;
};
// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
struct TensorValue final : PickleValue {
  TensorValue() : PickleValue(Kind::Object) {}
  const char* type_name() const override { return "tensor"; }
  const StorageValue* storage = nullptr;
  uint64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
};

// A tensor of the state dict as the pickle describes it, before it is checked against the archive.
struct PickledTorchTensor {
  std::string name;
  const TensorValue* t;
};

// Caps far above a real state dict (Grok-1 has 2,114 tensors, ~30 opcodes each) that still bound the
// memory a hostile pickle can claim.
PickleLimits torch_limits() {
  PickleLimits l;
  l.max_stack = 1u << 16;
  l.max_memo = uint64_t{1} << 32;
  l.max_ops = 1u << 22;
  l.max_items = 1u << 20;
  return l;
}

class TorchPickleReader final : public PickleMachine {
 public:
  TorchPickleReader(const uint8_t* d, size_t n, const std::string& label)
      : PickleMachine(d, n, label, kTorchDamagedHint, kRefusedHint, torch_limits()) {}

  std::vector<PickledTorchTensor> parse() {
    const PickleValue* top = run();
    if (top->kind != PickleValue::Kind::Dict)
      fail(std::string("the pickle holds a ") + top->type_name() + ", expected a state dict {name: tensor}");
    std::vector<PickledTorchTensor> out;
    for (size_t k = 0; k + 1 < top->items.size(); k += 2) {
      const PickleValue* key = top->items[k];
      const auto* t = dynamic_cast<const TensorValue*>(top->items[k + 1]);
      if (key->kind != PickleValue::Kind::Str) fail(std::string("a state dict key is a ") + key->type_name());
      if (!t) {
        fail("state dict entry '" + printable(key->s) + "' is a " + top->items[k + 1]->type_name() +
             ", not a tensor (groak reads flat {name: tensor} state dicts)");
      }
      out.push_back({key->s, t});
    }
    return out;
  }

 private:
  PickleValue* global(const std::string& module, const std::string& name) override {
    if (module == "collections" && name == "OrderedDict")
      return make_global(static_cast<int64_t>(TorchGlobal::OrderedDict), module, name);
    if (module == "torch._utils" && name == "_rebuild_tensor_v2")
      return make_global(static_cast<int64_t>(TorchGlobal::RebuildTensorV2), module, name);
    if (module == "torch._utils" && name == "_rebuild_parameter")
      return make_global(static_cast<int64_t>(TorchGlobal::RebuildParameter), module, name);
    if (module == "torch") {
      for (const StorageType& t : kStorageTypes) {
        if (name == t.name) {
          PickleValue* v = adopt(std::make_unique<StorageClassValue>(t));
          v->i = static_cast<int64_t>(TorchGlobal::Storage);
          v->s = module + "." + name;
          return v;
        }
      }
    }
    refuse("global '" + printable(module + "." + name) + "' is not on the whitelist");
  }

  PickleValue* reduce(PickleValue* fn, PickleValue* args) override {
    if (fn->kind != PickleValue::Kind::Global) fail("REDUCE on a " + std::string(fn->type_name()));
    if (args->kind != PickleValue::Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    switch (static_cast<TorchGlobal>(fn->i)) {
      case TorchGlobal::OrderedDict:
        if (!a.empty()) refuse("collections.OrderedDict called with arguments");
        return adopt(std::make_unique<OrderedDictValue>());
      case TorchGlobal::RebuildTensorV2: return rebuild_tensor(a);
      case TorchGlobal::RebuildParameter: {
        // _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself is all groak needs.
        if (a.size() != 3 || !dynamic_cast<TensorValue*>(a[0]))
          fail("_rebuild_parameter needs (tensor, requires_grad, backward_hooks)");
        require_no_hooks(a[2]);
        return a[0];
      }
      case TorchGlobal::Storage: break;
    }
    refuse("calling " + fn->s + " is not allowed (storages arrive only as persistent references)");
  }

  PickleValue* rebuild_tensor(const std::vector<PickleValue*>& a) {
    if (a.size() != 6 && a.size() != 7) {
      fail("_rebuild_tensor_v2 called with " + std::to_string(a.size()) +
           " arguments, expected (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])");
    }
    auto t = std::make_unique<TensorValue>();
    t->storage = dynamic_cast<const StorageValue*>(a[0]);
    if (!t->storage) fail(std::string("a tensor's storage is a ") + a[0]->type_name() + ", not a storage reference");
    const int64_t offset = as_int(a[1], "storage_offset");
    if (offset < 0) fail("negative storage_offset " + std::to_string(offset));
    t->storage_offset = static_cast<uint64_t>(offset);
    t->shape = dims(a[2], "size");
    t->stride = dims(a[3], "stride");
    if (t->stride.size() != t->shape.size()) {
      fail("size " + dims_str(t->shape) + " and stride " + dims_str(t->stride) + " differ in rank");
    }
    as_int(a[4], "requires_grad");
    require_no_hooks(a[5]);
    if (a.size() == 7 && a[6]->kind != PickleValue::Kind::None && a[6]->kind != PickleValue::Kind::Dict)
      fail(std::string("tensor metadata is a ") + a[6]->type_name() + ", expected a dict or None");
    return adopt(std::move(t));
  }

  std::vector<int64_t> dims(const PickleValue* v, const char* what) {
    if (v->kind != PickleValue::Kind::Tuple) fail(std::string("a tensor's ") + what + " is not a tuple");
    if (v->items.size() > kTorchMaxRank) fail(std::string("a tensor's ") + what + " has rank above " + std::to_string(kTorchMaxRank));
    std::vector<int64_t> out;
    for (const PickleValue* d : v->items) {
      const int64_t x = as_int(d, what);
      if (x < 0) fail(std::string("negative ") + what + " " + std::to_string(x));
      out.push_back(x);
    }
    return out;
  }

  // Backward hooks would be functions; a saved state dict has an empty OrderedDict there.
  void require_no_hooks(const PickleValue* v) {
    if (v->kind != PickleValue::Kind::Dict) fail(std::string("backward_hooks is a ") + v->type_name() + ", not a dict");
    if (!v->items.empty()) refuse("a tensor with backward hooks");
  }

  void build(PickleValue* obj, PickleValue* state) override {
    // OrderedDict state {'_metadata': OrderedDict of {'version': N}}: plain values, nothing to apply.
    if (!dynamic_cast<OrderedDictValue*>(obj)) refuse("BUILD on a " + std::string(obj->type_name()));
    if (obj->built) fail("BUILD applied twice to one OrderedDict");
    if (state->kind != PickleValue::Kind::Dict) fail(std::string("OrderedDict state is a ") + state->type_name());
    obj->built = true;
  }

  PickleValue* persistent_load(PickleValue* pid) override {
    const auto& p = pid->items;
    const bool shape_ok = pid->kind == PickleValue::Kind::Tuple && p.size() == 5 &&
                          p[0]->kind == PickleValue::Kind::Str && p[0]->s == "storage";
    if (!shape_ok) refuse("a persistent reference other than ('storage', type, key, location, numel)");
    const auto* cls = dynamic_cast<const StorageClassValue*>(p[1]);
    if (!cls) fail(std::string("a storage reference names a ") + p[1]->type_name() + " as its type");
    if (p[2]->kind != PickleValue::Kind::Str) fail("a storage key is not a string");
    if (p[3]->kind != PickleValue::Kind::Str) fail("a storage location is not a string");
    const int64_t numel = as_int(p[4], "storage numel");
    if (numel < 0) fail("negative storage size " + std::to_string(numel));
    auto s = std::make_unique<StorageValue>(cls->type);
    s->key = p[2]->s;
    s->numel = static_cast<uint64_t>(numel);
    return adopt(std::move(s));
  }
};

// The archive's folder prefix ("archive/", the file's stem + "/", …): where data.pkl is.
const ZipEntry& find_data_pkl(const std::vector<ZipEntry>& entries, const std::string& file) {
  const ZipEntry* found = nullptr;
  for (const ZipEntry& e : entries) {
    const size_t slash = e.name.find('/');
    const bool top = e.name == "data.pkl" || (slash != std::string::npos && e.name.substr(slash + 1) == "data.pkl");
    if (!top) continue;
    if (found) throw_tensor_error(file, "", "holds two state dicts (" + found->name + ", " + e.name + ")", kTorchDamagedHint);
    found = &e;
  }
  if (!found) throw_tensor_error(file, "", "a zip archive without data.pkl", "not a torch.save archive");
  return *found;
}

[[noreturn]] void refuse_legacy(const std::string& file) {
  throw_tensor_error(file, "",
                     "the legacy torch.save format (a bare pickle stream, written by PyTorch before 1.6 or with "
                     "_use_new_zipfile_serialization=False) is not supported",
                     "re-save it in the zip format with a current PyTorch (torch.save(state_dict, path)), or as "
                     "safetensors");
}

}  // namespace

std::vector<TensorView> parse_torch_zip(const uint8_t* data, size_t size, const std::string& file, PickleCrc crc) {
  const bool zip = size >= 4 && data[0] == 'P' && data[1] == 'K';
  if (!zip) {
    if (size >= 2 && data[0] == kPickleProto && data[1] <= kMaxPickleProtocol) refuse_legacy(file);
    throw_tensor_error(file, "", "neither a zip archive nor a pickle", "not a PyTorch file (re-download it)");
  }
  const std::vector<ZipEntry> entries = read_zip_directory(data, size, file);
  std::map<std::string, const ZipEntry*> by_name;
  for (const ZipEntry& e : entries) by_name[e.name] = &e;

  const ZipEntry& pkl = find_data_pkl(entries, file);
  const std::string prefix = pkl.name.substr(0, pkl.name.size() - std::string("data.pkl").size());
  if (auto it = by_name.find(prefix + "byteorder"); it != by_name.end()) {
    const std::string order(reinterpret_cast<const char*>(data + it->second->offset), it->second->size);
    if (order != "little")
      throw_tensor_error(file, "", "storages in byte order \"" + order + "\"", "groak reads little-endian archives only");
  }
  if (crc == PickleCrc::Verify && crc32(data + pkl.offset, pkl.size) != pkl.crc32)
    throw_tensor_error(file, "", pkl.name + " does not match its CRC-32", kTorchDamagedHint);

  TorchPickleReader reader(data + pkl.offset, pkl.size, file + ":" + pkl.name);
  std::vector<TensorView> out;
  std::map<std::string, const StorageValue*> storages;  // key -> the first reference (all must agree)
  for (const PickledTorchTensor& pt : reader.parse()) {
    const TensorValue& t = *pt.t;
    const StorageValue& s = *t.storage;
    const StorageType& type = s.type;
    auto [first, fresh] = storages.emplace(s.key, &s);
    if (!fresh && (&first->second->type != &type || first->second->numel != s.numel)) {
      throw_tensor_error(file, pt.name,
                         "storage " + s.key + " is referenced as " + std::to_string(s.numel) + " " + type.name +
                             " elements and elsewhere as " + std::to_string(first->second->numel) + " " +
                             first->second->type.name + " elements",
                         kTorchDamagedHint);
    }
    auto it = by_name.find(prefix + "data/" + s.key);
    if (it == by_name.end())
      throw_tensor_error(file, pt.name, "its storage " + prefix + "data/" + s.key + " is not in the archive", kTorchDamagedHint);
    const ZipEntry& entry = *it->second;
    const unsigned __int128 storage_bytes = static_cast<unsigned __int128>(s.numel) * type.element_size;
    if (storage_bytes != entry.size) {
      throw_tensor_error(file, pt.name,
                         "storage " + entry.name + " should hold " + std::to_string(s.numel) + " " + type.dtype_name +
                             " elements (" + std::to_string(static_cast<uint64_t>(storage_bytes)) + " bytes), the entry has " +
                             std::to_string(entry.size) + " bytes",
                         kTorchDamagedHint);
    }

    TensorView v;
    v.name = pt.name;
    v.dtype = type.dtype;
    v.dtype_name = type.dtype_name;
    v.shape = t.shape;
    v.file = file;
    // Element count, and C-order contiguity: stride[i] = prod(shape[i+1:]) wherever shape[i] > 1.
    unsigned __int128 numel = 1;
    bool contiguous = true;
    for (size_t i = t.shape.size(); i-- > 0;) {
      if (t.shape[i] != 1 && static_cast<unsigned __int128>(t.stride[i]) != numel) contiguous = false;
      numel *= static_cast<uint64_t>(t.shape[i]);
      if (numel > s.numel) break;  // too big for the storage whatever the rest is (caught below)
    }
    for (int64_t d : t.shape) numel = d == 0 ? 0 : numel;
    if (numel > 0) {
      if (!contiguous) {
        throw_tensor_error(file, pt.name,
                           "not contiguous (size " + dims_str(t.shape) + ", stride " + dims_str(t.stride) + ")",
                           "groak maps tensors in place and needs row-major data; re-save it with "
                           "{k: v.contiguous() for k, v in state_dict.items()}");
      }
      if (t.storage_offset > s.numel || numel > s.numel - t.storage_offset) {
        throw_tensor_error(file, pt.name,
                           "size " + dims_str(t.shape) + " at storage offset " + std::to_string(t.storage_offset) +
                               " runs past the end of its storage " + entry.name + " (" + std::to_string(s.numel) +
                               " elements)",
                           kTorchDamagedHint);
      }
    }
    v.offset = numel > 0 ? entry.offset + t.storage_offset * type.element_size : entry.offset;
    v.nbytes = static_cast<uint64_t>(numel) * type.element_size;
    v.data = data + v.offset;
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].name == out[i - 1].name) throw_tensor_error(file, out[i].name, "appears twice in the state dict", kTorchDamagedHint);
  return out;
}

TensorFile open_torch_file(const std::string& path) {
  TensorFile f;
  f.map = MappedFile(path);
  f.tensors = parse_torch_zip(f.map.data(), f.map.size(), path);
  return f;
}

const ShardedFormat kTorchBinFormat = {"PyTorch .bin", "pytorch_model.bin", "pytorch_model.bin.index.json", ".bin",
                                       &open_torch_file};

}  // namespace groak
