#include "interop/state_dict.h"

#include <fmt/format.h>

#include <map>

#include "interop/naming.h"
#include "models/family.h"
#include "models/layout.h"
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

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Every tensor of the declared state (built only once the totals agree: then the file is as large).
void check_each_tensor(const ModelConfig& m, const std::map<std::string, at::Tensor>& by_name,
                       const std::string& path) {
  for (const TensorShape& t : state_shapes(network_layout(m))) {
    const auto it = by_name.find(t.name);
    if (it == by_name.end()) throw InputError(path + ": model: " + model_name(m) + " has " + t.name + ", the file not");
    if (it->second.sizes().vec() != t.shape)
      throw InputError(path + ": model: " + t.name + " is " + shape_text(it->second.sizes().vec()) + " in the file, " +
                       shape_text(t.shape) + " in " + model_name(m));
  }
}

}  // namespace

void check_file_fits(const ModelConfig& m, const NamedTensors& file, const std::string& path, bool native) {
  int64_t values = 0;
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : file) {
    if (t.is_floating_point()) values += t.numel();
    by_name.emplace(name, t);
  }
  const NetworkSize size = network_size(m);
  if (native) {  // the classifier's shape follows from model.num_classes and the last stage alone
    const NetworkSpec spec = network_spec(m);
    const std::vector<int64_t> fc = {m.num_classes, spec.stage_planes.back() * block_expansion(spec.block)};
    const auto it = by_name.find("fc.weight");
    if (it != by_name.end() && it->second.sizes().vec() != fc)
      throw InputError(path + ": model.num_classes: " + model_name(m) + " has fc.weight " + shape_text(fc) +
                       ", the file " + shape_text(it->second.sizes().vec()));
  }
  if (native ? values != size.state_values : values < size.state_values)
    throw InputError(
        fmt::format("{}: model: {} has {} values, the file's tensors {} (the config does not describe "
                    "the file's network)",
                    path, model_name(m), size.state_values, values));
  if (native) check_each_tensor(m, by_name, path);
}

}  // namespace resnet
