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
#include "util/errors.h"

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
// wrapping key ({"epoch": 3, "state_dict": {...}}) is read through.
NamedTensors state_dict_of(const pickle::Pickle& p, const std::string& what) {
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
  NamedTensors out;
  for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
    const Value& key = p.at(dict->items[k]);
    const Value& value = p.at(dict->items[k + 1]);
    if (value.kind != Value::kTensor) continue;
    if (key.kind != Value::kString) throw InputError(what + ": a tensor under a key that is not a string");
    out.emplace_back(key.s, value.tensor);
  }
  return out;
}

WeightsFile decode_pt(const std::string& bytes) {
  WeightsFile file;
  file.format = WeightsFormat::kPt;
  ZipReader zip(bytes);
  if (!zip.has("data.pkl"))
    throw InputError("no data.pkl: not a torch.save file (a TorchScript archive? load it with torch.jit.load "
                     "and save its state_dict())");
  if (zip.has("byteorder") && zip.read("byteorder") != "little")
    throw InputError("big-endian tensor data is not supported");
  pickle::Pickle p = pickle::unpickle(zip.read("data.pkl"), pickle::Rules{});
  pickle::load_zip_tensors(p, zip);
  file.tensors = state_dict_of(p, "data.pkl");
  if (zip.has(kMetadataRecord)) {
    try {
      file.metadata = nlohmann::json::parse(zip.read(kMetadataRecord));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(std::string(kMetadataRecord) + ": invalid JSON (" + first_line(e.what()) + ")");
    }
    if (!file.metadata.is_object()) throw InputError(std::string(kMetadataRecord) + ": expected a JSON object");
  }
  return file;
}

}  // namespace resnet
