#include "interop/weights.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#include <map>
#include <set>

#include "util/errors.h"
#include "util/json_io.h"
#include "util/sha256.h"

namespace resnet {
namespace {

nlohmann::json floats(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

bool under(const std::string& name, const std::string& prefix) {
  return name == prefix || name.rfind(prefix + ".", 0) == 0;
}

bool skipped_by(const std::vector<std::string>& skip, const std::string& a, const std::string& b) {
  for (const auto& p : skip)
    if (under(a, p) || under(b, p)) return true;
  return false;
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

std::string list_text(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  std::string s;
  for (size_t i = 0; i < items.size() && i < kShown; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > kShown) s += ", ... and " + std::to_string(items.size() - kShown) + " more";
  return s;
}

bool is_bn_counter(const std::string& name) {
  const std::string tail = "num_batches_tracked";
  return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

nlohmann::json weights_metadata(const ModelConfig& model, const Normalizer& normalizer,
                                const std::string& normalize_mode, int64_t step,
                                const nlohmann::json& test_error, const std::string& source, Names names) {
  ExperimentConfig c;
  c.model = model;
  nlohmann::json model_json = to_json(c)["model"];
  // Where the weights started from says nothing about what they are now.
  for (const char* key : {"init_from", "init_skip", "init_sha256"}) model_json.erase(key);
  return {{"format", "resnet-train-weights"},
          {"version", kWeightsMetadataVersion},
          {"names", names_name(names)},
          {"model", model_json},
          {"normalizer",
           {{"mode", normalize_mode},
            {"mean", floats(normalizer.mean)},
            {"mean_shape", normalizer.mean.sizes().vec()},
            {"std", floats(normalizer.std)},
            {"std_shape", normalizer.std.sizes().vec()}}},
          {"step", step},
          {"test_error", test_error},
          {"source", source}};
}

bool normalizer_from_metadata(const nlohmann::json& metadata, const std::string& path, Normalizer* out) {
  if (!metadata.is_object() || !metadata.contains("normalizer")) return false;
  const nlohmann::json& n = metadata["normalizer"];
  auto tensor = [&](const char* values, const char* shape) {
    try {
      const auto v = n.at(values).get<std::vector<float>>();
      const auto s = n.at(shape).get<std::vector<int64_t>>();
      int64_t numel = 1;
      for (int64_t d : s) {
        if (d < 1 || d > 3 * 32 * 32) throw InputError("bad shape");
        numel *= d;
      }
      if (s.size() != 4 || numel != static_cast<int64_t>(v.size()) || (numel != 1 && numel != 3 && numel != 3 * 32 * 32))
        throw InputError("bad shape");
      return at::tensor(v).view(s);
    } catch (const std::exception&) {
      throw InputError(path + ": metadata normalizer." + values + " is not a list of floats of shape " +
                       (n.contains(shape) ? n[shape].dump() : "(none)"));
    }
  };
  out->mean = tensor("mean", "mean_shape");
  out->std = tensor("std", "std_shape");
  return true;
}

void export_weights(const ResNetImpl& model, const std::string& path, WeightsFormat format, Names names,
                    const nlohmann::json& metadata) {
  write_weights(path, format, named_state(model, names), metadata);
}

WeightsLoad load_weights_into(ResNetImpl& model, const std::string& path, const std::vector<std::string>& skip,
                              const std::string& expect_sha256) {
  WeightsLoad load;
  load.path = std::filesystem::absolute(path).lexically_normal().string();
  const std::string bytes = read_text_file(path);
  load.sha256 = sha256_hex(bytes);
  if (!expect_sha256.empty() && expect_sha256 != load.sha256)
    throw InputError(path + ": SHA-256 " + load.sha256 + " is not the " + expect_sha256 +
                     " that model.init_sha256 asks for (the file changed?)");
  WeightsFile file = parse_weights(bytes, path);
  load.metadata = file.metadata;

  // A state_dict saved from nn.DataParallel prefixes every name with "module.".
  bool prefixed = true;
  for (const auto& [name, t] : file.tensors) prefixed = prefixed && name.rfind("module.", 0) == 0;
  if (prefixed)
    for (auto& [name, t] : file.tensors) name = name.substr(7);

  const NamedTensors state = model_state(model);
  std::map<std::string, std::string> to_file;  // native -> the name the file would use
  for (const auto& [name, t] : state) to_file[name] = name;
  std::set<std::string> file_names;
  for (const auto& [name, t] : file.tensors) file_names.insert(name);
  if (torchvision_mismatch(model.config()).empty()) {
    const auto tv = torchvision_names(model);
    size_t native_hits = 0, tv_hits = 0;
    for (const auto& [native, torchvision] : tv) {
      native_hits += file_names.count(native);
      tv_hits += file_names.count(torchvision);
    }
    if (tv_hits > native_hits) {
      load.names = Names::kTorchvision;
      to_file = tv;
    }
  }
  std::map<std::string, std::string> to_native;
  for (const auto& [native, name] : to_file) to_native[name] = native;

  std::map<std::string, at::Tensor> by_name(file.tensors.begin(), file.tensors.end());
  std::vector<std::string> missing, unexpected, misshaped;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (model tensor, file tensor)
  for (const auto& [native, dst] : state) {
    const std::string& name = to_file.at(native);
    if (skipped_by(skip, native, name)) {
      load.skipped.push_back(native);
      continue;
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (!is_bn_counter(native)) missing.push_back(name);
      continue;
    }
    const at::Tensor& src = it->second;
    const bool src_float = src.is_floating_point(), dst_float = dst.is_floating_point();
    if (src.sizes() != dst.sizes() || src_float != dst_float) {
      std::string what = name + " " + shape_text(src.sizes());
      if (src_float != dst_float) what += std::string(" ") + c10::toString(src.scalar_type());
      what += " in the file, " + shape_text(dst.sizes());
      if (src_float != dst_float) what += std::string(" ") + c10::toString(dst.scalar_type());
      misshaped.push_back(what + " in the model");
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& [name, t] : file.tensors) {
    if (to_native.count(name)) continue;
    if (skipped_by(skip, name, name)) continue;
    unexpected.push_back(quoted_name(name));
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::string msg = path + ": does not fit " + model_name(model.config()) + " (" + names_name(load.names) + " names):";
    std::string sep = " ";
    if (!missing.empty()) msg += sep + std::to_string(missing.size()) + " missing (" + list_text(missing) + ")", sep = "; ";
    if (!unexpected.empty())
      msg += sep + std::to_string(unexpected.size()) + " unexpected (" + list_text(unexpected) + ")", sep = "; ";
    if (!misshaped.empty())
      msg += sep + std::to_string(misshaped.size()) + " mis-shaped (" + list_text(misshaped) + ")";
    msg += "; model.init_skip can leave layers out";
    throw InputError(msg);
  }
  c10::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  load.loaded = static_cast<int64_t>(copies.size());
  return load;
}

void init_from_file(ResNetImpl& model, ModelConfig& config) {
  if (config.init_from.empty()) return;
  try {
    const WeightsLoad load = load_weights_into(model, config.init_from, config.init_skip, config.init_sha256);
    config.init_from = load.path;
    config.init_sha256 = load.sha256;
  } catch (const InputError& e) {
    throw InputError(std::string("model.init_from: ") + e.what());
  }
}

}  // namespace resnet
