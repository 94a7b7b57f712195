// python/cifar_resnet.py mirrors every family of src/models: for each family (the list in
// models/family.cpp, so a new family is checked without touching this file) and each option a
// family accepts, the Python net has the C++ net's state_dict keys in the same order with the
// same shapes; and one net per family, exported with its trained-looking weights, loads strictly
// into the Python net and gives the C++ logits. Runs the pinned PyTorch (kPython).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <set>

#include "interop/state_dict.h"
#include "interop/weights.h"
#include "models/family.h"
#include "models/resnet.h"
#include "test_support.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::kPython;
using resnet::testing::TempDir;

namespace {

// The family's smallest net with `block` and `stem` (its depth rule decides; width 2 where the
// family has a width, so that the first block widens), resolved; false if it has none.
bool smallest(const Family& f, const std::string& block, const std::string& stem, ModelConfig& out) {
  for (int width : {2, 1})
    for (int depth = 1; depth < 200; ++depth) {
      ModelConfig m;
      m.family = f.name();
      m.depth = depth;
      m.width = width;
      m.block = block;
      m.stem = stem;
      try {
        validate_model(m);
      } catch (const InputError&) {
        continue;
      }
      out = m;
      return true;
    }
  return false;
}

// The variants of the family's smallest net that it accepts (residual or plain, shortcut A/B/C,
// post- or pre-activation), and its smallest net with each other block type and stem.
std::vector<ModelConfig> variants(const Family& f) {
  std::vector<ModelConfig> out;
  std::set<std::string> seen;
  bool first = true;
  for (const char* block : {"basic", "bottleneck"})
    for (const char* stem : {"cifar", "imagenet"}) {
      ModelConfig base;
      if (!smallest(f, block, stem, base)) continue;
      const bool all_options = first;
      first = false;
      for (bool residual : {true, false})
        for (const char* shortcut : {"A", "B", "C"})
          for (bool preact : {false, true}) {
            ModelConfig m = base;
            if (all_options) m.residual = residual, m.shortcut = shortcut, m.preact = preact;
            try {
              validate_model(m);
            } catch (const InputError&) {
              continue;
            }
            ExperimentConfig c;
            c.model = m;
            if (seen.insert(to_json(c).dump()).second) out.push_back(m);
          }
    }
  return out;
}

nlohmann::json model_json(const ModelConfig& m) {
  ExperimentConfig c;
  c.model = m;
  return to_json(c)["model"];
}

// Non-trivial BN statistics and affine parameters, as after training.
void randomise_batchnorms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& m : model.modules(false))
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.normal_(0, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.5);
    }
}

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(PythonMirror, EveryFamilysNetsHaveTheSameKeysAndShapes) {
  ASSERT_TRUE(resnet::testing::python_has("torch, safetensors"));
  TempDir tmp;
  nlohmann::json nets = nlohmann::json::array();
  for (const Family* f : families()) {
    const auto all = variants(*f);
    EXPECT_GE(all.size(), 2u) << f->name() << ": no depth below 200 resolves";
    for (const auto& m : all) {
      nlohmann::json state = nlohmann::json::array();
      for (const auto& [name, t] : model_state(*make_model(m))) state.push_back({name, t.sizes().vec()});
      nets.push_back({{"name", model_name(m) + "-" + m.shortcut + (m.stem == "imagenet" ? "-stem7" : "")},
                      {"model", model_json(m)},
                      {"state", state}});
    }
  }
  write_file_atomic(tmp / "nets.json", nets.dump());
  const std::string script = std::string(RESNET_SOURCE_DIR) + "/tests/mirror/check_mirror.py";
  EXPECT_EQ(run("PYTHONDONTWRITEBYTECODE=1 " + kPython + " " + script + " --nets " + tmp / "nets.json" + " > " +
                tmp / "out.txt" + " 2>&1"),
            0)
      << read_text_file(tmp / "out.txt");
  std::printf("%s", read_text_file(tmp / "out.txt").c_str());
}

TEST(PythonMirror, OneNetPerFamilyLoadsStrictlyAndGivesTheSameLogits) {
  ASSERT_TRUE(resnet::testing::python_has("torch, safetensors"));
  TempDir tmp;
  nlohmann::json nets = nlohmann::json::array();
  torch::manual_seed(4);
  for (const Family* f : families()) {
    ModelConfig m;
    ASSERT_TRUE(smallest(*f, "auto", "auto", m)) << f->name() << ": no depth below 200 resolves";
    const std::string name = model_name(m);
    auto model = make_model(m);
    randomise_batchnorms(*model);
    model->eval();
    const at::Tensor images = torch::randn({4, 3, 32, 32});
    at::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      logits = model->forward(images);
    }
    export_weights(*model, tmp / (name + ".safetensors"), WeightsFormat::kSafetensors, Names::kNative,
                   nlohmann::json::object());
    write_weights(tmp / (name + "_io.safetensors"), WeightsFormat::kSafetensors,
                  {{"images", images}, {"logits", logits}}, nlohmann::json::object());
    nlohmann::json state = nlohmann::json::array();
    for (const auto& [n, t] : model_state(*model)) state.push_back({n, t.sizes().vec()});
    nets.push_back({{"name", name}, {"model", model_json(m)}, {"state", state}});
  }
  write_file_atomic(tmp / "nets.json", nets.dump());
  const std::string script = std::string(RESNET_SOURCE_DIR) + "/tests/mirror/check_mirror.py";
  const std::string out = tmp / "out.txt";
  EXPECT_EQ(run("PYTHONDONTWRITEBYTECODE=1 " + kPython + " " + script + " --nets " + tmp / "nets.json" + " --weights " +
                tmp.path() + " > " + out + " 2>&1"),
            0)
      << read_text_file(out);
  const std::string text = read_text_file(out);
  size_t compared = 0;
  for (size_t at = text.find("max_abs_diff"); at != std::string::npos; at = text.find("max_abs_diff", at + 1))
    ++compared;
  EXPECT_EQ(compared, families().size()) << text;
  std::printf("%s", text.c_str());
}
