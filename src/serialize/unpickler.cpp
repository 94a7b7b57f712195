#include "serialize/unpickler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include "serialize/zip_reader.h"
#include "util/budgets.h"
#include "util/errors.h"

namespace resnet::pickle {

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
    case Value::kObject: return "an object";
  }
  return "?";
}

const Value* Pickle::find(const Value& dict, const std::string& key) const {
  for (size_t k = 0; k + 1 < dict.items.size(); k += 2) {
    const Value& name = values_[dict.items[k]];
    if (name.kind == Value::kString && name.s == key) return &values_[dict.items[k + 1]];
  }
  return nullptr;
}

namespace {

// The storage classes torch.save names, and the dtype each holds.
bool storage_dtype(std::string name, at::ScalarType* dtype) {
  if (name.rfind("torch.cuda.", 0) == 0) name.erase(5, 5);  // saved on a GPU: read on the CPU
  static const std::map<std::string, at::ScalarType> kStorages = {{"torch.FloatStorage", at::kFloat},
                                                                  {"torch.BFloat16Storage", at::kBFloat16},
                                                                  {"torch.HalfStorage", at::kHalf},
                                                                  {"torch.LongStorage", at::kLong},
                                                                  {"torch.DoubleStorage", at::kDouble},
                                                                  {"torch.IntStorage", at::kInt},
                                                                  {"torch.ShortStorage", at::kShort},
                                                                  {"torch.CharStorage", at::kChar},
                                                                  {"torch.ByteStorage", at::kByte},
                                                                  {"torch.BoolStorage", at::kBool},
                                                                  {"torch.ComplexFloatStorage", at::kComplexFloat},
                                                                  {"torch.ComplexDoubleStorage", at::kComplexDouble}};
  auto it = kStorages.find(name);
  if (it == kStorages.end()) return false;
  *dtype = it->second;
  return true;
}

constexpr size_t kMaxDims = budget::kTensorDims;
constexpr int64_t kMaxTensorBytes = budget::kTensorBytes;
// What one stack slot, container item or mark costs (an index), and one memo entry (a hash node).
constexpr uint64_t kSlotBytes = sizeof(size_t);
constexpr uint64_t kMemoEntryBytes = 48;

// a + b and a * b for non-negative int64, false on overflow.
bool add(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }
bool mul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace

class Unpickler {
 public:
  Unpickler(const std::string& bytes, const Rules& rules, const std::string& what, size_t start = 0)
      : in_(bytes), rules_(rules), what_(what), pos_(start) {}

  // Parses up to STOP; with `end`, reports where it stopped, else nothing may follow.
  Pickle run(size_t* end = nullptr);

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(what_ + ": " + why + " (byte " + std::to_string(op_pos_) + ")");
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
  Value& val(size_t index) { return p_.values_[index]; }

  // Every allocation the pickle asks for is counted: a state_dict needs a few hundred bytes a
  // tensor, while a pickle of millions of tiny opcodes (each object ~200 bytes, its opcode 1; each
  // item of a list 8 bytes, its BINGET + APPEND 3) is an attempt to exhaust memory.
  void charge(uint64_t bytes) {
    used_ += bytes;
    if (used_ + (stack_.size() + marks_.size()) * kSlotBytes > budget::kPickleMemoryBytes)
      fail("more than the " + std::to_string(budget::kPickleMemoryBytes >> 20) +
           " MiB a pickle may take (objects, items, memo and stack)");
  }
  void push(size_t v) {
    charge(0);
    stack_.push_back(v);
  }
  size_t make(Value v) {
    charge(sizeof(Value) + v.s.size() + (v.items.size() + v.sizes.size() + v.strides.size()) * kSlotBytes);
    p_.values_.push_back(std::move(v));
    return p_.values_.size() - 1;
  }
  size_t make(Value::Kind kind) {
    Value v;
    v.kind = kind;
    return make(std::move(v));
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
  size_t top() {
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
  size_t make_container(Value::Kind kind, std::vector<size_t> items) {
    Value v;
    v.kind = kind;
    v.items = std::move(items);
    return make(std::move(v));
  }
  void set_items(size_t dict, const std::vector<size_t>& kv) {
    if (val(dict).kind != Value::kDict) fail(std::string("SETITEM on ") + kind_name(val(dict).kind));
    if (kv.size() % 2) fail("SETITEMS with an odd number of objects");
    charge(kv.size() * kSlotBytes);
    for (size_t k : kv) val(dict).items.push_back(k);
  }
  void append(size_t list, const std::vector<size_t>& items) {
    if (val(list).kind != Value::kList) fail(std::string("APPEND to ") + kind_name(val(list).kind));
    charge(items.size() * kSlotBytes);
    for (size_t k : items) val(list).items.push_back(k);
  }
  void memo_put(uint64_t key) {
    if (stack_.empty()) fail("memo of an empty stack");
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      it->second = stack_.back();
      return;
    }
    // A pickler memoizes each object once: more entries than objects is a flood.
    if (memo_.size() >= p_.values_.size()) fail("more memo entries than objects");
    charge(kMemoEntryBytes);
    memo_.emplace(key, stack_.back());
  }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
    push(it->second);
  }
  int64_t as_int(size_t v, const char* what) const {
    if (p_.values_[v].kind != Value::kInt)
      fail(std::string(what) + ": expected an integer, got " + kind_name(p_.values_[v].kind));
    return p_.values_[v].i;
  }
  std::vector<int64_t> as_ints(size_t v, const char* what) const {
    const Value& t = p_.values_[v];
    if (t.kind != Value::kTuple) fail(std::string(what) + ": expected a tuple, got " + kind_name(t.kind));
    if (t.items.size() > kMaxDims) fail(std::string(what) + ": more than " + std::to_string(kMaxDims) + " dimensions");
    std::vector<int64_t> out;
    for (size_t k : t.items) out.push_back(as_int(k, what));
    return out;
  }

  bool step(unsigned char op);          // one opcode; false at STOP
  bool step_objects(unsigned char op);  // step's memo, global and object opcodes
  void push_string(unsigned char op);
  void push_long1();
  void push_float();
  size_t global(const std::string& module, const std::string& name);
  size_t persistent_load(size_t pid);
  size_t reduce(size_t callable, size_t args);
  size_t new_object(size_t cls, size_t args);
  void build(size_t state);
  size_t rebuild_tensor(const std::vector<size_t>& args);
  size_t as_list(size_t list, bool tensors);
  void count_view(int64_t numel, at::ScalarType dtype);
  void check_keys() const;

  const std::string& in_;
  const Rules& rules_;
  const std::string what_;
  size_t pos_ = 0, op_pos_ = 0;
  Pickle p_;
  std::vector<size_t> stack_;
  std::vector<size_t> marks_;  // stack sizes at each MARK
  std::unordered_map<uint64_t, size_t> memo_;
  uint64_t used_ = 0;                             // bytes charged (charge())
  std::map<std::string, size_t> storage_by_key_;  // tensors may share one
  // Bytes declared by storages, and bytes of the views copied out of them: many views of one
  // big storage must not multiply it.
  int64_t storage_bytes_ = 0, view_bytes_ = 0;
};

size_t Unpickler::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  Value v;
  v.kind = Value::kGlobal;
  v.s = full;
  static const std::set<std::string> kFunctions = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                                   "torch._utils._rebuild_parameter"};
  static const std::set<std::string> kTorchScript = {
      "torch.jit._pickle.restore_type_tag", "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_intlist",
      "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist"};
  const bool torchscript = !rules_.torchscript_classes.empty();
  if (kFunctions.count(full) || (torchscript && (kTorchScript.count(full) || rules_.torchscript_classes.count(full))) ||
      (rules_.legacy && full == "torch._utils._rebuild_tensor"))
    return make(std::move(v));
  if (storage_dtype(full, &v.dtype)) {
    if (!rules_.dtypes.count(v.dtype)) {
      std::string read;
      for (at::ScalarType d : rules_.dtypes) read += std::string(read.empty() ? "" : ", ") + c10::toString(d);
      fail("a tensor of dtype " + std::string(c10::toString(v.dtype)) + " (" + full + "); this file may hold " + read);
    }
    return make(std::move(v));
  }
  fail("refers to " + printable(full.substr(0, 200)) +
       ": this file may hold only tensors, dicts, lists, numbers and strings");
}

// torch.save's persistent id of a storage: ("storage", torch.FloatStorage, key, location, numel).
size_t Unpickler::persistent_load(size_t pid) {
  const Value& p = val(pid);
  const size_t n = rules_.legacy ? 6 : 5;  // legacy: ..., view_metadata
  if (p.kind != Value::kTuple || p.items.size() != n || val(p.items[0]).kind != Value::kString ||
      val(p.items[0]).s != "storage")
    fail(rules_.legacy ? "a persistent id that is not a (\"storage\", type, key, location, size, view) tuple"
                       : "a persistent id that is not a (\"storage\", type, key, location, size) tuple");
  if (rules_.legacy && val(p.items[5]).kind != Value::kNone)
    fail("a view of a storage (torch.save of PyTorch < 0.4): re-save the file with a current PyTorch");
  const Value& type = val(p.items[1]);
  if (type.kind != Value::kGlobal || type.s.find("Storage") == std::string::npos)
    fail("a storage whose type is not a storage class");
  if (val(p.items[2]).kind != Value::kString) fail("a storage key that is not a string");
  if (val(p.items[3]).kind != Value::kString) fail("a storage location that is not a string");
  const std::string key = val(p.items[2]).s;
  const int64_t numel = as_int(p.items[4], "storage size");
  const at::ScalarType dtype = type.dtype;
  int64_t bytes = 0;
  if (numel < 0) fail("a storage of negative size");
  if (!mul(numel, static_cast<int64_t>(c10::elementSize(dtype)), &bytes) ||
      !add(storage_bytes_, bytes, &storage_bytes_) || storage_bytes_ > kMaxTensorBytes)
    fail("storages of more than " + std::to_string(kMaxTensorBytes) + " bytes in all");
  auto it = storage_by_key_.find(key);
  if (it != storage_by_key_.end()) {
    const Value& s = val(it->second);
    if (s.dtype != dtype || s.i != numel) fail("storage " + key + " is named twice with different types or sizes");
    storage_bytes_ -= bytes;  // counted once
    return it->second;
  }
  Value s;
  s.kind = Value::kStorage;
  s.s = key;
  s.dtype = dtype;
  s.i = numel;
  const size_t index = make(std::move(s));
  storage_by_key_[key] = index;
  p_.storages_.push_back(index);
  return index;
}

void Unpickler::count_view(int64_t numel, at::ScalarType dtype) {
  int64_t bytes = 0;
  if (!mul(numel, static_cast<int64_t>(c10::elementSize(dtype)), &bytes) || !add(view_bytes_, bytes, &view_bytes_))
    fail("tensor sizes that overflow");
  if (view_bytes_ > kMaxTensorBytes || view_bytes_ > 4 * storage_bytes_ + (int64_t{1} << 22))
    fail("tensors that view their storages many times over");
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]):
// the view must address only elements of the storage: offset + sum((size - 1) * stride) < numel.
size_t Unpickler::rebuild_tensor(const std::vector<size_t>& args) {
  if (args.size() < 6 || args.size() > 7) fail("_rebuild_tensor_v2 with " + std::to_string(args.size()) + " arguments");
  const size_t storage = args[0];
  if (val(storage).kind != Value::kStorage) fail("_rebuild_tensor_v2 of " + std::string(kind_name(val(storage).kind)));
  const int64_t offset = as_int(args[1], "storage offset");
  std::vector<int64_t> size = as_ints(args[2], "tensor size");
  std::vector<int64_t> stride = as_ints(args[3], "tensor stride");
  if (size.size() != stride.size()) fail("tensor size and stride of different lengths");
  if (offset < 0) fail("a negative storage offset");
  int64_t numel = 1, last = offset, reach = 0;
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d] < 0 || stride[d] < 0) fail("a negative tensor size or stride");
    if (!mul(numel, size[d], &numel)) fail("a tensor size that overflows");
    if (size[d] > 0 && (!mul(size[d] - 1, stride[d], &reach) || !add(last, reach, &last)))
      fail("a tensor view whose strides overflow");
  }
  if (numel > 0 && last >= val(storage).i)
    fail("a tensor view past the end of storage " + val(storage).s + " (element " + std::to_string(last) + " of " +
         std::to_string(val(storage).i) + ")");
  count_view(numel, val(storage).dtype);
  Value v;
  v.kind = Value::kTensor;
  v.items = {storage};
  v.i = offset;
  v.sizes = std::move(size);
  v.strides = std::move(stride);
  v.dtype = val(storage).dtype;
  return make(std::move(v));
}

// torch.jit._pickle's build_*list(list) and the lists it tags: the list itself, checked.
size_t Unpickler::as_list(size_t list, bool tensors) {
  if (val(list).kind != Value::kList) fail("a typed list that is not a list");
  if (tensors)
    for (size_t k : val(list).items)
      if (val(k).kind != Value::kTensor) fail("a tensor list holding " + std::string(kind_name(val(k).kind)));
  return list;
}

size_t Unpickler::reduce(size_t callable, size_t args) {
  if (val(callable).kind != Value::kGlobal) fail("REDUCE of " + std::string(kind_name(val(callable).kind)));
  if (val(args).kind != Value::kTuple) fail("REDUCE with arguments that are not a tuple");
  const std::string name = val(callable).s;
  const std::vector<size_t> a = val(args).items;
  if (name == "collections.OrderedDict") {
    if (!a.empty()) fail("OrderedDict built from arguments");
    return make(Value::kDict);
  }
  if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
  if (name == "torch._utils._rebuild_tensor") {  // (storage, storage_offset, size, stride)
    if (a.size() != 4) fail("_rebuild_tensor with " + std::to_string(a.size()) + " arguments");
    std::vector<size_t> v2 = a;
    v2.resize(6, a[0]);  // requires_grad and backward hooks are not read
    return rebuild_tensor(v2);
  }
  if (name == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
    if (a.size() != 3 || val(a[0]).kind != Value::kTensor) fail("_rebuild_parameter without a tensor");
    return a[0];
  }
  if (name == "torch.jit._pickle.restore_type_tag") {  // (value, "List[str]")
    if (a.size() != 2 || val(a[1]).kind != Value::kString) fail("restore_type_tag without a type");
    return a[0];
  }
  if (name.rfind("torch.jit._pickle.build_", 0) == 0) {
    if (a.size() != 1) fail(name + " with " + std::to_string(a.size()) + " arguments");
    return as_list(a[0], name == "torch.jit._pickle.build_tensorlist");
  }
  fail("REDUCE of " + name);  // a storage class or a TorchScript class is not called
}

// NEWOBJ of an allowed TorchScript class with no arguments: an object without attributes yet.
size_t Unpickler::new_object(size_t cls, size_t args) {
  if (val(cls).kind != Value::kGlobal || !rules_.torchscript_classes.count(val(cls).s))
    fail("NEWOBJ of " + std::string(kind_name(val(cls).kind)) + " " + printable(val(cls).s.substr(0, 100)));
  if (val(args).kind != Value::kTuple || !val(args).items.empty()) fail("NEWOBJ with arguments");
  Value v;
  v.kind = Value::kObject;
  v.s = val(cls).s;
  return make(std::move(v));
}

// BUILD: an object's attributes (a dict, set once), or a state_dict's _metadata (dropped).
// Nothing is called: an object is its attribute dict.
void Unpickler::build(size_t state) {
  Value& target = val(top());
  if (target.kind == Value::kObject) {
    if (!target.items.empty()) fail("an object built twice");
    if (val(state).kind != Value::kDict) fail("an object whose state is " + std::string(kind_name(val(state).kind)));
    target.items = {state};
    return;
  }
  if (target.kind != Value::kDict) fail("BUILD of " + std::string(kind_name(target.kind)));
}

Pickle Unpickler::run(size_t* end) {
  while (true) {
    op_pos_ = pos_;
    need(1);
    const auto op = static_cast<unsigned char>(in_[pos_++]);
    if (!step(op)) break;
  }
  if (end) *end = pos_;
  else if (pos_ != in_.size()) fail(std::to_string(in_.size() - pos_) + " bytes after STOP");
  check_keys();
  return std::move(p_);
}

// A dict whose keys repeat means one thing to pickle.load and torch.load (the last value) and
// another to a reader that keeps the first: refused, whichever dict it is. Strings and integers
// (booleans are the integers 0 and 1 to Python) are compared; no pickler writes such a dict.
void Unpickler::check_keys() const {
  for (const Value& d : p_.values_) {
    if (d.kind != Value::kDict || d.items.size() < 4) continue;
    std::vector<const std::string*> names;
    std::vector<int64_t> numbers;
    for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
      const Value& key = p_.values_[d.items[k]];
      if (key.kind == Value::kString) names.push_back(&key.s);
      if (key.kind == Value::kInt || key.kind == Value::kBool) numbers.push_back(key.i);
    }
    std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    std::sort(numbers.begin(), numbers.end());
    const auto name = std::adjacent_find(names.begin(), names.end(),
                                         [](const std::string* a, const std::string* b) { return *a == *b; });
    const auto number = std::adjacent_find(numbers.begin(), numbers.end());
    if (name == names.end() && number == numbers.end()) continue;
    const std::string key =
        name != names.end() ? "'" + excerpt(**name, budget::kQuoteBytes) + "'" : std::to_string(*number);
    throw InputError(what_ + ": key " + key +
                     " appears twice in one dict (torch.load would keep the last value, "
                     "other readers the first: refused)");
  }
}

// BINUNICODE and Python 2's BINSTRING (4-byte length), SHORT_BINUNICODE and SHORT_BINSTRING (1),
// BINUNICODE8 (8).
void Unpickler::push_string(unsigned char op) {
  const uint64_t n = read_le(op == 'X' || op == 'T' ? 4 : op == 0x8c || op == 'U' ? 1 : 8);
  Value v;
  v.kind = Value::kString;
  v.s = read_bytes(n);
  push(make(std::move(v)));
}

void Unpickler::push_long1() {  // LONG1: n bytes, two's complement, little-endian
  const auto n = static_cast<size_t>(read_le(1));
  if (n > 8) fail("an integer wider than 64 bits");
  uint64_t v = n ? read_le(n) : 0;
  if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
  push(make_int(static_cast<int64_t>(v)));
}

void Unpickler::push_float() {  // BINFLOAT: big-endian IEEE double
  need(8);
  uint64_t bits = 0;
  for (int k = 0; k < 8; ++k) bits = bits << 8 | static_cast<unsigned char>(in_[pos_ + k]);
  pos_ += 8;
  Value v;
  v.kind = Value::kFloat;
  std::memcpy(&v.f, &bits, 8);
  push(make(std::move(v)));
}

// One opcode; false after STOP.
bool Unpickler::step(unsigned char op) {
  switch (op) {
    case 0x80: read_le(1); break;  // PROTO
    case 0x95: read_le(8); break;  // FRAME (a length hint)
    case '.': {                    // STOP
      p_.root_ = pop();
      if (!stack_.empty() || !marks_.empty()) fail("objects left on the stack at STOP");
      return false;
    }
    case '(':  // MARK
      charge(0);
      marks_.push_back(stack_.size());
      break;
    case 'N': push(make(Value::kNone)); break;
    case 0x88:
    case 0x89: {  // NEWTRUE, NEWFALSE
      Value v;
      v.kind = Value::kBool;
      v.i = op == 0x88;
      push(make(std::move(v)));
      break;
    }
    case 'J': push(make_int(static_cast<int32_t>(read_le(4)))); break;  // BININT
    case 'K': push(make_int(static_cast<int64_t>(read_le(1)))); break;  // BININT1
    case 'M': push(make_int(static_cast<int64_t>(read_le(2)))); break;  // BININT2
    case 0x8a: push_long1(); break;
    case 'G': push_float(); break;
    case 'X':
    case 0x8c:
    case 0x8d:
    case 'T':
    case 'U': push_string(op); break;
    case '}': push(make(Value::kDict)); break;
    case ']': push(make(Value::kList)); break;
    case ')': push(make_container(Value::kTuple, {})); break;
    case 't': push(make_container(Value::kTuple, pop_mark())); break;
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      std::vector<size_t> items(op - 0x84);
      for (size_t k = items.size(); k-- > 0;) items[k] = pop();
      push(make_container(Value::kTuple, std::move(items)));
      break;
    }
    case 'd': {  // DICT: a dict of the objects since MARK
      std::vector<size_t> kv = pop_mark();
      const size_t d = make(Value::kDict);
      set_items(d, kv);
      push(d);
      break;
    }
    case 'l': push(make_container(Value::kList, pop_mark())); break;  // LIST
    case 's': {                                                       // SETITEM
      const size_t value = pop(), key = pop();
      set_items(top(), {key, value});
      break;
    }
    case 'u': {  // SETITEMS
      std::vector<size_t> kv = pop_mark();
      set_items(top(), kv);
      break;
    }
    case 'a': {  // APPEND
      const size_t v = pop();
      append(top(), {v});
      break;
    }
    case 'e': {  // APPENDS
      std::vector<size_t> items = pop_mark();
      append(top(), items);
      break;
    }
    default: return step_objects(op);
  }
  return true;
}

// The memo, globals and objects (reduce, persistent ids, NEWOBJ, BUILD).
bool Unpickler::step_objects(unsigned char op) {
  switch (op) {
    case 'q': memo_put(read_le(1)); break;     // BINPUT
    case 'r': memo_put(read_le(4)); break;     // LONG_BINPUT
    case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
    case 'h': memo_get(read_le(1)); break;     // BINGET
    case 'j': memo_get(read_le(4)); break;     // LONG_BINGET
    case 'c': {                                // GLOBAL "module\nname\n"
      const std::string module = read_line();
      const std::string name = read_line();
      push(global(module, name));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      const size_t name = pop(), module = pop();
      if (val(name).kind != Value::kString || val(module).kind != Value::kString) fail("STACK_GLOBAL of non-strings");
      push(global(val(module).s, val(name).s));
      break;
    }
    case 'Q': {  // BINPERSID
      const size_t pid = pop();
      push(persistent_load(pid));
      break;
    }
    case 'R': {
      const size_t args = pop(), callable = pop();
      push(reduce(callable, args));
      break;
    }
    case 0x81: {  // NEWOBJ
      if (rules_.torchscript_classes.empty()) fail("pickle opcode 0x81 (NEWOBJ) is not allowed in this file");
      const size_t args = pop(), cls = pop();
      push(new_object(cls, args));
      break;
    }
    case 'b': build(pop()); break;  // BUILD
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", op);
      fail(std::string("pickle opcode ") + hex + " is not allowed in this file");
    }
  }
  return true;
}

Pickle unpickle(const std::string& bytes, const Rules& rules, const std::string& what) {
  return Unpickler(bytes, rules, what).run();
}

Pickle unpickle_at(const std::string& bytes, size_t* pos, const Rules& rules, const std::string& what) {
  return Unpickler(bytes, rules, what, *pos).run(pos);
}

namespace {

int64_t numel_of(const Value& v) {
  int64_t n = 1;
  for (int64_t d : v.sizes) n *= d;  // checked for overflow when the view was read
  return n;
}

int64_t bytes_of(const Value& v) { return numel_of(v) * static_cast<int64_t>(c10::elementSize(v.dtype)); }

}  // namespace

at::Tensor meta_tensor(const Value& v) {
  if (v.kind != Value::kTensor) throw std::logic_error("meta_tensor of a value that is not a tensor");
  return at::empty(v.sizes, at::TensorOptions().dtype(v.dtype).device(at::kMeta));
}

std::vector<size_t> tensor_values(const Pickle& p) {
  std::vector<size_t> out;
  for (size_t i = 0; i < p.size(); ++i)
    if (p.at(i).kind == Value::kTensor) out.push_back(i);
  return out;
}

void load_tensors(Pickle& p, const std::vector<size_t>& tensors, const StorageLoader& load) {
  // Sized before anything is read: the storages these tensors view, and the bytes read of each.
  std::map<size_t, int64_t> needed;  // storage -> bytes of the views read from it
  for (size_t index : tensors) {
    const Value& v = p.values_.at(index);
    if (v.kind != Value::kTensor) throw std::logic_error("load_tensors of a value that is not a tensor");
    needed[v.items[0]] += bytes_of(v);
  }
  int64_t excess = 0;
  for (const auto& [index, read] : needed) {
    const Value& s = p.values_[index];
    const int64_t bytes = s.i * static_cast<int64_t>(c10::elementSize(s.dtype));  // checked when parsed
    excess += std::max<int64_t>(0, bytes - budget::kStorageOverread * read);
    if (excess > budget::kStorageSlack)
      throw InputError("storage " + excerpt(s.s, 40) + " holds " + std::to_string(bytes) + " bytes for the " +
                       std::to_string(read) +
                       " bytes of tensors read from it (a storage many times bigger than "
                       "its tensors is refused; save them with .clone())");
  }
  std::map<size_t, at::Tensor> data;
  for (const auto& [index, read] : needed) {
    const Value& s = p.values_[index];
    at::Tensor t = load(s);
    if (!t.defined() || t.dim() != 1 || t.numel() != s.i || t.scalar_type() != s.dtype || !t.is_contiguous() ||
        t.storage_offset() != 0)
      throw InputError("storage " + excerpt(s.s, 40) + " was not read as " + std::to_string(s.i) + " " +
                       c10::toString(s.dtype) + " values");
    data[index] = t;
  }
  for (size_t index : tensors) {
    Value& v = p.values_[index];
    const bool empty = std::find(v.sizes.begin(), v.sizes.end(), 0) != v.sizes.end();
    const at::Tensor& storage = data.at(v.items[0]);
    v.tensor = empty ? at::empty(v.sizes, storage.options())
                     : storage.as_strided(v.sizes, v.strides, v.i).clone(at::MemoryFormat::Contiguous);
  }
}

void load_tensors(Pickle& p, const StorageLoader& load) { load_tensors(p, tensor_values(p), load); }

namespace {

// The record of `storage` and its size, checked: it exists and holds exactly the declared values.
std::string storage_record(const Value& storage, const ZipReader& zip) {
  const std::string name = "data/" + storage.s;
  if (!zip.has(name))
    throw InputError("the pickle names storage " + excerpt(storage.s, 40) + " but the file has no record " +
                     excerpt(name, 46));
  const uint64_t bytes = static_cast<uint64_t>(storage.i) * c10::elementSize(storage.dtype);  // checked when parsed
  if (zip.size(name) != bytes)
    throw InputError("record " + excerpt(name, 46) + " holds " + std::to_string(zip.size(name)) + " bytes, not " +
                     std::to_string(storage.i) + " " + c10::toString(storage.dtype) + " values");
  return name;
}

}  // namespace

void check_zip_storages(const Pickle& p, const ZipReader& zip) {
  for (size_t index : p.storages()) storage_record(p.at(index), zip);
}

void load_zip_tensors(Pickle& p, ZipReader& zip, const std::vector<size_t>& tensors) {
  load_tensors(p, tensors, [&](const Value& storage) {
    const std::string name = storage_record(storage, zip);
    const uint64_t bytes = static_cast<uint64_t>(storage.i) * c10::elementSize(storage.dtype);
    at::Tensor t = at::empty({storage.i}, at::TensorOptions().dtype(storage.dtype));
    zip.read_into(name, t.data_ptr(), bytes);
    return t;
  });
}

void load_zip_tensors(Pickle& p, ZipReader& zip) { load_zip_tensors(p, zip, tensor_values(p)); }

}  // namespace resnet::pickle
