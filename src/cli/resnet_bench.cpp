// resnet-bench: time training steps, evaluation or a whole run; prints one JSON object.
//   resnet-bench --config FILE [--set key=value]... [--mode bare|step|eval|train|verify|checkpoint|convs] [--steps N]
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/common.h"
#include "bench/bench.h"

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Benchmark resnet-train on this machine", "resnet-bench"};
  std::string config_path;
  std::vector<std::string> sets;
  resnet::BenchOptions options;
  app.add_option("--config", config_path, "experiment config (JSON)")->required();
  app.add_option("--set", sets, "override a config key (JSON value)");
  app.add_option("--mode", options.mode, "bare | step | eval | train | verify | checkpoint | convs")
      ->check(CLI::IsMember({"bare", "step", "eval", "train", "verify", "checkpoint", "convs"}));
  app.add_option("--steps", options.steps, "timed steps (bare/step) or 10x passes (eval)");
  app.add_option("--warmup", options.warmup, "untimed steps first");
  app.add_option("--data-dir", options.data_dir, "CIFAR-10 folder for eval/train");
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;
  return resnet::cli::run_main("resnet-bench", [&] {
    resnet::ExperimentConfig config = resnet::cli::resolve_config(config_path, sets);
    const nlohmann::json out = resnet::run_bench(config, options);
    std::cout << out.dump() << std::endl;
    if (out.contains("passed") && !out["passed"].get<bool>()) {
      std::cerr << "resnet-bench: verify failed: the fast training step does not match the eager one (see \"checks\")"
                << std::endl;
      return 1;
    }
    return 0;
  });
}
