// resnet-export: write a checkpoint's weights as a state_dict that PyTorch reads.
//   resnet-export --checkpoint RUN_DIR|FILE --out FILE.pt|FILE.safetensors
//                 [--names native|torchvision] [--format pt|safetensors]
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/common.h"
#include "interop/weights.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace {

// The test error the run measured at the checkpoint's step (metrics.jsonl beside checkpoints/),
// or null when there is none to be found.
nlohmann::json test_error_at(const std::string& checkpoint, int64_t step) {
  namespace fs = std::filesystem;
  const fs::path run = fs::path(checkpoint).parent_path().parent_path();
  std::ifstream in(run / "metrics.jsonl");
  nlohmann::json found;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("step", int64_t{-1}) == step && j.contains("test_error") &&
        j["test_error"].is_number())
      found = j["test_error"];
  }
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Export a checkpoint's weights as a PyTorch state_dict (.pt or .safetensors)", "resnet-export"};
  std::string checkpoint, out, names = "native", format;
  app.add_option("--checkpoint", checkpoint, "checkpoint file or run folder")->required();
  app.add_option("--out", out, "output file: .pt (torch.load) or .safetensors")->required();
  app.add_option("--names", names, "native (python/cifar_resnet.py) or torchvision (torchvision.models.resnetNN)")
      ->check(CLI::IsMember({"native", "torchvision"}));
  app.add_option("--format", format, "pt or safetensors (default: from the --out extension)")
      ->check(CLI::IsMember({"pt", "safetensors"}));
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-export", [&] {
    const resnet::WeightsFormat fmt = resnet::format_for(out, format);
    const resnet::Names naming = resnet::names_from_flag(names);
    resnet::check_output_file(out);
    const std::string path = resnet::checkpoint_in(checkpoint);
    resnet::CheckpointReader reader(path);
    const resnet::ExperimentConfig config = reader.config();
    auto model = resnet::make_model(config.model);
    reader.load_model(*model);
    if (naming == resnet::Names::kTorchvision) {
      const std::string why = resnet::torchvision_mismatch(config.model);
      if (!why.empty()) throw resnet::InputError("--names torchvision: " + path + " holds a " +
                                                 resnet::model_name(config.model) + ": " + why);
    }
    const int64_t step = reader.contents().state.step;
    const nlohmann::json meta = resnet::weights_metadata(
        config.model, reader.contents().normalizer, config.data.normalize, step, test_error_at(path, step),
        std::filesystem::absolute(path).lexically_normal().string(), naming);
    resnet::export_weights(*model, out, fmt, naming, meta);
    std::cout << out << ": " << resnet::model_name(config.model) << " at step " << step << ", "
              << resnet::names_name(naming) << " names, " << resnet::format_name(fmt) << std::endl;
    return 0;
  });
}
