#include "train/checkpoint_v1.h"

#include <ATen/ATen.h>

#include <map>
#include <set>

#include "serialize/unpickler.h"
#include "serialize/zip_reader.h"
#include "util/budgets.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

using pickle::Value;

// The attributes the old writer could make, with the kind of value and the TorchScript type it
// declared for each.
struct Attribute {
  Value::Kind kind;
  Value::Kind item;  // for lists
  const char* type;
  bool required;
};
const std::map<std::string, Attribute>& v1_attributes() {
  static const std::map<std::string, Attribute> a = {
      {"format", {Value::kString, Value::kNone, "str", true}},
      {"version", {Value::kInt, Value::kNone, "int", true}},
      {"config", {Value::kString, Value::kNone, "str", true}},
      {"state", {Value::kString, Value::kNone, "str", true}},
      {"data_fingerprint", {Value::kString, Value::kNone, "str", false}},
      {"changes", {Value::kString, Value::kNone, "str", false}},
      {"model_names", {Value::kList, Value::kString, "List[str]", true}},
      {"model_tensors", {Value::kList, Value::kTensor, "List[Tensor]", true}},
      {"momentum", {Value::kList, Value::kTensor, "List[Tensor]", true}},
      {"norm_mean", {Value::kTensor, Value::kNone, "Tensor", true}},
      {"norm_std", {Value::kTensor, Value::kNone, "Tensor", true}},
      {"rng_cpu", {Value::kTensor, Value::kNone, "Tensor", false}},
  };
  return a;
}

// Only the records the old writer made: data.pkl, constants.pkl, version, the class source and
// its debug table, and one data/<k> per storage; LibTorch 2.x's writer (builds against a pip
// torch wrote version 1 with it) adds byteorder ("little") and .data/serialization_id.
void check_records(ZipReader& zip, const pickle::Pickle& p) {
  std::set<std::string> storages;
  for (size_t index : p.storages()) storages.insert("data/" + p.at(index).s);
  static const std::set<std::string> kFixed = {
      "data.pkl",  "constants.pkl",         "version", "code/__torch__.py", "code/__torch__.py.debug_pkl",
      "byteorder", ".data/serialization_id"};
  for (const std::string& name : zip.names())
    if (!kFixed.count(name) && !storages.count(name))
      throw InputError("record '" + excerpt(name, 80) + "' is not one resnet-train's writer makes");
  for (const char* name : {"constants.pkl", "version", "code/__torch__.py"})
    if (!zip.has(name)) throw InputError(std::string("not a resnet-train checkpoint (no record ") + name + ")");
  if (zip.has("byteorder") && (zip.size("byteorder") > 16 || zip.read("byteorder") != "little"))
    throw InputError("record 'byteorder' is not 'little': only little-endian checkpoints are read");
}

// The module's attributes, checked against v1_attributes(): (name, TorchScript type) in order.
std::vector<std::pair<std::string, std::string>> check_attributes(const pickle::Pickle& p, const Value& dict) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  for (size_t k = 0; k + 1 < dict.items.size(); k += 2) {
    const Value& key = p.at(dict.items[k]);
    const Value& value = p.at(dict.items[k + 1]);
    if (key.kind != Value::kString) throw InputError("an attribute name that is not a string");
    const auto it = v1_attributes().find(key.s);
    if (it == v1_attributes().end())
      throw InputError("attribute '" + excerpt(key.s, 80) + "' is not one resnet-train's writer makes");
    if (!seen.insert(key.s).second) throw InputError("attribute '" + key.s + "' appears twice");
    bool ok = value.kind == it->second.kind;
    for (size_t item : value.items) ok = ok && (value.kind != Value::kList || p.at(item).kind == it->second.item);
    if (!ok)
      throw InputError("attribute '" + key.s + "' is " + pickle::kind_name(value.kind) + ", not " + it->second.type);
    out.emplace_back(key.s, it->second.type);
  }
  for (const auto& [name, a] : v1_attributes())
    if (a.required && !seen.count(name)) throw InputError("not a resnet-train checkpoint (no '" + name + "')");
  return out;
}

nlohmann::json metadata_json(const std::string& text, const std::string& what) {
  return parse_json(text, "corrupt checkpoint metadata (" + what + ")");
}

// A normaliser tensor: read at once when it is small enough to fit an image (3 x 32 x 32 values),
// else left as a meta tensor, which the checkpoint's checks refuse by its shape.
at::Tensor small_tensor(pickle::ZipTensors& source, size_t index) {
  const at::Tensor meta = pickle::meta_tensor(source.pickle().at(index));
  return meta.numel() <= 3 * 32 * 32 ? source.load({index}).at(0) : meta;
}

// The index of the value under attribute `name` (check_attributes found it).
size_t attribute(const pickle::Pickle& p, const Value& dict, const std::string& name) {
  for (size_t k = 0; k + 1 < dict.items.size(); k += 2)
    if (p.at(dict.items[k]).s == name) return dict.items[k + 1];
  throw InputError("not a resnet-train checkpoint (no '" + name + "')");
}

// The archive's contents as version 2 describes them.
StoredCheckpoint to_stored(const pickle::Pickle& p, const Value& dict) {
  auto get = [&](const char* name) { return p.find(dict, name); };
  StoredCheckpoint out;
  out.version = 1;
  out.metadata = {{"format", get("format")->s},
                  {"version", get("version")->i},
                  {"config", metadata_json(get("config")->s, "config")},
                  {"state", metadata_json(get("state")->s, "state")}};
  if (const Value* v = get("data_fingerprint")) out.metadata["data_fingerprint"] = v->s;
  if (const Value* v = get("changes")) out.metadata["changes"] = metadata_json(v->s, "changes");
  const Value& names = *get("model_names");
  const Value& tensors = *get("model_tensors");
  if (names.items.size() != tensors.items.size())
    throw InputError("model_names and model_tensors have different lengths");
  for (size_t i = 0; i < names.items.size(); ++i) {
    out.model.emplace_back(p.at(names.items[i]).s, pickle::meta_tensor(p.at(tensors.items[i])));
    out.model_ids.push_back(tensors.items[i]);
  }
  for (size_t item : get("momentum")->items) {
    out.momentum.emplace_back("", pickle::meta_tensor(p.at(item)));
    out.momentum_ids.push_back(item);
  }
  return out;
}

StoredCheckpoint read_archive(std::string archive) {
  auto bytes = std::make_shared<const std::string>(std::move(archive));
  auto zip = std::make_unique<ZipReader>(*bytes);
  if (!zip->has("data.pkl")) throw InputError("not a resnet-train checkpoint (no data.pkl)");
  pickle::Rules rules;
  rules.torchscript_classes = {"__torch__.Module"};
  rules.dtypes.insert(at::kByte);  // rng_cpu, the CPU generator's state, stored before 2026-11-28
  pickle::Pickle p = pickle::unpickle(zip->read("data.pkl", budget::kPickleBytes), rules);
  check_records(*zip, p);
  pickle::check_zip_storages(p, *zip);
  if (zip->read("constants.pkl", budget::kZipSmallRecordBytes) != std::string("\x80\x02).", 4))
    throw InputError("constants.pkl is not the empty tuple resnet-train's writer makes");
  const Value& root = p.root();
  if (root.kind != Value::kObject || root.items.size() != 1)
    throw InputError(std::string("data.pkl holds ") + pickle::kind_name(root.kind) + ", not a built module");
  const Value& dict = p.at(root.items[0]);
  const auto attributes = check_attributes(p, dict);
  // Compared, never compiled: any other code means the file is not what our writer made.
  if (zip->size("code/__torch__.py") > budget::kZipSmallRecordBytes ||
      zip->read("code/__torch__.py", budget::kZipSmallRecordBytes) != v1_class_source(attributes))
    throw InputError(
        "code/__torch__.py is not the class source resnet-train's writer makes: the archive carries "
        "code of its own (refused; nothing in it was run)");
  StoredCheckpoint out = to_stored(p, dict);
  const size_t mean = attribute(p, dict, "norm_mean"), std = attribute(p, dict, "norm_std");
  auto source = std::make_shared<pickle::ZipTensors>(bytes, std::move(zip), std::move(p));
  // `p` has moved into the source: the normaliser's values are looked up there.
  out.source = source;
  out.mean = small_tensor(*source, mean);
  out.std = small_tensor(*source, std);
  return out;
}

}  // namespace

std::string v1_class_source(const std::vector<std::pair<std::string, std::string>>& attributes) {
  std::string parameters;
  for (const auto& [name, type] : attributes)
    if (type == "Tensor") parameters += "\"" + name + "\", ";
  std::string out = "class Module(Module):\n  __parameters__ = [" + parameters + "]\n  __buffers__ = []\n";
  for (const auto& [name, type] : attributes) out += "  " + name + " : " + type + "\n";
  return out;
}

StoredCheckpoint read_checkpoint_v1(std::string bytes, const std::string& path) {
  try {
    return read_archive(std::move(bytes));
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
}

}  // namespace resnet
