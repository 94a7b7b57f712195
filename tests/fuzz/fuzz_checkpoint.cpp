// Fuzz target: the checkpoint reader, both formats (version 2, safetensors; version 1, the old
// TorchScript archives read by the restricted unpickler), used the way resnet-eval and resume
// use it.
//
// The input is written to a file and opened with CheckpointReader; then config(); then, only
// when that config is a small CIFAR network (a fuzzed config must not make us build a
// ResNet-1202), the model is built and load_model and load_optimizer run on it.
// Checks, beyond "only InputError naming the file": what is accepted can be used the way the
// trainer uses it (normaliser, recorded changes, step, --set on the stored config).
// Nothing in a checkpoint reaches LibTorch's readers any more, so everything is fuzzed.
//
// Seeds: tests/fuzz/corpus/checkpoint/ holds small version-1 archives with the checkpoint's keys
// and wrong types or values, and the bound seeds (make_bound_seeds.py); scripts/fuzz.sh adds a
// real ResNet-8 checkpoint in today's format that fuzz_checkpoint_seed writes at build time, the
// version-1 fixture run's checkpoint, and tests/fuzz/libtorch_crashes/.
#include <ATen/ATen.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "fuzz_support.h"
#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/sgd.h"

using resnet::fuzz::expect_only_input_errors;
using resnet::fuzz::finding;

namespace {

// At most 3 blocks a stage of a CIFAR network (ResNet-20 size) and a modest head.
bool small_model(const resnet::ModelConfig& m) {
  if (m.family != "cifar" || m.num_classes > 1000) return false;
  const resnet::NetworkSpec spec = resnet::network_spec(m);
  for (int64_t n : spec.stage_blocks)
    if (n > 3) return false;
  return true;
}

// What the trainer does with an accepted checkpoint's contents must not throw: normalise a batch,
// log each recorded change ({step, key, from, to, forced}), resume from its step.
void check_accepted_contents(const resnet::CheckpointContents& contents) {
  if (contents.state.step < 0) finding("negative step accepted: " + std::to_string(contents.state.step));
  const bool usable = expect_only_input_errors([&] {
    const at::Tensor x = contents.normalizer(at::zeros({1, 3, 32, 32}, at::kByte));
    if (x.sizes() != at::IntArrayRef({1, 3, 32, 32}) || x.scalar_type() != at::kFloat)
      finding("the normaliser turns a [1, 3, 32, 32] batch into " + c10::str(x.sizes()));
    for (const auto& c : contents.changes) {
      (void)c.value("step", int64_t{-1});
      (void)c.value("forced", false);
      (void)(c["key"].get<std::string>() + c["from"].dump() + c["to"].dump());
    }
  });
  if (!usable) finding("an InputError from using what the reader accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = resnet::fuzz::scratch().file("fuzz.ckpt");
  resnet::fuzz::write_bytes(path, data, size);

  std::unique_ptr<resnet::CheckpointReader> reader;
  if (!expect_only_input_errors([&] { reader = std::make_unique<resnet::CheckpointReader>(path); }, path)) return 0;
  const auto& contents = reader->contents();
  check_accepted_contents(contents);
  // resnet-train --resume RUN --set ...: overrides go onto the stored config.
  nlohmann::json user = contents.config;
  expect_only_input_errors([&] { resnet::apply_override(user, "train.iterations=5"); });

  resnet::ExperimentConfig config;
  if (!expect_only_input_errors([&] { config = reader->config(); }, path)) return 0;
  if (!small_model(config.model)) return 0;
  at::manual_seed(0);
  resnet::ResNet model = resnet::make_model(config.model);
  if (!expect_only_input_errors([&] { reader->load_model(*model); }, path)) return 0;
  resnet::Sgd sgd(model->parameters(), resnet::sgd_options(config.train));
  expect_only_input_errors([&] { reader->load_optimizer(sgd, *model); }, path);
  return 0;
}
