#include "interop/pickle_reader.h"

#include <ATen/ATen.h>

#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include "util/errors.h"

namespace resnet {
namespace {

// Every object lives in one arena and refers to others by index: a hostile pickle can build
// cycles (a list appended to itself through the memo) or million-deep nesting, and neither may
// leak, recurse or overflow the stack when the arena goes.
struct Value {
  enum Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kTensor, kGlobal, kStorage };
  Kind kind = kNone;
  int64_t i = 0;                 // bool, int; storage: numel
  double f = 0;
  std::string s;                 // string; global: "module.name"; storage: key
  std::vector<size_t> items;     // tuple, list; dict: key, value, key, value, ...
  at::Tensor tensor;             // tensor; storage: its flat data
  at::ScalarType dtype = at::kFloat;  // global (a storage type), storage
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::kNone: return "None";
    case Value::kBool: return "a boolean";
    case Value::kInt: return "an integer";
    case Value::kFloat: return "a float";
    case Value::kString: return "a string";
    case Value::kTuple: return "a tuple";
    case Value::kList: return "a list";
    case Value::kDict: return "a dict";
    case Value::kTensor: return "a tensor";
    case Value::kGlobal: return "a global";
    case Value::kStorage: return "a storage";
  }
  return "?";
}

// The storage classes torch.save names, and the dtype each stands for (nullopt: refused).
bool storage_dtype(const std::string& name, at::ScalarType* dtype, std::string* refused) {
  static const std::map<std::string, std::pair<bool, at::ScalarType>> kStorages = {
      {"torch.FloatStorage", {true, at::kFloat}},     {"torch.BFloat16Storage", {true, at::kBFloat16}},
      {"torch.HalfStorage", {true, at::kHalf}},       {"torch.LongStorage", {true, at::kLong}},
      {"torch.DoubleStorage", {false, at::kDouble}},  {"torch.IntStorage", {false, at::kInt}},
      {"torch.ShortStorage", {false, at::kShort}},    {"torch.CharStorage", {false, at::kChar}},
      {"torch.ByteStorage", {false, at::kByte}},      {"torch.BoolStorage", {false, at::kBool}},
      {"torch.ComplexFloatStorage", {false, at::kComplexFloat}},
      {"torch.ComplexDoubleStorage", {false, at::kComplexDouble}}};
  auto it = kStorages.find(name);
  if (it == kStorages.end()) return false;
  if (!it->second.first) *refused = std::string(c10::toString(it->second.second));
  *dtype = it->second.second;
  return true;
}

constexpr size_t kMaxObjects = size_t{1} << 20;  // ~100 MB; ResNet-152 needs ~20,000

class Unpickler {
 public:
  Unpickler(const std::string& bytes, const StorageLoader& load) : in_(bytes), load_(load) {}

  size_t run();
  const Value& at(size_t index) const { return arena_[index]; }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError("data.pkl: " + why + " (byte " + std::to_string(op_pos_) + ")");
  }
  void need(size_t n) const {
    if (in_.size() - pos_ < n) fail("truncated pickle");
  }
  uint64_t read_le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(static_cast<unsigned char>(in_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string read_bytes(uint64_t n) {
    if (n > in_.size() - pos_) fail("truncated pickle (a string runs past the end)");
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string read_line() {
    const size_t end = in_.find('\n', pos_);
    if (end == std::string::npos) fail("truncated pickle");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  size_t make(Value v) {
    // A state_dict needs a few dozen objects a tensor; a pickle of millions of tiny opcodes is an
    // attempt to exhaust memory (each object takes ~100 bytes, its opcode 1).
    if (arena_.size() >= kMaxObjects) fail("more than " + std::to_string(kMaxObjects) + " objects: not a state_dict");
    arena_.push_back(std::move(v));
    return arena_.size() - 1;
  }
  size_t make_int(int64_t i) {
    Value v;
    v.kind = Value::kInt;
    v.i = i;
    return make(std::move(v));
  }
  size_t pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) fail("stack underflow");
    const size_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  size_t& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) fail("stack underflow");
    return stack_.back();
  }
  // The objects pushed since the last MARK, which is dropped.
  std::vector<size_t> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    std::vector<size_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  size_t make_tuple(std::vector<size_t> items) {
    Value v;
    v.kind = Value::kTuple;
    v.items = std::move(items);
    return make(std::move(v));
  }
  void set_items(size_t dict, const std::vector<size_t>& kv) {
    if (arena_[dict].kind != Value::kDict) fail(std::string("SETITEM on ") + kind_name(arena_[dict].kind));
    if (kv.size() % 2) fail("SETITEMS with an odd number of objects");
    for (size_t k : kv) arena_[dict].items.push_back(k);
  }
  void append(size_t list, const std::vector<size_t>& items) {
    if (arena_[list].kind != Value::kList) fail(std::string("APPEND to ") + kind_name(arena_[list].kind));
    for (size_t k : items) arena_[list].items.push_back(k);
  }
  void memo_put(uint64_t key) {
    if (stack_.empty()) fail("memo of an empty stack");
    memo_[key] = stack_.back();
  }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
    stack_.push_back(it->second);
  }
  size_t global(const std::string& module, const std::string& name);
  size_t persistent_load(size_t pid);
  size_t reduce(size_t callable, size_t args);
  size_t rebuild_tensor(const std::vector<size_t>& args);
  int64_t as_int(size_t v, const char* what) const {
    if (arena_[v].kind != Value::kInt) fail(std::string(what) + ": expected an integer, got " + kind_name(arena_[v].kind));
    return arena_[v].i;
  }
  std::vector<int64_t> as_ints(size_t v, const char* what) const {
    if (arena_[v].kind != Value::kTuple) fail(std::string(what) + ": expected a tuple, got " + kind_name(arena_[v].kind));
    std::vector<int64_t> out;
    for (size_t k : arena_[v].items) out.push_back(as_int(k, what));
    return out;
  }

  const std::string& in_;
  const StorageLoader& load_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<Value> arena_;
  std::vector<size_t> stack_;
  std::vector<size_t> marks_;  // stack sizes at each MARK
  std::unordered_map<uint64_t, size_t> memo_;
  std::map<std::string, size_t> storages_;  // by key: tensors may share one
  // Elements copied out of storages so far: many views of one big storage must not multiply it.
  int64_t storage_numel_ = 0, tensor_numel_ = 0;
};

size_t Unpickler::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  Value v;
  v.kind = Value::kGlobal;
  v.s = full;
  std::string refused;
  if (full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
      full == "torch._utils._rebuild_parameter")
    return make(std::move(v));
  if (storage_dtype(full, &v.dtype, &refused)) {
    if (!refused.empty())
      fail("a tensor of dtype " + refused + " (" + full + "); only float32, bfloat16, float16 and int64 are read");
    return make(std::move(v));
  }
  std::string shown;
  for (char c : full) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  fail("refers to " + shown + ": a weights file holds only tensors, dicts, lists, numbers and strings");
}

// torch.save's persistent id of a storage: ("storage", torch.FloatStorage, key, location, numel).
size_t Unpickler::persistent_load(size_t pid) {
  const Value& p = arena_[pid];
  if (p.kind != Value::kTuple || p.items.size() != 5 || arena_[p.items[0]].kind != Value::kString ||
      arena_[p.items[0]].s != "storage")
    fail("a persistent id that is not a (\"storage\", type, key, location, size) tuple");
  const Value& type = arena_[p.items[1]];
  if (type.kind != Value::kGlobal || type.s.find("Storage") == std::string::npos)
    fail("a storage whose type is not a storage class");
  if (arena_[p.items[2]].kind != Value::kString) fail("a storage key that is not a string");
  if (arena_[p.items[3]].kind != Value::kString) fail("a storage location that is not a string");
  const std::string key = arena_[p.items[2]].s;
  const int64_t numel = as_int(p.items[4], "storage size");
  if (numel < 0) fail("a storage of negative size");
  auto it = storages_.find(key);
  if (it != storages_.end()) {
    const Value& s = arena_[it->second];
    if (s.dtype != type.dtype || s.i != numel) fail("storage " + key + " is named twice with different types or sizes");
    return it->second;
  }
  Value s;
  s.kind = Value::kStorage;
  s.s = key;
  s.dtype = type.dtype;
  s.i = numel;
  s.tensor = load_(key, type.dtype, numel);
  storage_numel_ += numel;
  const size_t index = make(std::move(s));
  storages_[key] = index;
  return index;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
size_t Unpickler::rebuild_tensor(const std::vector<size_t>& args) {
  if (args.size() < 6 || args.size() > 7) fail("_rebuild_tensor_v2 with " + std::to_string(args.size()) + " arguments");
  const Value& storage = arena_[args[0]];
  if (storage.kind != Value::kStorage) fail("_rebuild_tensor_v2 of " + std::string(kind_name(storage.kind)));
  const int64_t offset = as_int(args[1], "storage offset");
  const std::vector<int64_t> size = as_ints(args[2], "tensor size");
  const std::vector<int64_t> stride = as_ints(args[3], "tensor stride");
  if (size.size() != stride.size()) fail("tensor size and stride of different lengths");
  if (size.size() > 16) fail("a tensor of more than 16 dimensions");
  // The view must lie inside the storage: offset + sum((size - 1) * stride) < numel.
  if (offset < 0) fail("a negative storage offset");
  int64_t numel = 1, last = offset;
  bool empty = false;
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d] < 0 || stride[d] < 0) fail("a negative tensor size or stride");
    if (size[d] == 0) empty = true;
    if (size[d] > 0 && (size[d] - 1) > 0 && stride[d] > (std::numeric_limits<int64_t>::max() - last) / (size[d] - 1))
      fail("a tensor view that overflows");
    last += (size[d] > 0 ? size[d] - 1 : 0) * stride[d];
    if (size[d] > 0 && numel > std::numeric_limits<int64_t>::max() / size[d]) fail("a tensor size that overflows");
    numel *= size[d];
  }
  if (!empty && last >= storage.i) fail("a tensor view past the end of storage " + storage.s);
  tensor_numel_ += numel;
  if (tensor_numel_ > 4 * storage_numel_ + (int64_t{1} << 20)) fail("tensors that view their storages many times over");
  Value v;
  v.kind = Value::kTensor;
  v.tensor = empty ? at::empty(size, storage.tensor.options())
                   : storage.tensor.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
  return make(std::move(v));
}

size_t Unpickler::reduce(size_t callable, size_t args) {
  if (arena_[callable].kind != Value::kGlobal) fail("REDUCE of " + std::string(kind_name(arena_[callable].kind)));
  if (arena_[args].kind != Value::kTuple) fail("REDUCE with arguments that are not a tuple");
  const std::string& name = arena_[callable].s;
  const std::vector<size_t> a = arena_[args].items;
  if (name == "collections.OrderedDict") {
    if (!a.empty()) fail("OrderedDict built from arguments");
    Value d;
    d.kind = Value::kDict;
    return make(std::move(d));
  }
  if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
  if (name == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
    if (a.size() != 3 || arena_[a[0]].kind != Value::kTensor) fail("_rebuild_parameter without a tensor");
    return a[0];
  }
  fail("REDUCE of " + name);  // a storage class is not callable
}

size_t Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    need(1);
    const auto op = static_cast<unsigned char>(in_[pos_++]);
    switch (op) {
      case 0x80: read_le(1); break;   // PROTO
      case 0x95: read_le(8); break;   // FRAME (a length hint)
      case '.': {                     // STOP
        const size_t result = pop();
        if (!stack_.empty() || !marks_.empty()) fail("objects left on the stack at STOP");
        return result;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case 'N': stack_.push_back(make(Value{})); break;
      case 0x88: case 0x89: {         // NEWTRUE, NEWFALSE
        Value v;
        v.kind = Value::kBool;
        v.i = op == 0x88;
        stack_.push_back(make(std::move(v)));
        break;
      }
      case 'J': stack_.push_back(make_int(static_cast<int32_t>(read_le(4)))); break;  // BININT
      case 'K': stack_.push_back(make_int(static_cast<int64_t>(read_le(1)))); break;  // BININT1
      case 'M': stack_.push_back(make_int(static_cast<int64_t>(read_le(2)))); break;  // BININT2
      case 0x8a: {                    // LONG1: n bytes, two's complement, little-endian
        const auto n = static_cast<size_t>(read_le(1));
        if (n > 8) fail("an integer wider than 64 bits");
        uint64_t v = n ? read_le(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        stack_.push_back(make_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {                     // BINFLOAT: big-endian IEEE double
        need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = bits << 8 | static_cast<unsigned char>(in_[pos_ + k]);
        pos_ += 8;
        Value v;
        v.kind = Value::kFloat;
        std::memcpy(&v.f, &bits, 8);
        stack_.push_back(make(std::move(v)));
        break;
      }
      case 'X': case 0x8c: case 0x8d: {  // BINUNICODE (4-byte length), SHORT_ (1), BINUNICODE8 (8)
        const uint64_t n = read_le(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
        Value v;
        v.kind = Value::kString;
        v.s = read_bytes(n);
        stack_.push_back(make(std::move(v)));
        break;
      }
      case '}': { Value v; v.kind = Value::kDict; stack_.push_back(make(std::move(v))); break; }
      case ']': { Value v; v.kind = Value::kList; stack_.push_back(make(std::move(v))); break; }
      case ')': stack_.push_back(make_tuple({})); break;
      case 't': stack_.push_back(make_tuple(pop_mark())); break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<size_t> items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        stack_.push_back(make_tuple(std::move(items)));
        break;
      }
      case 'd': {                     // DICT: a dict of the objects since MARK
        std::vector<size_t> kv = pop_mark();
        Value v;
        v.kind = Value::kDict;
        const size_t d = make(std::move(v));
        set_items(d, kv);
        stack_.push_back(d);
        break;
      }
      case 'l': {                     // LIST
        std::vector<size_t> items = pop_mark();
        Value v;
        v.kind = Value::kList;
        v.items = std::move(items);
        stack_.push_back(make(std::move(v)));
        break;
      }
      case 's': {                     // SETITEM
        const size_t value = pop(), key = pop();
        set_items(top(), {key, value});
        break;
      }
      case 'u': {                     // SETITEMS
        std::vector<size_t> kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'a': { const size_t v = pop(); append(top(), {v}); break; }  // APPEND
      case 'e': { std::vector<size_t> items = pop_mark(); append(top(), items); break; }  // APPENDS
      case 'q': memo_put(read_le(1)); break;   // BINPUT
      case 'r': memo_put(read_le(4)); break;   // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': memo_get(read_le(1)); break;   // BINGET
      case 'j': memo_get(read_le(4)); break;   // LONG_BINGET
      case 'c': {                     // GLOBAL "module\nname\n"
        const std::string module = read_line();
        const std::string name = read_line();
        stack_.push_back(global(module, name));
        break;
      }
      case 0x93: {                    // STACK_GLOBAL
        const size_t name = pop(), module = pop();
        if (arena_[name].kind != Value::kString || arena_[module].kind != Value::kString)
          fail("STACK_GLOBAL of non-strings");
        stack_.push_back(global(arena_[module].s, arena_[name].s));
        break;
      }
      case 'Q': { const size_t pid = pop(); stack_.push_back(persistent_load(pid)); break; }  // BINPERSID
      case 'R': {                     // REDUCE
        const size_t args = pop(), callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 'b': {                     // BUILD: only a dict's attributes (state_dict()._metadata), dropped
        pop();
        if (arena_[top()].kind != Value::kDict) fail("BUILD of " + std::string(kind_name(arena_[top()].kind)));
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("pickle opcode ") + hex + " is not allowed in a weights file");
      }
    }
  }
}

bool all_tensors(const Unpickler& u, const Value& dict, bool* any) {
  *any = false;
  for (size_t k = 1; k < dict.items.size(); k += 2)
    if (u.at(dict.items[k]).kind == Value::kTensor) *any = true;
  return *any;
}

}  // namespace

NamedTensors unpickle_state_dict(const std::string& bytes, const StorageLoader& load_storage) {
  Unpickler u(bytes, load_storage);
  const Value* dict = &u.at(u.run());
  if (dict->kind != Value::kDict)
    throw InputError(std::string("data.pkl: holds ") + kind_name(dict->kind) + ", not a state_dict (a dict of tensors)");
  bool any = false;
  if (!all_tensors(u, *dict, &any)) {
    // A training checkpoint: {"epoch": 3, "state_dict": {...}, "optimizer": ...}.
    for (const char* name : {"state_dict", "model_state_dict", "model"}) {
      for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
        const Value& key = u.at(dict->items[k]);
        const Value& value = u.at(dict->items[k + 1]);
        bool inner_any = false;
        if (key.kind == Value::kString && key.s == name && value.kind == Value::kDict && all_tensors(u, value, &inner_any)) {
          dict = &value;
          any = true;
          break;
        }
      }
      if (any) break;
    }
  }
  if (!any) throw InputError("data.pkl: a dict without tensors, not a state_dict");
  NamedTensors out;
  for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
    const Value& key = u.at(dict->items[k]);
    const Value& value = u.at(dict->items[k + 1]);
    if (value.kind != Value::kTensor) continue;
    if (key.kind != Value::kString) throw InputError("data.pkl: a tensor under a key that is not a string");
    out.emplace_back(key.s, value.tensor);
  }
  return out;
}

}  // namespace resnet
