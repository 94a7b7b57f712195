#pragma once
// Version-1 checkpoints (TorchScript archives, as builds before the safetensors format wrote them)
// with one key damaged, for the reader's tests (test_checkpoint) and the fuzzer's seeds
// (tests/fuzz/fuzz_checkpoint_seed). Written by LibTorch's own OutputArchive, the old writer, the
// same way: tensors as the module's parameters, everything else as attributes, in its order.
#include <ATen/ATen.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "train/checkpoint.h"

namespace resnet::testing {

// A valid ResNet-8 config, as a checkpoint stores it.
inline ExperimentConfig resnet8_config() {
  ExperimentConfig c;
  c.name = "damaged";
  c.model.depth = 8;
  c.train.iterations = 10;
  c.train.lr_schedule.milestones = {5};
  validate(c);
  return c;
}

// Writes an archive with every key a checkpoint has, small and well typed (one 16x3x3x3 tensor,
// so it opens but does not load into a model), except the keys in `damaged`, whose values are
// written instead (an archive key keeps the type of its first write). A None value leaves the key
// out; keys a checkpoint does not have are added.
inline void write_damaged_checkpoint(const std::string& path, const std::map<std::string, c10::IValue>& damaged) {
  const std::vector<std::pair<std::string, c10::IValue>> good = {
      {"format", c10::IValue(std::string("resnet-train-checkpoint"))},
      {"version", c10::IValue(int64_t{1})},
      {"config", c10::IValue(to_json(resnet8_config()).dump())},
      {"state",
       c10::IValue(std::string(R"({"step":3,"train_loss_sum":1.5,"train_correct":2,"train_seen":9,"train_seconds":0.5,)"
                               R"("eval_seconds":0.1,"elapsed_seconds":1.0,"images_trained":96,"best_val_error":-1,)"
                               R"("best_val_step":-1})"))},
      {"data_fingerprint", c10::IValue(std::string("fingerprint"))},
      {"changes", c10::IValue(std::string(R"([{"step":3,"key":"train.lr","from":0.1,"to":0.2}])"))},
      {"model_names", c10::IValue(c10::List<std::string>{"stem_conv.weight"})},
      {"model_tensors", c10::IValue(c10::List<at::Tensor>{at::zeros({16, 3, 3, 3})})},
      {"momentum", c10::IValue(c10::List<at::Tensor>{at::zeros({16, 3, 3, 3})})},
      {"norm_mean", c10::IValue(at::full({1, 3, 1, 1}, 0.5f))},
      {"norm_std", c10::IValue(at::full({1, 3, 1, 1}, 0.25f))},
  };
  torch::serialize::OutputArchive archive;
  auto write = [&](const std::string& key, const c10::IValue& value) {
    if (value.isTensor())
      archive.write(key, value.toTensor());  // a parameter, as the old writer's norm_mean and norm_std
    else archive.write(key, value);
  };
  for (const auto& [key, value] : good) {
    const auto it = damaged.find(key);
    if (it == damaged.end()) write(key, value);
    else if (!it->second.isNone()) write(key, it->second);
  }
  for (const auto& extra : damaged)
    if (std::none_of(good.begin(), good.end(), [&](const auto& g) { return g.first == extra.first; }))
      write(extra.first, extra.second);
  archive.save_to(path);
}

}  // namespace resnet::testing
