// Writes seeds for fuzz_checkpoint into a folder:
//   fuzz_checkpoint_seed DIR           a real ResNet-8 checkpoint (resnet8.ckpt, ~600 KB: made at
//                                      build time by scripts/fuzz.sh, not committed)
//   fuzz_checkpoint_seed --small DIR   small archives with the checkpoint's keys and one wrong type
//                                      or value each (the *.ckpt in tests/fuzz/corpus/checkpoint/;
//                                      they reach open and config(), not load_model)
#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "damaged_checkpoint.h"
#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/sgd.h"

namespace {

using resnet::testing::write_damaged_checkpoint;

void write_small(const std::string& dir) {
  using c10::IValue;
  auto p = [&](const char* name) { return (std::filesystem::path(dir) / name).string(); };
  write_damaged_checkpoint(p("few_tensors.ckpt"), {});
  write_damaged_checkpoint(p("version_string.ckpt"), {{"version", IValue(std::string("1"))}});
  write_damaged_checkpoint(p("config_int.ckpt"), {{"config", IValue(int64_t{7})}});
  write_damaged_checkpoint(p("config_not_json.ckpt"), {{"config", IValue(std::string("{\"model\":"))}});
  write_damaged_checkpoint(p("config_array.ckpt"), {{"config", IValue(std::string("[20]"))}});
  write_damaged_checkpoint(p("state_wrong_type.ckpt"), {{"state", IValue(std::string(R"({"step":"three"})"))}});
  write_damaged_checkpoint(p("names_are_tensors.ckpt"), {{"model_names", IValue(c10::List<at::Tensor>{at::zeros({2})})},
                                                         {"model_tensors", IValue(std::string("weights"))}});
  write_damaged_checkpoint(p("norm_wrong_shape.ckpt"), {{"norm_mean", IValue(at::zeros({5}))}});
  write_damaged_checkpoint(p("no_norm.ckpt"), {{"norm_std", IValue()}});
  write_damaged_checkpoint(p("changes_not_objects.ckpt"), {{"changes", IValue(std::string("[1, 2]"))}});
}

void write_resnet8(const std::string& dir) {
  const resnet::ExperimentConfig c = resnet::testing::resnet8_config();
  at::manual_seed(0);
  resnet::ResNet model = resnet::make_model(c.model);
  resnet::Sgd sgd(model->parameters(), resnet::SgdOptions{});
  resnet::CheckpointContents contents;
  contents.config = resnet::to_json(c);
  contents.state.step = 3;
  contents.normalizer = {at::full({1, 3, 1, 1}, 0.5f), at::full({1, 3, 1, 1}, 0.25f)};
  contents.data_fingerprint = "seed";
  contents.changes =
      nlohmann::json::array({{{"step", 3}, {"key", "train.iterations"}, {"from", 10}, {"to", 20}, {"forced", false}}});
  resnet::save_checkpoint((std::filesystem::path(dir) / "resnet8.ckpt").string(), contents, *model, &sgd);
}

}  // namespace

int main(int argc, char** argv) {
  const bool small = argc == 3 && std::strcmp(argv[1], "--small") == 0;
  if (argc != 2 && !small) {
    std::fprintf(stderr, "usage: fuzz_checkpoint_seed [--small] DIR\n");
    return 2;
  }
  const std::string dir = argv[argc - 1];
  std::filesystem::create_directories(dir);
  if (small) write_small(dir);
  else write_resnet8(dir);
  return 0;
}
