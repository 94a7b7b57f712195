// torch.save's zip format holding a plain state_dict (see weights_file.h).
//
// Writing: torch::pickle_save would tag every dict with torch.jit._pickle.restore_type_tag, a
// global that torch.load(weights_only=True) refuses. A Pickler with type tags off writes the
// dict as Python's own pickler does; its tensors go out as torch.save's persistent ids
// ("storage", torch.FloatStorage, key, "cpu", numel) whose bytes are the records data/<key>.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <cstring>
#include <limits>

#include "interop/pickle_reader.h"
#include "interop/weights_file.h"
#include "util/errors.h"

namespace resnet {
namespace {

constexpr const char* kMetadataRecord = "extra/resnet_train.json";

class BytesAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BytesAdapter(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

}  // namespace

std::string encode_pt(const NamedTensors& tensors, const nlohmann::json& metadata) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) {
    check_weight_dtype(t, name);
    // A fresh contiguous CPU copy: its storage is exactly the tensor (a parameter may be a view
    // into a bigger buffer, or channels_last), so data/<key> holds nothing else.
    dict.insert(name, t.detach().to(at::kCPU).clone(at::MemoryFormat::Contiguous));
  }
  std::string pickle;
  torch::jit::Pickler pickler([&](const char* data, size_t size) { pickle.append(data, size); },
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
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
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

WeightsFile decode_pt(const std::string& bytes) {
  WeightsFile file;
  file.format = WeightsFormat::kPt;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<BytesAdapter>(bytes));
  } catch (const c10::Error& e) {
    throw InputError("not a readable PyTorch zip file (" + first_line(e.what_without_backtrace()) + ")");
  }
  auto record = [&](const std::string& name) {
    try {
      auto [data, size] = reader->getRecord(name);
      return std::string(static_cast<const char*>(data.get()), size);
    } catch (const c10::Error& e) {
      throw InputError("record " + name + " is damaged (" + first_line(e.what_without_backtrace()) + ")");
    }
  };
  auto has = [&](const std::string& name) {
    try {
      return reader->hasRecord(name);
    } catch (const c10::Error& e) {
      throw InputError("damaged zip directory (" + first_line(e.what_without_backtrace()) + ")");
    }
  };
  if (!has("data.pkl"))
    throw InputError("no data.pkl: not a torch.save file (a TorchScript archive? load it with torch.jit.load "
                     "and save its state_dict())");
  if (has("byteorder") && record("byteorder") != "little")
    throw InputError("big-endian tensor data is not supported");

  const StorageLoader load = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
    const std::string name = "data/" + key;
    if (!has(name)) throw InputError("data.pkl names storage " + key + " but the file has no record " + name);
    const std::string data = record(name);
    const auto item = static_cast<int64_t>(c10::elementSize(dtype));
    if (numel > std::numeric_limits<int64_t>::max() / item || static_cast<uint64_t>(numel * item) != data.size())
      throw InputError("record " + name + " holds " + std::to_string(data.size()) + " bytes, not " +
                       std::to_string(numel) + " " + c10::toString(dtype) + " values");
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (!data.empty()) std::memcpy(t.data_ptr(), data.data(), data.size());
    return t;
  };
  file.tensors = unpickle_state_dict(record("data.pkl"), load);
  if (has(kMetadataRecord)) {
    try {
      file.metadata = nlohmann::json::parse(record(kMetadataRecord));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(std::string(kMetadataRecord) + ": invalid JSON (" + first_line(e.what()) + ")");
    }
    if (!file.metadata.is_object()) throw InputError(std::string(kMetadataRecord) + ": expected a JSON object");
  }
  return file;
}

}  // namespace resnet
