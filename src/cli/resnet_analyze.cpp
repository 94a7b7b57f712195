// resnet-analyze: why residual learning works, measured on checkpoints or fresh models.
//   resnet-analyze ANALYSIS (--checkpoint FILE|RUN_DIR)... [--config FILE [--set k=v]...]... [--init]
//                  [--data-dir DIR] --out DIR [the analysis's own flags: resnet-analyze ANALYSIS --help]
//   resnet-analyze ANALYSIS ... (--weights FILE.pt|FILE.safetensors)... --config FILE [--set k=v]...
//                  (foreign weights: the config names their model, one for all or one per file)
// The analyses, their flags, runs and plots are the registry's (analysis/registry.h). Writes
// <analysis>.json and <analysis>*.png (gnuplot) into DIR.
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>

#include "analysis/analysis.h"
#include "analysis/helpers.h"
#include "analysis/registry.h"
#include "cli/common.h"
#include "parallel/job.h"
#include "parallel/launch_env.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace {

using namespace resnet;

// What to analyse, as given on the command line.
struct Inputs {
  std::vector<std::string> checkpoints, weights, config_paths, sets;
  bool with_init = false;
  std::string data_dir, out_dir, device = "auto";
};

void add_input_flags(CLI::App& app, Inputs& in) {
  app.add_option("--checkpoint", in.checkpoints, "checkpoint file or run folder (repeatable)");
  app.add_option("--weights", in.weights,
                 "a .pt or .safetensors state_dict, e.g. published weights (repeatable; "
                 "--config names its model)");
  app.add_option("--config", in.config_paths,
                 "analyse a freshly initialised model of this config (repeatable); with "
                 "--weights: the weights' model");
  app.add_option("--set", in.sets, "override a key of every --config");
  app.add_flag("--init", in.with_init, "also analyse a fresh model of each checkpoint's (and weights file's) config");
  app.add_option("--out", in.out_dir, "output folder")->required();
  app.add_option("--data-dir", in.data_dir, "CIFAR-10 folder");
  app.add_option("--device", in.device, "auto, cpu or cuda");
}

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

// The runtime.* keys of the --set list over the defaults (precision, threads, channels_last,
// dist_backend, dist_timeout_s); the other keys are the configs'.
RuntimeConfig runtime_settings(const std::vector<std::string>& sets) {
  std::vector<std::string> runtime_sets;
  for (const auto& s : sets)
    if (s.rfind("runtime.", 0) == 0) runtime_sets.push_back(s);
  return resnet::cli::resolve_config(nlohmann::json::object(), runtime_sets, "--set").runtime;
}

// Runs `analysis` on every rank of the job (one process, or the ranks of torchrun/srun where it
// splits its items over them); the writer writes <name>.json and its PNGs and prints their paths
// (every rank learns whether that worked).
int analyse(Analysis& analysis, const Inputs& in) {
  if (in.checkpoints.empty() && in.config_paths.empty()) throw InputError("give at least one --checkpoint or --config");
  if (!in.weights.empty() && in.config_paths.empty()) throw InputError("--weights: needs --config naming the model");
  const LaunchEnv env = read_launch_env();
  if (env.active() && !analysis.splits_over_ranks())
    throw InputError(analysis.name() +
                     ": runs as one process (only the analyses that split over ranks may: "
                     "landscape, hessian, paths); run it without torchrun/srun");
  RuntimeConfig rc = runtime_settings(in.sets);
  rc.device = in.device;
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
    subjects = gather_subjects(in, rt.device, data, analysis.needs_train_images());
    if (job.writer()) make_output_folder(in.out_dir);
  });
  // Notes on the runtime (a CUDA build without a GPU) once the inputs are accepted: a refused
  // input stays one line.
  if (job.writer())
    for (const auto& note : rt.warnings) std::cerr << "resnet-analyze: note: " << note << std::endl;
  std::unique_ptr<Communicator> comm = job.connect(backend, rt.device, timeout);
  AnalysisInputs inputs{subjects, data, rt, *comm, in.out_dir};
  nlohmann::json result = analysis.run(inputs);
  if (analysis.splits_over_ranks()) result["ranks"] = comm->size();  // how many processes shared the work
  comm->agree("writing the results", [&] {
    if (!comm->writer()) return;
    const std::string json_path = file_in(in.out_dir, analysis.name() + ".json");
    write_file_atomic(json_path, result.dump(2) + "\n");
    const std::vector<std::string> pngs = analysis.plot(result, in.out_dir);
    std::cout << json_path << "\n";
    for (const auto& p : pngs) std::cout << p << "\n";
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  std::vector<std::unique_ptr<Analysis>> analyses = make_analyses();
  std::string names;
  for (const auto& a : analyses) names += (names.empty() ? "" : ", ") + a->name();
  CLI::App app{"Analyse trained or fresh ResNets: " + names, "resnet-analyze"};
  Inputs in;
  add_input_flags(app, in);
  app.require_subcommand(1);
  for (auto& a : analyses) {
    CLI::App* command = app.add_subcommand(a->name(), a->summary());
    command->fallthrough();  // the common flags above may come after the analysis's name
    a->add_flags(*command);
  }
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;
  Analysis* chosen = nullptr;
  for (auto& a : analyses)
    if (app.got_subcommand(a->name())) chosen = a.get();
  return resnet::cli::run_main("resnet-analyze", [&] { return analyse(*chosen, in); });
}
