// resnet-train: train a ResNet (or its plain twin) on CIFAR-10 from a JSON config.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/common.h"
#include "models/resnet.h"
#include "util/errors.h"

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Train a ResNet on CIFAR-10 (He et al. 2015)", "resnet-train"};
  std::string config_path;
  std::vector<std::string> sets;
  bool dry_run = false;
  app.add_option("--config", config_path, "experiment config (JSON)")->required();
  app.add_option("--set", sets, "override a config key: --set model.depth=56 (JSON value)");
  app.add_flag("--dry-run", dry_run, "print parameters and the resolved config, then exit");
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;
  return resnet::cli::run_main("resnet-train", [&] {
    resnet::ExperimentConfig config = resnet::cli::resolve_config(config_path, sets);
    if (dry_run) {
      auto model = resnet::make_model(config.model);
      nlohmann::json out{{"parameters", resnet::count_parameters(*model)},
                         {"config", resnet::to_json(config)}};
      std::cout << out.dump(2) << std::endl;
      return 0;
    }
    return 0;
  });
}
