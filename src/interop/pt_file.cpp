// torch.save's zip format holding a plain state_dict (see weights_file.h).
//
// Writing: torch::pickle_save would tag every dict with torch.jit._pickle.restore_type_tag, a
// global that torch.load(weights_only=True) refuses. A Pickler with type tags off writes the
// dict as Python's own pickler does; its tensors go out as torch.save's persistent ids
// ("storage", torch.FloatStorage, key, "cpu", numel) whose bytes are the records data/<key>.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>  // PyTorchStreamWriter: writing only
#include <torch/csrc/jit/serialization/pickler.h>

#include <cstring>
#include <limits>

#include "serialize/unpickler.h"
#include "serialize/zip_reader.h"
#include "interop/pt_common.h"
#include "interop/weights_file.h"
#include "util/budgets.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

constexpr const char* kMetadataRecord = "extra/resnet_train.json";

}  // namespace

std::string encode_pt(const NamedTensors& tensors, const nlohmann::json& metadata) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) {
    check_weight_dtype(t, name);
    // A fresh contiguous CPU copy: its storage is exactly the tensor (a parameter may be a view
    // into a bigger buffer, or channels_last), so data/<key> holds nothing else.
    dict.insert(name, t.detach().to(at::kCPU).clone(at::MemoryFormat::Contiguous));
  }
  std::string pkl;
  torch::jit::Pickler pickler([&](const char* data, size_t size) { pkl.append(data, size); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr,
                              /*memoized_class_types=*/nullptr, /*get_tensor_id=*/nullptr,
                              /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();

  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  const auto& storages = pickler.tensorData();
  for (size_t i = 0; i < storages.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(storages[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  if (!metadata.empty()) {
    const std::string text = metadata.dump(2) + "\n";
    writer.writeRecord(kMetadataRecord, text.data(), text.size());
  }
  writer.writeEndOfFile();
  return out;
}

// The tensors of a state_dict: the top-level dict's tensor values, in order. Entries that are
// not tensors (numbers, strings, an "epoch") are left out; a dict of tensors under a usual
// wrapping key ({"epoch": 3, "state_dict": {...}}) is read through. (A key twice in one dict was
// refused by the unpickler: torch.load would take the last one.)
std::vector<std::pair<std::string, size_t>> state_dict_of(const pickle::Pickle& p, const std::string& what) {
  using pickle::Value;
  auto has_tensors = [&](const Value& dict) {
    for (size_t k = 1; k < dict.items.size(); k += 2)
      if (p.at(dict.items[k]).kind == Value::kTensor) return true;
    return false;
  };
  const Value* dict = &p.root();
  if (dict->kind != Value::kDict)
    throw InputError(what + ": holds " + pickle::kind_name(dict->kind) + ", not a state_dict (a dict of tensors)");
  // A state_dict's values are all tensors: a dict under a wrapping key is the wrapped one, even
  // next to tensors of its own ({"state_dict": {...}, "best_acc1": tensor(76.1)}, as
  // pytorch/examples' ImageNet script saves).
  for (const char* name : {"state_dict", "model_state_dict", "model", "net"}) {
    const Value* inner = p.find(*dict, name);
    if (inner && inner->kind == Value::kDict && has_tensors(*inner)) {
      dict = inner;
      break;
    }
  }
  if (!has_tensors(*dict)) throw InputError(what + ": a dict without tensors, not a state_dict");
  std::vector<std::pair<std::string, size_t>> out;
  for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
    const Value& key = p.at(dict->items[k]);
    if (p.at(dict->items[k + 1]).kind != Value::kTensor) continue;
    if (key.kind != Value::kString) throw InputError(what + ": a tensor under a key that is not a string");
    out.emplace_back(key.s, dict->items[k + 1]);
  }
  return out;
}

WeightsFile pickled_weights(const pickle::Pickle& p, const std::vector<std::pair<std::string, size_t>>& entries,
                            std::shared_ptr<TensorSource> source) {
  WeightsFile file;
  file.format = WeightsFormat::kPt;
  for (const auto& [name, index] : entries) {
    file.tensors.emplace_back(name, pickle::meta_tensor(p.at(index)));
    file.ids.push_back(index);
  }
  file.source = std::move(source);
  return file;
}

namespace {

nlohmann::json read_metadata(ZipReader& zip) {
  if (!zip.has(kMetadataRecord)) return nlohmann::json::object();
  const nlohmann::json m = parse_json(zip.read(kMetadataRecord, budget::kJsonFileBytes), kMetadataRecord);
  if (!m.is_object()) throw InputError(std::string(kMetadataRecord) + ": expected a JSON object");
  return m;
}

}  // namespace

WeightsFile decode_pt(const SharedBytes& bytes) {
  auto zip = std::make_unique<ZipReader>(*bytes);
  if (!zip->has("data.pkl"))
    throw InputError(
        "no data.pkl: not a torch.save file (a TorchScript archive? load it with torch.jit.load "
        "and save its state_dict())");
  if (zip->has("byteorder") && zip->read("byteorder", budget::kZipSmallRecordBytes) != "little")
    throw InputError("big-endian tensor data is not supported");
  pickle::Pickle p = pickle::unpickle(zip->read("data.pkl", budget::kPickleBytes), pickle::Rules{});
  pickle::check_zip_storages(p, *zip);
  const auto entries = state_dict_of(p, "data.pkl");
  nlohmann::json metadata = read_metadata(*zip);
  WeightsFile file = pickled_weights(p, entries, nullptr);
  file.source = std::make_shared<pickle::ZipTensors>(bytes, std::move(zip), std::move(p));
  file.metadata = std::move(metadata);
  return file;
}

}  // namespace resnet
