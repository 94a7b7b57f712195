#include "interop/state_dict.h"

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

std::string torchvision_mismatch(const ModelConfig& m) {
  if (m.family != "imagenet") return "torchvision has no " + m.family + "-family ResNets (use python/cifar_resnet.py)";
  if (!m.residual) return "torchvision has no plain networks";
  if (m.preact) return "torchvision has no pre-activation ResNets";
  if (m.shortcut != "B") return "torchvision's ResNets use shortcut B, this one " + m.shortcut;
  return "";
}

std::map<std::string, std::string> torchvision_names(const ResNetImpl& model) {
  const std::string why = torchvision_mismatch(model.config());
  if (!why.empty()) throw InputError("--names torchvision: " + why);
  // Block i of the whole net -> "layer<stage>.<index within the stage>".
  std::map<std::string, std::string> block_name;
  int previous_stage = 0, within = 0;
  for (size_t i = 0; i < model.blocks().size(); ++i) {
    const int stage = model.stage_of(i);
    within = stage == previous_stage ? within + 1 : 0;
    previous_stage = stage;
    block_name["block" + std::to_string(i)] = "layer" + std::to_string(stage) + "." + std::to_string(within);
  }
  static const std::map<std::string, std::string> kLayer = {
      {"stem_conv", "conv1"}, {"stem_bn", "bn1"}, {"shortcut_conv", "downsample.0"}, {"shortcut_bn", "downsample.1"}};
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : model_state(model)) {
    // Replace each dotted component that has a torchvision name; the rest (conv1, bn2,
    // weight, running_mean, fc) are the same in both.
    std::string mapped, part;
    size_t start = 0;
    while (start <= name.size()) {
      const size_t dot = name.find('.', start);
      part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (auto b = block_name.find(part); b != block_name.end()) part = b->second;
      else if (auto l = kLayer.find(part); l != kLayer.end()) part = l->second;
      mapped += (mapped.empty() ? "" : ".") + part;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    out[name] = mapped;
  }
  return out;
}

NamedTensors named_state(const ResNetImpl& model, Names names) {
  NamedTensors state = model_state(model);
  if (names == Names::kNative) return state;
  const auto map = torchvision_names(model);
  for (auto& [name, t] : state) name = map.at(name);
  return state;
}

}  // namespace resnet
