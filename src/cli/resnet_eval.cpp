// resnet-eval: evaluate a checkpoint on CIFAR-10 (batched, no augmentation, BN in eval mode).
//   resnet-eval --checkpoint FILE|RUN_DIR [--data-dir DIR] [--split test|train|val] [--json FILE]
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/common.h"
#include "data/cifar10.h"
#include "eval/evaluate.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "util/errors.h"
#include "util/json_io.h"

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Evaluate a resnet-train checkpoint on CIFAR-10", "resnet-eval"};
  std::string checkpoint, data_dir, split = "test", json_out, device = "auto";
  int64_t batch_size = 0;
  app.add_option("--checkpoint", checkpoint, "checkpoint file or run folder")->required();
  app.add_option("--data-dir", data_dir, "CIFAR-10 binary folder");
  app.add_option("--split", split, "test, train or val")->check(CLI::IsMember({"test", "train", "val"}));
  app.add_option("--json", json_out, "also write error, per-class accuracy and confusion matrix here");
  app.add_option("--device", device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--batch-size", batch_size, "evaluation batch (default: the run's train.eval_batch_size)")
      ->check(CLI::NonNegativeNumber);
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-eval", [&] {
    if (!json_out.empty()) resnet::check_output_file(json_out);  // before the evaluation, not after
    const std::string path = resnet::checkpoint_in(checkpoint);
    resnet::CheckpointReader reader(path);
    resnet::ExperimentConfig config = reader.config();
    config.runtime.device = device;
    config.runtime.cuda_graph = false;
    resnet::Runtime rt = resnet::resolve_runtime(config.runtime);
    resnet::apply_runtime(rt);
    auto model = resnet::make_model(config.model);
    model->to(rt.device);
    reader.load_model(*model);
    if (rt.channels_last) resnet::to_channels_last(*model);

    const std::string dir = resnet::resolve_data_dir(data_dir, config.data);
    resnet::Cifar10 data = resnet::load_cifar10(dir, split != "test");
    resnet::Splits splits = resnet::make_splits(data, config.data);
    const resnet::ImageSet& set = split == "test" ? splits.test : split == "train" ? splits.train : splits.val;
    if (set.size() == 0)
      throw resnet::InputError("--split " + split + ": the run has no " + split + " set (data.val_size is 0)");

    resnet::EvalOptions opts{batch_size > 0 ? batch_size : config.train.eval_batch_size, rt.channels_last, rt.bf16};
    resnet::EvalResult result = resnet::evaluate(*model, set, reader.contents().normalizer, opts);
    std::cout << path << " (" << config.name << ", step " << reader.contents().state.step << "), "
              << split << " split\n" << resnet::format_report(result, data.class_names);
    if (!json_out.empty()) {
      nlohmann::json j = result.to_json(data.class_names);
      j["checkpoint"] = path;
      j["split"] = split;
      j["step"] = reader.contents().state.step;
      resnet::write_file_atomic(json_out, j.dump(2) + "\n");
    }
    return 0;
  });
}
