#pragma once
// The project's one pickle reader: a restricted unpickler in the spirit of
// torch.load(weights_only=True). It runs no code, imports nothing and calls nothing a file names:
// it builds plain values (None, booleans, integers, floats, strings, tuples, lists, dicts) and
// knows a fixed list of globals, each mapped to what it stands for:
//   collections.OrderedDict                 -> a dict (what model.state_dict() is)
//   torch._utils._rebuild_tensor_v2, _rebuild_parameter -> a tensor: a view of a storage
//                                              (and, in legacy streams, _rebuild_tensor)
//   torch.{Float,BFloat16,Half,Long}Storage -> a storage's dtype (Rules::dtypes; the persistent id
//                                              ("storage", type, key, location, numel) names one)
// With Rules::torchscript (the old TorchScript-archive checkpoints) also:
//   __torch__.<class> for the classes listed -> an object: its attributes as a plain dict (BUILD);
//                                              no __setstate__ or any other method is ever called
//   torch.jit._pickle.restore_type_tag, build_{tensor,int,double,bool}list -> the value itself
// Any other global (os.system, a class, another dtype's storage), opcode or structure is refused
// with an InputError naming the byte and the reason.
//
// Budgets (util/budgets.h), counted as the pickle is read, so that a small file cannot make the
// reader allocate without end: every object made, every item a container holds, every stack slot
// and memo entry is charged against budget::kPickleMemoryBytes; the memo holds at most one entry
// per object made (what any pickler writes; a flood of MEMOIZE opcodes is refused at once).
// A dict whose keys repeat (a string or an integer twice) is refused: pickle.load and torch.load
// keep the last value, other readers the first, so such a file means two things (docs/safety.md).
//
// Nothing is read from storages while unpickling. Each tensor is a view (offset, sizes,
// strides) checked against its storage's declared size with overflow-checked arithmetic; the
// caller matches names and shapes (meta_tensor()) and then load_tensors() reads the storages
// the tensors it asks for need, each once, through the caller's loader, and copies those views out.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "serialize/tensor_source.h"
#include "serialize/zip_reader.h"

namespace resnet {}

namespace resnet::pickle {

struct Value {
  enum Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kTensor, kGlobal, kStorage, kObject };
  Kind kind = kNone;
  int64_t i = 0;  // bool, int; storage: numel; tensor: storage offset
  double f = 0;
  std::string s;                        // string; global "module.name"; storage: key; object: class
  std::vector<size_t> items;            // tuple, list; dict: key, value, ...; object: {attribute dict} once built;
                                        // tensor: {storage}
  std::vector<int64_t> sizes, strides;  // tensor
  at::ScalarType dtype = at::kFloat;    // global (a storage class), storage, tensor
  at::Tensor tensor;                    // tensor, after load_tensors(): a contiguous copy of the view
};

const char* kind_name(Value::Kind kind);

struct Rules {
  // Classes a TorchScript pickle may build ("__torch__.Module"); empty = no objects at all.
  std::set<std::string> torchscript_classes;
  // Storage dtypes read; any other storage class is refused by name.
  std::set<at::ScalarType> dtypes = {at::kFloat, at::kBFloat16, at::kHalf, at::kLong};
  // torch.save's legacy (pre-1.6, non-zip) stream: storage ids are 6-tuples
  // ("storage", type, key, location, numel, view_metadata = None) and tensors may also be rebuilt
  // by torch._utils._rebuild_tensor(storage, offset, size, stride).
  bool legacy = false;
};

// Reads a storage: `load(storage)` must return its `numel` elements of `dtype` as a 1-D CPU
// tensor (the loader checks the bytes against that, and throws InputError otherwise).
using StorageLoader = std::function<at::Tensor(const Value& storage)>;

class Pickle {
 public:
  const Value& root() const { return values_[root_]; }
  const Value& at(size_t index) const { return values_[index]; }
  size_t size() const { return values_.size(); }
  // The tensor a kTensor value was copied into by load_tensors() (undefined before).
  at::Tensor& tensor_at(size_t index) { return values_.at(index).tensor; }
  // The entry of `dict` (a kDict) under a string key; nullptr if there is none.
  const Value* find(const Value& dict, const std::string& key) const;
  // The storages the pickle names, in the order it names them.
  const std::vector<size_t>& storages() const { return storages_; }

 private:
  friend class Unpickler;
  friend void load_tensors(Pickle&, const std::vector<size_t>&, const StorageLoader&);
  std::vector<Value> values_;
  size_t root_ = 0;
  std::vector<size_t> storages_;
};

// Parses `bytes` (one pickle, nothing after STOP). InputError("<what>: <why> (byte N)").
Pickle unpickle(const std::string& bytes, const Rules& rules, const std::string& what = "data.pkl");
// Parses the pickle that starts at `*pos` (a stream of pickles, as torch.save's legacy format
// is) and moves `*pos` past its STOP.
Pickle unpickle_at(const std::string& bytes, size_t* pos, const Rules& rules, const std::string& what);

// A meta tensor (no data) with the dtype and shape of the tensor value `v`: what a caller
// matches names and shapes with before anything is read.
at::Tensor meta_tensor(const Value& v);

// Copies out the tensor values at `tensors` (indices into the pickle's values, each a kTensor):
// each storage they view is read once, through `load`, and only those storages; and only if
// they are not many times bigger than what is read of them (budget::kStorageOverread, checked
// for all of them before any is read). The views were checked against the declared sizes.
void load_tensors(Pickle& pickle, const std::vector<size_t>& tensors, const StorageLoader& load);
// Every tensor of the pickle.
void load_tensors(Pickle& pickle, const StorageLoader& load);
// The indices of the pickle's tensor values, in the order they were made.
std::vector<size_t> tensor_values(const Pickle& pickle);

// load_tensors() for a PyTorch zip archive (torch.save, TorchScript): storage <key> is the
// record data/<key>, whose size must be exactly numel x item size.
void load_zip_tensors(Pickle& pickle, ZipReader& zip, const std::vector<size_t>& tensors);
// Checks, reading none of them, that the archive has a record data/<key> of exactly the declared
// bytes for each storage the pickle names (load_zip_tensors checks it again as it reads).
void check_zip_storages(const Pickle& pickle, const ZipReader& zip);
void load_zip_tensors(Pickle& pickle, ZipReader& zip);

// A zip archive's tensors, read when asked for: only the storages the asked tensors view
// (weights files in .pt's zip format, version-1 checkpoints).
class ZipTensors final : public TensorSource {
 public:
  ZipTensors(std::shared_ptr<const std::string> bytes, std::unique_ptr<ZipReader> zip, Pickle pickle)
      : bytes_(std::move(bytes)), zip_(std::move(zip)), pickle_(std::move(pickle)) {}
  std::vector<at::Tensor> load(const std::vector<size_t>& ids) override {
    load_zip_tensors(pickle_, *zip_, ids);
    std::vector<at::Tensor> out;
    for (size_t id : ids) out.push_back(std::move(pickle_.tensor_at(id)));
    return out;
  }
  const Pickle& pickle() const { return pickle_; }

 private:
  std::shared_ptr<const std::string> bytes_;  // the zip reads from them
  std::unique_ptr<ZipReader> zip_;
  Pickle pickle_;
};

}  // namespace resnet::pickle
