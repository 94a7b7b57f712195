// resnet-train: train a ResNet (or its plain twin) on CIFAR-10 from a JSON config.
//   resnet-train --config FILE [--set key=value]... [--out DIR] [--force] [--dry-run]
//   resnet-train --resume RUN_DIR [--set key=value]...
//   resnet-train --help-config [markdown]   every config key (docs/config.md is the markdown)
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/common.h"
#include "config/keys.h"
#include "models/family.h"
#include "models/layout.h"
#include "train/resume_policy.h"
#include "train/trainer.h"
#include "util/errors.h"

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Train a ResNet on CIFAR-10 (He et al. 2015)", "resnet-train"};
  std::string config_path, resume_dir;
  std::vector<std::string> sets;
  bool dry_run = false;
  std::string help_config;
  resnet::TrainOptions options;
  auto* config_opt = app.add_option("--config", config_path, "experiment config (JSON)");
  auto* resume_opt = app.add_option("--resume", resume_dir, "continue the run in this folder from its checkpoint");
  config_opt->excludes(resume_opt);
  app.add_option("--set", sets, "override a config key: --set model.depth=56 (JSON value)");
  app.add_option("--out", options.out_dir, "run folder (default runs/<config name>)");
  app.add_option("--data-dir", options.data_dir,
                 "CIFAR-10 binary folder (default: data.dir, $CIFAR10_DIR, data/cifar-10-batches-bin)");
  app.add_flag("--force", options.force, "start over in an existing run folder");
  app.add_option("--allow-change", options.allow_changes,
                 "with --resume: let this config key (or section) change although it changes what the run "
                 "computes (batch size, seed, data, model...); recorded in config.json and train.log");
  app.add_flag("--dry-run", dry_run, "print parameters and the resolved config; touch nothing");
  app.add_option("--help-config", help_config,
                 "print every config key (type, default, checks, description) and "
                 "exit; 'markdown': docs/config.md")
      ->expected(0, 1);
  app.add_flag(
      "--no-progress", [&](int64_t) { options.progress = false; }, "plain log lines even on a terminal");
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-train", [&] {
    if (app.count("--help-config")) {
      if (!help_config.empty() && help_config != "markdown" && help_config != "text")
        throw resnet::InputError("--help-config: '" + resnet::excerpt(help_config) + "' is not one of text|markdown");
      std::cout << resnet::config_reference(help_config == "markdown");
      return 0;
    }
    if (!resume_dir.empty()) {
      if (dry_run) throw resnet::InputError("--dry-run: not with --resume");
      return resnet::resume(resume_dir, sets, options);
    }
    if (config_path.empty()) throw resnet::InputError("--config FILE or --resume RUN_DIR is required");
    resnet::ExperimentConfig config = resnet::cli::resolve_config(config_path, sets);
    // torchrun --max_restarts: a restarted job continues the run its first attempt started.
    const std::string out = options.out_dir.empty() ? "runs/" + config.name : options.out_dir;
    if (!dry_run && resnet::restarted_run(out, config)) return resnet::resume(out, sets, options);
    if (dry_run) {  // sized from the declaration (models/layout.h): nothing is built
      const resnet::NetworkSize size = resnet::network_size(config.model);
      nlohmann::json out{{"model", resnet::family_of(config.model).model_name(config.model)},
                         {"parameters", size.parameters},
                         {"activation_bytes_per_batch", 4.0 * static_cast<double>(size.activation_values_per_image) *
                                                            static_cast<double>(config.train.batch_size)},
                         {"config", resnet::to_json(config)}};
      std::cout << out.dump(2) << std::endl;
      return 0;
    }
    return resnet::train(config, options);
  });
}
