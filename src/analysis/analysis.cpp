#include "analysis/analysis.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include <filesystem>

#include "analysis/helpers.h"
#include "interop/state_dict.h"
#include "interop/weights.h"
#include "interop/weights_file.h"
#include "train/checkpoint.h"
#include "util/errors.h"
#include "util/sha256.h"

namespace resnet {

Subject subject_from_checkpoint(const std::string& path, const c10::Device& device) {
  CheckpointReader reader(path);
  Subject s;
  s.config = reader.config();
  check_file_fits(s.config.model, reader.model_tensors(), path, /*native=*/true);  // sized before built
  s.model = make_model(s.config.model);
  s.model->to(device);
  reader.load_model(*s.model);
  s.normalizer = reader.contents().normalizer;
  s.label = fmt::format("{} @{}", model_name(s.config.model), reader.contents().state.step);
  return s;
}

Subject subject_from_weights(const std::string& path, const ExperimentConfig& config, const ImageSet& train,
                             const c10::Device& device) {
  Subject s;
  s.config = config;
  check_file_fits(config.model, open_weights(path).tensors, path, /*native=*/false);  // sized before built
  s.model = make_model(config.model);
  const WeightsLoad load = load_weights_into(*s.model, path);
  s.model->to(device);
  const bool explicit_one = !config.data.mean.empty();
  const bool from_file = !explicit_one && normalizer_from_metadata(load.metadata, path, &s.normalizer);
  if (!from_file) {
    if (!explicit_one && train.size() == 0)
      throw InputError(path + ": no normaliser in the file, and no training images to fit one on");
    s.normalizer = make_normalizer(train.images, config.data);  // data.mean/data.std, else fitted
  }
  s.note = weights_note(load, config, explicit_one || from_file);
  s.label = model_name(config.model) + " (" + std::filesystem::path(path).filename().string() + ")";
  return s;
}

Subject subject_from_config(const ExperimentConfig& config, const Normalizer& normalizer, const c10::Device& device) {
  Subject s;
  s.config = config;
  at::manual_seed(static_cast<uint64_t>(config.runtime.seed));
  s.model = make_model(config.model);
  s.model->to(device);
  s.normalizer = normalizer;
  s.label = model_name(config.model) + " @init";
  return s;
}

void forward_all(Subject& s, const ImageSet& images, int64_t batch_size, ForwardRecorder& rec) {
  c10::NoGradGuard no_grad;
  const bool was_training = s.model->is_training();
  s.model->eval();
  const auto device = s.model->parameters().front().device();
  const Normalizer norm = s.normalizer.to(device);
  for (int64_t start = 0; start < images.size(); start += batch_size) {
    const int64_t n = std::min(batch_size, images.size() - start);
    s.model->forward(norm(images.images.narrow(0, start, n).to(device)), &rec);
  }
  if (was_training) s.model->train();
}

ImageSet first_images(const ImageSet& set, int64_t n) {
  n = n > 0 ? std::min(n, set.size()) : set.size();
  return ImageSet{set.images.narrow(0, 0, n), set.labels.narrow(0, 0, n)};
}

ImageSet named_images(const Cifar10& data, const std::string& split, int64_t count, nlohmann::json& desc) {
  const ImageSet& set = split == "train" ? data.train : data.test;
  if (set.size() == 0) throw InputError("--split " + split + ": no images loaded");
  count = std::min(count, set.size());
  ImageSet out{set.images.narrow(0, 0, count).contiguous(), set.labels.narrow(0, 0, count).contiguous()};
  std::string bytes(static_cast<const char*>(out.images.data_ptr()), static_cast<size_t>(out.images.numel()));
  bytes.append(static_cast<const char*>(out.labels.data_ptr()), static_cast<size_t>(out.labels.numel() * 8));
  desc = {{"split", split}, {"first", count}, {"sha256", sha256_hex(bytes)}};
  return out;
}

nlohmann::json subject_header(const Subject& s) {
  return {{"label", s.label},
          {"depth", s.config.model.depth},
          {"residual", s.config.model.residual},
          {"family", s.config.model.family}};
}

std::vector<double> column(const nlohmann::json& rows, const char* key) {
  std::vector<double> v;
  for (const auto& r : rows) v.push_back(r.at(key).get<double>());
  return v;
}

std::vector<double> iota(size_t n, double start) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i);
  return v;
}

void add_split_flags(CLI::App& app, SplitFlags& f, int64_t images, const std::string& seeds) {
  f.images = images;
  app.add_option("--split", f.split, "images from this split (default train)")->check(CLI::IsMember({"train", "test"}));
  app.add_option("--images", f.images, "the first N images of the split (default " + std::to_string(images) + ")")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", f.seed, seeds + " (default 0)");
}

std::string file_in(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace resnet
