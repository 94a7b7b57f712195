// .safetensors weight files (see weights_file.h): the format's reader and writer live in
// serialize/safetensors.h; here they meet our metadata ("resnet_train" in __metadata__).
#include <ATen/ATen.h>

#include <cstring>

#include "interop/weights_file.h"
#include "serialize/safetensors.h"
#include "util/errors.h"

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

WeightsFile decode_safetensors(const std::string& bytes) {
  WeightsFile file;
  file.format = WeightsFormat::kSafetensors;
  const safetensors::Header header = safetensors::parse_header(bytes, bytes.size());
  const auto it = header.metadata.find("resnet_train");
  if (it != header.metadata.end()) {
    try {
      file.metadata = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw InputError("__metadata__.resnet_train is not valid JSON (" + first_line(e.what()) + ")");
    }
    if (!file.metadata.is_object()) throw InputError("__metadata__.resnet_train is not a JSON object");
  }
  const char* data = bytes.data() + header.data_start;
  for (const auto& e : header.entries) {  // file order
    at::Tensor t = at::empty(e.sizes, at::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, t);
  }
  return file;
}

}  // namespace resnet
