// resnet-eval: evaluate a checkpoint, or foreign weights, on CIFAR-10 (batched, no augmentation,
// BN in eval mode). The network is sized from its config and checked against the file's tensors
// before it is built.
//   resnet-eval --checkpoint FILE|RUN_DIR [--data-dir DIR] [--split test|train|val] [--json FILE]
//   resnet-eval --weights FILE.pt|FILE.safetensors --config CFG [--set key=value]... [same options]
//     (ours, torchvision's, and the popular CIFAR codes' state_dicts: interop/naming.h)
//   --logits FILE (.pt or .safetensors) also writes {"logits": float [N, classes], "labels": int64 [N]}
//   of the evaluated images; --limit N evaluates only the split's first N images.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/common.h"
#include "data/cifar10.h"
#include "eval/evaluate.h"
#include "eval/logits.h"
#include "interop/state_dict.h"
#include "interop/weights.h"
#include "interop/weights_file.h"
#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace {

// What is evaluated: the model (on its device), its config and runtime, and its normaliser.
struct Evaluated {
  std::unique_ptr<resnet::CheckpointReader> reader;  // null for --weights
  resnet::ExperimentConfig config;
  resnet::Runtime runtime;
  resnet::ResNet model{nullptr};
  resnet::Normalizer normalizer;
  bool fitted = false;  // the normaliser is still to be fitted on the training images
  std::string source, label, normaliser_source;
};

Evaluated load_model(const std::string& checkpoint, const std::string& weights, const std::string& config_path,
                     const std::vector<std::string>& sets, const std::string& device) {
  Evaluated e;
  // The net is sized from its config and compared with the file's tensors before it is built: a
  // file's metadata cannot make a small file a large allocation.
  if (!checkpoint.empty()) {
    e.source = resnet::checkpoint_in(checkpoint);
    e.reader = std::make_unique<resnet::CheckpointReader>(e.source);
    e.config = e.reader->config();
    resnet::check_file_fits(e.config.model, e.reader->model_tensors(), e.source, /*native=*/true);
  } else {
    e.source = weights;
    e.config = resnet::cli::resolve_config(config_path, sets);
    resnet::check_file_fits(e.config.model, resnet::open_weights(weights).tensors, weights, /*native=*/false);
  }
  e.config.runtime.device = device;
  e.config.runtime.cuda_graph = false;
  e.runtime = resnet::resolve_runtime(e.config.runtime);
  resnet::apply_runtime(e.runtime);
  e.model = resnet::make_model(e.config.model);
  if (e.reader) {
    e.reader->load_model(*e.model);
    e.normalizer = e.reader->contents().normalizer;
    e.label = e.config.name + ", step " + std::to_string(e.reader->contents().state.step);
  } else {
    const resnet::WeightsLoad load = resnet::load_weights_into(*e.model, weights);
    // The config's data.mean/data.std if it sets them; else the normaliser our exports carry;
    // else the one a new run of this config would fit on its training images.
    if (!e.config.data.mean.empty()) {
      e.normalizer = resnet::explicit_normalizer(e.config.data);
      e.normaliser_source = ", normaliser data.mean/data.std";
    } else {
      e.fitted = !resnet::normalizer_from_metadata(load.metadata, weights, &e.normalizer);
    }
    e.label = resnet::model_name(e.config.model) + ", " + load.scheme + " names";
    // Keys cannot show option A's padding or the normaliser: say what the known code uses.
    const std::string note = resnet::weights_note(load, e.config, !e.fitted);
    if (!note.empty()) std::cerr << "resnet-eval: note: " << weights << ": " << note << std::endl;
  }
  e.model->to(e.runtime.device);
  if (e.runtime.channels_last) resnet::to_channels_last(*e.model);
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Evaluate a resnet-train checkpoint, or a PyTorch state_dict, on CIFAR-10", "resnet-eval"};
  std::string checkpoint, weights, config_path, data_dir, split = "test", json_out, logits_out, device = "auto";
  std::vector<std::string> sets;
  int64_t batch_size = 0, limit = 0;
  auto* ckpt_opt = app.add_option("--checkpoint", checkpoint, "checkpoint file or run folder");
  auto* weights_opt =
      app.add_option("--weights", weights,
                     "a .pt or .safetensors state_dict (ours, torchvision's, kuangliu's, akamaster's, ... names)");
  auto* config_opt =
      app.add_option("--config", config_path, "with --weights: the experiment config that names the model");
  app.add_option("--set", sets, "with --weights: override a config key (JSON value)")->needs(config_opt);
  ckpt_opt->excludes(weights_opt);
  weights_opt->needs(config_opt);
  config_opt->needs(weights_opt);
  app.add_option("--data-dir", data_dir, "CIFAR-10 binary folder");
  app.add_option("--split", split, "test, train or val")->check(CLI::IsMember({"test", "train", "val"}));
  app.add_option("--json", json_out, "also write error, per-class accuracy and confusion matrix here");
  app.add_option("--logits", logits_out,
                 "also write the logits and labels of the evaluated images (.pt or .safetensors)");
  app.add_option("--limit", limit, "evaluate only the first N images of the split")->check(CLI::NonNegativeNumber);
  app.add_option("--device", device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--batch-size", batch_size, "evaluation batch (default: the run's train.eval_batch_size)")
      ->check(CLI::NonNegativeNumber);
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-eval", [&] {
    if (checkpoint.empty() && weights.empty())
      throw resnet::InputError("--checkpoint FILE|RUN_DIR or --weights FILE --config CFG is required");
    // Outputs are checked before the evaluation, not after.
    if (!json_out.empty()) resnet::check_output_file(json_out);
    const resnet::WeightsFormat logits_format =
        logits_out.empty() ? resnet::WeightsFormat::kPt : resnet::format_for(logits_out);
    if (!logits_out.empty()) resnet::check_output_file(logits_out);

    Evaluated e = load_model(checkpoint, weights, config_path, sets, device);
    const resnet::ExperimentConfig& config = e.config;
    const resnet::Runtime& rt = e.runtime;
    auto& model = e.model;
    const bool fitted = e.fitted;
    resnet::Normalizer& normalizer = e.normalizer;
    const std::string& source = e.source;
    const auto& reader = e.reader;

    const std::string dir = resnet::resolve_data_dir(data_dir, config.data);
    resnet::Cifar10 data = resnet::load_cifar10(dir, split != "test" || fitted);
    resnet::Splits splits = resnet::make_splits(data, config.data);
    if (fitted) normalizer = resnet::fit_normalizer(splits.train.images, config.data.normalize);
    resnet::ImageSet set = split == "test" ? splits.test : split == "train" ? splits.train : splits.val;
    if (set.size() == 0)
      throw resnet::InputError("--split " + split + ": the run has no " + split + " set (data.val_size is 0)");
    if (limit > 0 && limit < set.size()) set = {set.images.narrow(0, 0, limit), set.labels.narrow(0, 0, limit)};

    // Notes on the runtime (a CUDA build without a GPU) once every input has been accepted: a
    // refused input stays one line.
    for (const auto& note : rt.warnings) std::cerr << "resnet-eval: note: " << note << std::endl;
    const int64_t batch = batch_size > 0 ? batch_size : config.train.eval_batch_size;
    resnet::EvalOptions opts;
    opts.batch_size = batch;
    opts.channels_last = rt.channels_last;
    opts.bf16 = rt.bf16;
    resnet::EvalResult result = resnet::evaluate(*model, set, normalizer, opts);
    std::cout << source << " (" << e.label << "), " << split << " split"
              << (fitted ? ", normaliser fitted on the training images" : e.normaliser_source) << "\n"
              << resnet::format_report(result, data.class_names);
    if (!logits_out.empty()) {
      const at::Tensor logits = resnet::compute_logits(*model, set, normalizer, batch);
      resnet::write_weights(logits_out, logits_format, {{"logits", logits}, {"labels", set.labels}},
                            nlohmann::json{{"source", source}, {"split", split}, {"error", result.error}});
    }
    if (!json_out.empty()) {
      nlohmann::json j = result.to_json(data.class_names);
      j[reader ? "checkpoint" : "weights"] = source;
      j["split"] = split;
      if (reader) j["step"] = reader->contents().state.step;
      resnet::write_file_atomic(json_out, j.dump(2) + "\n");
    }
    return 0;
  });
}
