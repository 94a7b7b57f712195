// torch.save's legacy format (PyTorch < 1.6, or _use_new_zipfile_serialization=False): no zip,
// one stream of protocol-2 pickles followed by the storages' bytes:
//   1. the magic number 0x1950a86a20f9469cfc6c      4. the object (a state_dict), whose tensors
//   2. the protocol version 1001                       name storages by persistent ids
//   3. sys info {protocol_version, little_endian,        ("storage", type, key, location, numel, None)
//      type_sizes}                                   5. the storage keys, a list, in file order
//   6. per key: its element count (int64, little-endian) and its raw bytes.
// Read by the restricted unpickler (serialize/unpickler.h, Rules::legacy), never by Python's or
// LibTorch's; storages saved on a GPU ("cuda:0") are read onto the CPU. The keys must be exactly
// the storages the object names, each count must be the one it was named with, and the bytes must
// end with the last storage.
#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <set>

#include "interop/pt_common.h"
#include "serialize/unpickler.h"
#include "util/errors.h"

namespace resnet {
namespace {

using pickle::Value;

// The magic number as torch.save pickles it: PROTO 2, LONG1 of 10 bytes, STOP.
const std::string kMagic("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);

void check_header(const std::string& bytes, size_t* pos) {
  *pos = kMagic.size();
  const pickle::Pickle version = pickle::unpickle_at(bytes, pos, pickle::Rules{}, "protocol version");
  if (version.root().kind != Value::kInt || version.root().i != 1001)
    throw InputError("legacy torch.save protocol version is not 1001");
  const pickle::Pickle info = pickle::unpickle_at(bytes, pos, pickle::Rules{}, "sys info");
  const Value* little = info.root().kind == Value::kDict ? info.find(info.root(), "little_endian") : nullptr;
  if (!little || little->kind != Value::kBool) throw InputError("legacy torch.save sys info without little_endian");
  if (!little->i) throw InputError("big-endian tensor data is not supported");
}

// The storage keys (step 5): exactly the storages the object named, each once.
std::vector<std::string> storage_keys(const pickle::Pickle& keys, const pickle::Pickle& object) {
  std::set<std::string> named;
  for (size_t index : object.storages()) named.insert(object.at(index).s);
  if (keys.root().kind != Value::kList) throw InputError("the storage keys are not a list");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t item : keys.root().items) {
    const Value& k = keys.at(item);
    if (k.kind != Value::kString) throw InputError("a storage key that is not a string");
    if (!named.count(k.s)) throw InputError("storage key " + excerpt(k.s, 40) + " names no storage of the object");
    if (!seen.insert(k.s).second) throw InputError("storage key " + excerpt(k.s, 40) + " appears twice");
    out.push_back(k.s);
  }
  if (out.size() != named.size())
    throw InputError("the storage keys list " + std::to_string(out.size()) + " of the object's " +
                     std::to_string(named.size()) + " storages");
  return out;
}

// Step 6: each storage's count and bytes, in key order, to the end of the file: where each
// storage's bytes start (nothing is copied yet).
std::map<std::string, size_t> storage_offsets(const std::string& bytes, size_t pos,
                                              const std::vector<std::string>& keys, const pickle::Pickle& object) {
  std::map<std::string, const Value*> by_key;
  for (size_t index : object.storages()) by_key[object.at(index).s] = &object.at(index);
  std::map<std::string, size_t> out;
  for (const std::string& key : keys) {
    const Value& s = *by_key.at(key);
    const std::string shown = excerpt(key, 40);
    if (bytes.size() - pos < 8) throw InputError("truncated storages (storage " + shown + " has no element count)");
    int64_t count = 0;
    std::memcpy(&count, bytes.data() + pos, 8);  // little-endian, as checked in sys info (x86, arm64)
    pos += 8;
    if (count != s.i)
      throw InputError("storage " + shown + " holds " + std::to_string(count) + " elements, the object says " +
                       std::to_string(s.i));
    const uint64_t n = static_cast<uint64_t>(s.i) * c10::elementSize(s.dtype);  // checked when parsed
    if (bytes.size() - pos < n)
      throw InputError("truncated storages (storage " + shown + " needs " + std::to_string(n) + " bytes, " +
                       std::to_string(bytes.size() - pos) + " are left)");
    out[key] = pos;
    pos += n;
  }
  if (pos != bytes.size()) throw InputError(std::to_string(bytes.size() - pos) + " bytes after the last storage");
  return out;
}

// The legacy file's tensors, read when asked for: each storage's bytes are in the file already.
class LegacyTensors final : public TensorSource {
 public:
  LegacyTensors(SharedBytes bytes, pickle::Pickle object, std::map<std::string, size_t> offsets)
      : bytes_(std::move(bytes)), object_(std::move(object)), offsets_(std::move(offsets)) {}
  std::vector<at::Tensor> load(const std::vector<size_t>& ids) override {
    pickle::load_tensors(object_, ids, [&](const Value& storage) {
      at::Tensor t = at::empty({storage.i}, at::TensorOptions().dtype(storage.dtype));
      const size_t n = static_cast<size_t>(storage.i) * c10::elementSize(storage.dtype);
      if (n) std::memcpy(t.data_ptr(), bytes_->data() + offsets_.at(storage.s), n);
      return t;
    });
    std::vector<at::Tensor> out;
    for (size_t id : ids) out.push_back(std::move(object_.tensor_at(id)));
    return out;
  }

 private:
  SharedBytes bytes_;
  pickle::Pickle object_;
  std::map<std::string, size_t> offsets_;
};

}  // namespace

bool is_legacy_pt(const std::string& bytes) { return bytes.compare(0, kMagic.size(), kMagic) == 0; }

WeightsFile decode_legacy_pt(const SharedBytes& shared) {
  const std::string& bytes = *shared;
  if (!is_legacy_pt(bytes)) throw InputError("not a torch.save file (no magic number)");
  size_t pos = 0;
  check_header(bytes, &pos);
  pickle::Rules rules;
  rules.legacy = true;
  pickle::Pickle object = pickle::unpickle_at(bytes, &pos, rules, "the pickled object");
  const pickle::Pickle keys = pickle::unpickle_at(bytes, &pos, pickle::Rules{}, "the storage keys");
  std::map<std::string, size_t> offsets = storage_offsets(bytes, pos, storage_keys(keys, object), object);
  const auto entries = state_dict_of(object, "the pickled object");
  WeightsFile file = pickled_weights(object, entries, nullptr);
  file.source = std::make_shared<LegacyTensors>(shared, std::move(object), std::move(offsets));
  return file;
}

}  // namespace resnet
