#include "interop/weights.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "util/budgets.h"
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
                                const std::string& normalize_mode, int64_t step, const nlohmann::json& test_error,
                                const std::string& source, Names names) {
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
      if (s.size() != 4 || numel != static_cast<int64_t>(v.size()) ||
          (numel != 1 && numel != 3 && numel != 3 * 32 * 32))
        throw InputError("bad shape");
      return at::tensor(v).view(s);
    } catch (const std::exception&) {
      throw InputError(path + ": metadata normalizer." + values + " is not a list of floats of shape " +
                       (n.contains(shape) ? json_excerpt(n[shape]) : "(none)"));
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

namespace {

// A state_dict saved from nn.DataParallel prefixes every name with "module.".
void strip_module_prefix(NamedTensors& tensors) {
  for (const auto& [name, t] : tensors)
    if (name.rfind("module.", 0) != 0) return;
  for (auto& [name, t] : tensors) name = name.substr(7);
}

// How a file's entries meet a model's under one naming.
struct Fit {
  std::vector<std::string> missing, unexpected, misshaped, skipped;
  std::vector<std::pair<at::Tensor, size_t>> copies;  // (model tensor, index of the file's tensor)
  bool ok() const { return missing.empty() && unexpected.empty() && misshaped.empty(); }
};

std::string misshaped_text(const std::string& name, const at::Tensor& src, const at::Tensor& dst) {
  const bool differ = src.is_floating_point() != dst.is_floating_point();
  std::string what = name + " " + shape_text(src.sizes());
  if (differ) what += std::string(" ") + c10::toString(src.scalar_type());
  what += " in the file, " + shape_text(dst.sizes());
  if (differ) what += std::string(" ") + c10::toString(dst.scalar_type());
  return what + " in the model";
}

// `to_file`: native name -> the file's name for each model entry.
Fit match(const NamedTensors& state, const std::map<std::string, std::string>& to_file, const NamedTensors& file,
          const std::vector<std::string>& skip) {
  Fit fit;
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < file.size(); ++i) by_name.emplace(file[i].first, i);
  std::set<std::string> wanted;
  for (const auto& [native, dst] : state) {
    const std::string& name = to_file.at(native);
    wanted.insert(name);
    if (skipped_by(skip, native, name)) {
      fit.skipped.push_back(native);
      continue;
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (!is_bn_counter(native)) fit.missing.push_back(name);
    } else if (const at::Tensor& src = file[it->second].second;
               src.sizes() != dst.sizes() || src.is_floating_point() != dst.is_floating_point()) {
      fit.misshaped.push_back(misshaped_text(excerpt(name, 80), src, dst));
    } else {
      fit.copies.emplace_back(dst, it->second);
    }
  }
  for (const auto& [name, t] : file)
    if (!wanted.count(name) && !skipped_by(skip, name, name)) fit.unexpected.push_back(quoted_name(name));
  return fit;
}

std::string misfit_message(const std::string& path, const ResNetImpl& model, const WeightsLoad& load, const Fit& fit) {
  std::string msg = path + ": does not fit " + model_name(model.config()) + " (" + load.scheme + " names):";
  std::string sep = " ";
  auto list = [&](const std::vector<std::string>& items, const char* what) {
    if (items.empty()) return;
    msg += sep + std::to_string(items.size()) + " " + what + " (" + list_text(items) + ")";
    sep = "; ";
  };
  list(fit.missing, "missing");
  list(fit.unexpected, "unexpected");
  list(fit.misshaped, "mis-shaped");
  if (load.origin) {
    const std::string hint = origin_hint(*load.origin, suggested_sets(*load.origin, model.config(), nullptr));
    if (!hint.empty()) msg += "; " + hint;
  }
  return msg + "; model.init_skip can leave layers out";
}

}  // namespace

WeightsLoad load_weights_into(ResNetImpl& model, const std::string& path, const std::vector<std::string>& skip,
                              const std::string& expect_sha256) {
  WeightsLoad load;
  load.path = std::filesystem::absolute(path).lexically_normal().string();
  std::string bytes = read_text_file(path, budget::kWeightsFileBytes);
  load.sha256 = sha256_hex(bytes);
  if (!expect_sha256.empty() && expect_sha256 != load.sha256)
    throw InputError(path + ": SHA-256 " + load.sha256 + " is not the " + excerpt(expect_sha256, 64) +
                     " that model.init_sha256 asks for (the file changed?)");
  // Names and shapes first (meta tensors); only the tensors the model takes are then read.
  WeightsFile file = open_weights(std::move(bytes), path);
  load.metadata = file.metadata;
  strip_module_prefix(file.tensors);

  std::vector<std::string> file_names;
  for (const auto& [name, t] : file.tensors) file_names.push_back(name);
  const NamingScheme& scheme = detect_scheme(model, file_names);
  load.scheme = scheme.name;
  load.origin = guess_origin(file.tensors, scheme);
  Fit fit = match(model_state(model), scheme_names(model, scheme), file.tensors, skip);
  if (!fit.ok()) throw InputError(misfit_message(path, model, load, fit));
  std::vector<size_t> used;
  for (const auto& [dst, index] : fit.copies) used.push_back(index);
  file.load(used);
  c10::NoGradGuard no_grad;
  for (auto& [dst, index] : fit.copies) dst.copy_(file.tensors[index].second);
  load.loaded = static_cast<int64_t>(fit.copies.size());
  load.skipped = std::move(fit.skipped);
  return load;
}

std::string weights_note(const WeightsLoad& load, const ExperimentConfig& config, bool normaliser_known) {
  if (!load.origin) return "";
  return origin_hint(*load.origin, suggested_sets(*load.origin, config.model, &config.data, !normaliser_known));
}

void init_from_file(ResNetImpl& model, ModelConfig& config) {
  if (config.init_from.empty()) return;
  try {
    const WeightsLoad load = load_weights_into(model, config.init_from, config.init_skip, config.init_sha256);
    config.init_from = load.path;
    config.init_sha256 = load.sha256;
    ExperimentConfig c;
    c.model = config;
    const std::string note = weights_note(load, c, /*normaliser_known=*/true);  // the run's normaliser is its own
    // Printed where the run starts (the trainer's log does not exist yet).
    if (!note.empty()) std::cerr << "note: model.init_from: " << load.path << ": " << note << std::endl;
  } catch (const InputError& e) {
    throw InputError(std::string("model.init_from: ") + e.what());
  }
}

}  // namespace resnet
