// .safetensors weight files (see weights_file.h): the format's reader and writer live in
// serialize/safetensors.h; here they meet our metadata ("resnet_train" in __metadata__).
#include <ATen/ATen.h>

#include <cstring>

#include "interop/weights_file.h"
#include "serialize/safetensors.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {

std::string encode_safetensors(const NamedTensors& tensors, const nlohmann::json& metadata) {
  std::map<std::string, std::string> meta = {{"format", "pt"}};  // what safetensors' torch helpers write
  if (!metadata.empty()) meta["resnet_train"] = metadata.dump();
  NamedTensors data;
  for (const auto& [name, t] : tensors) {
    check_weight_dtype(t, name);
    data.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  }
  std::string out = safetensors::header_bytes(data, meta);
  for (const auto& [name, c] : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

namespace {

// The file's tensors, read when asked for: their bytes are in the file, each range checked.
class SafetensorsTensors final : public TensorSource {
 public:
  SafetensorsTensors(SharedBytes bytes, safetensors::Header header)
      : bytes_(std::move(bytes)), header_(std::move(header)) {}
  std::vector<at::Tensor> load(const std::vector<size_t>& ids) override {
    std::vector<at::Tensor> out;
    const char* data = bytes_->data() + header_.data_start;
    for (size_t id : ids) {
      const auto& e = header_.entries.at(id);
      at::Tensor t = at::empty(e.sizes, at::TensorOptions().dtype(e.dtype));
      if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
      out.push_back(t);
    }
    return out;
  }

 private:
  SharedBytes bytes_;
  safetensors::Header header_;
};

}  // namespace

WeightsFile decode_safetensors(const SharedBytes& bytes) {
  WeightsFile file;
  file.format = WeightsFormat::kSafetensors;
  safetensors::Header header = safetensors::parse_header(*bytes, bytes->size());
  const auto it = header.metadata.find("resnet_train");
  if (it != header.metadata.end()) {
    file.metadata = parse_json(it->second, "__metadata__.resnet_train");
    if (!file.metadata.is_object()) throw InputError("__metadata__.resnet_train is not a JSON object");
  }
  for (size_t i = 0; i < header.entries.size(); ++i) {  // file order
    const auto& e = header.entries[i];
    file.tensors.emplace_back(e.name, at::empty(e.sizes, at::TensorOptions().dtype(e.dtype).device(at::kMeta)));
    file.ids.push_back(i);
  }
  file.source = std::make_shared<SafetensorsTensors>(bytes, std::move(header));
  return file;
}

}  // namespace resnet
