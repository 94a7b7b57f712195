#include "interop/state_dict.h"

#include "interop/naming.h"
#include "models/family.h"
#include "util/errors.h"

namespace resnet {

Names names_from_flag(const std::string& flag) {
  if (flag == "native") return Names::kNative;
  if (flag == "torchvision") return Names::kTorchvision;
  throw InputError("--names: '" + flag + "' is not one of native|torchvision");
}

const char* names_name(Names names) { return names == Names::kNative ? "native" : "torchvision"; }

NamedTensors model_state(const ResNetImpl& model) {
  NamedTensors out;
  for (const auto& item : model.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

std::string torchvision_mismatch(const ModelConfig& m) { return family_of(m).torchvision_mismatch(m); }

std::map<std::string, std::string> torchvision_names(const ResNetImpl& model) {
  const std::string why = torchvision_mismatch(model.config());
  if (!why.empty()) throw InputError("--names torchvision: " + why);
  return scheme_names(model, naming_scheme("torchvision"));
}

NamedTensors named_state(const ResNetImpl& model, Names names) {
  NamedTensors state = model_state(model);
  if (names == Names::kNative) return state;
  const auto map = torchvision_names(model);
  for (auto& [name, t] : state) name = map.at(name);
  return state;
}

}  // namespace resnet
