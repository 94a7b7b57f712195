// resnet-export: write a checkpoint's weights as a state_dict that PyTorch reads, or the network
// as an ONNX model.
//   resnet-export --checkpoint RUN_DIR|FILE --out FILE.pt|FILE.safetensors
//                 [--names native|torchvision] [--format pt|safetensors]
//   resnet-export --checkpoint RUN_DIR|FILE --out FILE.onnx [--format onnx] [--with-normalizer]
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "cli/common.h"
#include "interop/onnx_export.h"
#include "interop/state_dict.h"
#include "interop/weights.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace {

// The test error the run measured at the checkpoint's step (metrics.jsonl beside checkpoints/),
// or null when there is none to be found. The run folder's metrics file is read as a run folder's
// files are (train/run_dir.h): a symlink, a FIFO, a row that is not a row is refused by name.
nlohmann::json test_error_at(const std::string& checkpoint, int64_t step) {
  namespace fs = std::filesystem;
  const fs::path folder = fs::path(checkpoint).parent_path();
  if (folder.filename() != "checkpoints") return nullptr;
  const std::string run = folder.parent_path().string();
  nlohmann::json found;
  for (const auto& row : resnet::read_metrics_rows(resnet::Folder::open(run.empty() ? "." : run)))
    if (row["step"].get<int64_t>() == step && row.contains("test_error") && row["test_error"].is_number())
      found = row["test_error"];
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  resnet::cli::tune_malloc();
  CLI::App app{"Export a checkpoint's weights as a PyTorch state_dict (.pt or .safetensors), or as ONNX",
               "resnet-export"};
  std::string checkpoint, out, names, format;
  bool with_normalizer = false;
  app.add_option("--checkpoint", checkpoint, "checkpoint file or run folder")->required();
  app.add_option("--out", out, "output file: .pt (torch.load), .safetensors or .onnx")->required();
  app.add_option("--names", names, "native (python/cifar_resnet.py) or torchvision (torchvision.models.resnetNN)")
      ->check(CLI::IsMember({"native", "torchvision"}));
  app.add_option("--format", format, "pt, safetensors or onnx (default: from the --out extension)")
      ->check(CLI::IsMember({"pt", "safetensors", "onnx"}));
  app.add_flag("--with-normalizer", with_normalizer, "onnx: the model takes uint8 0-255 images and normalises them");
  if (int rc = resnet::cli::parse_flags(app, argc, argv); rc >= 0) return rc;

  return resnet::cli::run_main("resnet-export", [&] {
    const bool onnx = format == "onnx" || (format.empty() && std::filesystem::path(out).extension() == ".onnx");
    if (onnx && !names.empty())
      throw resnet::InputError("--names: only for .pt and .safetensors (ONNX has no names to choose)");
    if (!onnx && with_normalizer) throw resnet::InputError("--with-normalizer: only with --format onnx");
    const resnet::WeightsFormat fmt = onnx ? resnet::WeightsFormat::kPt : resnet::format_for(out, format);
    const resnet::Names naming = resnet::names_from_flag(names.empty() ? "native" : names);
    resnet::check_output_file(out);
    const std::string path = resnet::checkpoint_in(checkpoint);
    resnet::CheckpointReader reader(path);
    const resnet::ExperimentConfig config = reader.config();
    // Sized against the file's tensors before it is built (a small file cannot ask for a huge net).
    resnet::check_file_fits(config.model, reader.model_tensors(), path, /*native=*/true);
    auto model = resnet::make_model(config.model);
    reader.load_model(*model);
    if (naming == resnet::Names::kTorchvision) {
      const std::string why = resnet::torchvision_mismatch(config.model);
      if (!why.empty())
        throw resnet::InputError("--names torchvision: " + path + " holds a " + resnet::model_name(config.model) +
                                 ": " + why);
    }
    const int64_t step = reader.contents().state.step;
    const nlohmann::json meta = resnet::weights_metadata(
        config.model, reader.contents().normalizer, config.data.normalize, step, test_error_at(path, step),
        std::filesystem::absolute(path).lexically_normal().string(), naming);
    if (onnx) {
      resnet::export_onnx(*model, reader.contents().normalizer, meta, out, {with_normalizer});
      std::cout << out << ": " << resnet::model_name(config.model) << " at step " << step << ", ONNX opset "
                << resnet::kOnnxOpset << (with_normalizer ? ", uint8 input" : ", normalised float input") << std::endl;
      return 0;
    }
    resnet::export_weights(*model, out, fmt, naming, meta);
    std::cout << out << ": " << resnet::model_name(config.model) << " at step " << step << ", "
              << resnet::names_name(naming) << " names, " << resnet::format_name(fmt) << std::endl;
    return 0;
  });
}
