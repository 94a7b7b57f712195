// resnet-analyze: why residual learning works, measured on checkpoints or fresh models.
//   resnet-analyze {responses|gradients|residuals|activations|lesion|landscape|hessian|paths}
//                  (--checkpoint FILE|RUN_DIR)... [--config FILE [--set k=v]...]... [--init]
//                  [--data-dir DIR] --out DIR
//   resnet-analyze ... (--weights FILE.pt|FILE.safetensors)... --config FILE [--set k=v]...
//                  (foreign weights: the config names their model, one for all or one per file)
// Writes <analysis>.json and <analysis>*.png (gnuplot) into DIR.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "analysis/analysis.h"
#include "analysis/plots.h"
#include "cli/analyze_geometry.h"
#include "cli/common.h"
#include "parallel/job.h"
#include "parallel/launch_env.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace {

using namespace resnet;

// Feature maps [C, H, W] tiled into one grey image, each map scaled to 0..1 on its own, with a
// one-pixel white gap between maps.
plots::ImagePanel tile(const at::Tensor& maps, const std::string& title) {
  const int64_t c = maps.size(0), h = maps.size(1), w = maps.size(2);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(c))));
  const int64_t rows = (c + cols - 1) / cols;
  plots::ImagePanel p;
  p.title = title;
  p.rows = rows * (h + 1) - 1;
  p.cols = cols * (w + 1) - 1;
  p.values.assign(static_cast<size_t>(p.rows * p.cols), 1.0f);
  at::Tensor flat = maps.reshape({c, -1});
  at::Tensor lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  at::Tensor scaled = ((flat - lo) / (hi - lo).clamp_min(1e-8)).reshape({c, h, w}).contiguous();
  auto a = scaled.accessor<float, 3>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        p.values[static_cast<size_t>(((k / cols) * (h + 1) + y) * p.cols + (k % cols) * (w + 1) + x)] = a[k][y][x];
  return p;
}

nlohmann::json activations(std::vector<Subject>& subjects, const Cifar10& data, const std::vector<int64_t>& show,
                           const std::string& out_dir, std::vector<std::string>& pngs) {
  nlohmann::json out = {{"analysis", "activations"}, {"subjects", nlohmann::json::array()}};
  const ImageSet& test = data.test;
  for (size_t si = 0; si < subjects.size(); ++si) {
    Subject& s = subjects[si];
    nlohmann::json j = {{"label", s.label}, {"images", nlohmann::json::array()}, {"stages", nlohmann::json::array()}};
    for (int64_t index : show) {
      if (index < 0 || index >= test.size())
        throw InputError(fmt::format("--show: image {} is outside the {} test images", index, test.size()));
      std::vector<at::Tensor> maps = feature_maps(s, test, index);
      c10::NoGradGuard no_grad;
      s.model->eval();
      const auto device = s.model->parameters().front().device();
      const int64_t predicted =
          s.model->forward(s.normalizer.to(device)(test.images.narrow(0, index, 1).to(device))).argmax(1).item<int64_t>();
      const int64_t truth = test.labels[index].item<int64_t>();
      auto name = [&](int64_t c) { return c < static_cast<int64_t>(data.class_names.size()) ? data.class_names[c] : std::to_string(c); };

      std::vector<plots::ImagePanel> panels;
      plots::ImagePanel input;
      input.title = "input: " + name(truth);
      input.rows = input.cols = 32;
      input.rgb = true;
      at::Tensor rgb = test.images[index].to(at::kFloat).div(255).contiguous();
      input.values.assign(rgb.data_ptr<float>(), rgb.data_ptr<float>() + rgb.numel());
      panels.push_back(input);
      for (size_t st = 0; st < maps.size(); ++st)
        panels.push_back(tile(maps[st], st == 0 ? fmt::format("stem ({} maps)", maps[st].size(0))
                                                : fmt::format("stage {} ({} maps, {}x{})", st, maps[st].size(0),
                                                              maps[st].size(1), maps[st].size(2))));
      const std::string file = fmt::format("activations_{}_{}.png", si, index);
      pngs.push_back((std::filesystem::path(out_dir) / file).string());
      plots::image_grid(pngs.back(), fmt::format("{}: test image {} ({}), predicted {}", s.label, index, name(truth), name(predicted)),
                        panels, static_cast<int>(panels.size()), 320);
      j["images"].push_back({{"index", index}, {"true_class", name(truth)}, {"predicted_class", name(predicted)}, {"file", file}});
      if (j["stages"].empty())
        for (size_t st = 0; st < maps.size(); ++st)
          j["stages"].push_back({{"stage", st}, {"channels", maps[st].size(0)}, {"height", maps[st].size(1)}, {"width", maps[st].size(2)}});
    }
    out["subjects"].push_back(j);
  }
  return out;
}

// What to analyse, as given on the command line.
struct Inputs {
  std::vector<std::string> checkpoints, weights, config_paths, sets;
  bool with_init = false;
  std::string data_dir;
};

// The subjects in command-line order (checkpoints, weights files, fresh models) and the data.
// Fresh models see images normalised like a trained one: the first subject's normaliser if
// there is one, else their config's (data.mean/data.std, or fitted on the training images).
// `want_train`: the analysis reads training images itself.
std::vector<Subject> gather_subjects(const Inputs& in, const c10::Device& device, Cifar10& data, bool want_train) {
  std::vector<ExperimentConfig> configs;
  for (const auto& p : in.config_paths) configs.push_back(resnet::cli::resolve_config(p, in.sets));
  if (!in.weights.empty() && configs.size() != 1 && configs.size() != in.weights.size())
    throw InputError("--weights: give one --config for all weights files, or one per file (" +
                     std::to_string(in.weights.size()) + " files, " + std::to_string(configs.size()) + " configs)");
  std::vector<Subject> subjects;
  DataConfig data_cfg;
  for (const auto& c : in.checkpoints) {
    subjects.push_back(subject_from_checkpoint(checkpoint_in(c), device));
    data_cfg = subjects.back().config.data;
  }
  if (!configs.empty()) data_cfg = configs.back().data;
  const bool fresh_configs = in.weights.empty();  // with --weights the configs name their models
  const bool need_train =
      want_train || !in.weights.empty() || (fresh_configs && !configs.empty() && in.checkpoints.empty());
  data = load_cifar10(resolve_data_dir(in.data_dir, data_cfg), need_train);
  for (size_t i = 0; i < in.weights.size(); ++i) {
    subjects.push_back(subject_from_weights(in.weights[i], configs[configs.size() == 1 ? 0 : i], data.train, device));
    if (!subjects.back().note.empty())
      std::cerr << "resnet-analyze: note: " << in.weights[i] << ": " << subjects.back().note << "\n";
  }
  std::vector<ExperimentConfig> fresh;
  if (in.with_init)
    for (const auto& s : subjects) fresh.push_back(s.config);
  if (fresh_configs) fresh.insert(fresh.end(), configs.begin(), configs.end());
  for (const auto& c : fresh) {
    Normalizer norm = !subjects.empty() ? subjects.front().normalizer : make_normalizer(data.train.images, c.data);
    subjects.push_back(subject_from_config(c, norm, device));
  }
  return subjects;
}

}  // namespace

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Analyse trained or fresh ResNets: responses, gradients, residuals, activations, lesions", "resnet-analyze"};
  std::string analysis, out_dir, device = "auto";
  Inputs in;
  int64_t images = 1000, batch = 128, limit = 2000;
  std::vector<int64_t> show = {0, 1, 2, 3};
  resnet::LesionOptions lesion;
  app.add_option("analysis", analysis, "responses | gradients | residuals | activations | lesion | landscape | hessian | paths")
      ->required()->check(CLI::IsMember({"responses", "gradients", "residuals", "activations", "lesion", "landscape",
                                         "hessian", "paths"}));
  app.add_option("--checkpoint", in.checkpoints, "checkpoint file or run folder (repeatable)");
  app.add_option("--weights", in.weights, "a .pt or .safetensors state_dict, e.g. published weights (repeatable; "
                                          "--config names its model)");
  app.add_option("--config", in.config_paths, "analyse a freshly initialised model of this config (repeatable); with "
                                              "--weights: the weights' model");
  app.add_option("--set", in.sets, "override a key of every --config");
  app.add_flag("--init", in.with_init, "also analyse a fresh model of each checkpoint's (and weights file's) config");
  app.add_option("--out", out_dir, "output folder")->required();
  app.add_option("--data-dir", in.data_dir, "CIFAR-10 folder");
  app.add_option("--device", device, "auto, cpu or cuda");
  app.add_option("--images", images, "test images for responses/residuals (default 1000)")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch for gradients (default 128)")->check(CLI::PositiveNumber);
  app.add_option("--limit", limit, "test images for lesion (default 2000; 0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--draws", lesion.draws, "lesion: random draws per k (default 4)")->check(CLI::PositiveNumber);
  app.add_option("--max-k", lesion.max_k, "lesion: largest number of deleted blocks (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--show", show, "activations: test image indices (default 0 1 2 3)")->delimiter(',');
  // landscape | hessian | paths (loss surfaces, curvature, gradient paths): cli/analyze_geometry.h.
  resnet::cli::GeometryFlags geometry;
  resnet::cli::add_geometry_flags(app, geometry);
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-analyze", [&] {
    if (in.checkpoints.empty() && in.config_paths.empty()) throw InputError("give at least one --checkpoint or --config");
    if (!in.weights.empty() && in.config_paths.empty()) throw InputError("--weights: needs --config naming the model");
    // Under torchrun/srun the geometry analyses split their items over the ranks (c10d, as training
    // does); every rank reads the inputs, a failure on one stops all of them at the next agreement.
    const bool geometry_analysis = resnet::cli::is_geometry_analysis(analysis);
    const LaunchEnv env = read_launch_env();
    if (env.active() && !geometry_analysis)
      throw InputError(analysis + ": runs as one process (only landscape, hessian and paths split over ranks); "
                       "run it without torchrun/srun");
    RuntimeConfig rc = resnet::cli::runtime_settings(in.sets);
    rc.device = device;
    rc.cuda_graph = false;
    const auto timeout = std::chrono::seconds(rc.dist_timeout_s);
    Job job(env, timeout);
    Runtime rt;
    std::string backend;
    job.agree("resolving the runtime", [&] {
      rt = resolve_runtime(rc, env.local_rank, env.local_world_size);
      if (env.active()) backend = resolve_backend(rc.dist_backend, rt.device);
    });
    apply_runtime(rt);
    Cifar10 data;
    std::vector<Subject> subjects;
    job.agree("reading the inputs", [&] {
      subjects = gather_subjects(in, rt.device, data, resnet::cli::geometry_needs_train(analysis, geometry));
      if (job.writer()) make_output_folder(out_dir);
    });
    // Notes on the runtime (a CUDA build without a GPU) once the inputs are accepted.
    if (job.writer())
      for (const auto& note : rt.warnings) std::cerr << "resnet-analyze: note: " << note << std::endl;
    if (geometry_analysis) {
      std::unique_ptr<Communicator> comm = job.connect(backend, rt.device, timeout);
      return resnet::cli::run_geometry(analysis, geometry, subjects, data, app.count("--images") ? images : 0,
                                       app.count("--batch") ? batch : 0, rt, out_dir, *comm);
    }
    auto first = [&](int64_t n) {
      n = n > 0 ? std::min(n, data.test.size()) : data.test.size();
      return ImageSet{data.test.images.narrow(0, 0, n), data.test.labels.narrow(0, 0, n)};
    };
    nlohmann::json result;
    std::vector<std::string> pngs;
    if (analysis == "responses") result = responses_json(subjects, first(images), batch);
    else if (analysis == "gradients") result = gradients_json(subjects, first(batch), batch);
    else if (analysis == "residuals") result = residuals_json(subjects, first(images), batch);
    else if (analysis == "lesion") result = lesion_json(subjects, first(limit), lesion);
    else result = activations(subjects, data, show, out_dir, pngs);
    const std::string json_path = (std::filesystem::path(out_dir) / (analysis + ".json")).string();
    write_file_atomic(json_path, result.dump(2) + "\n");
    if (analysis != "activations") pngs = plot_analysis(analysis, result, out_dir);
    std::cout << json_path << "\n";
    for (const auto& p : pngs) std::cout << p << "\n";
    return 0;
  });
}
