// Weights between resnet-train and PyTorch, checked against PyTorch itself as users have it (PyPI's
// torch, torchvision and safetensors at python/requirements.txt's pins, in .venv): the same images
// through both implementations give the same logits, in both directions. A missing package is a
// failure (scripts/test.sh installs them). Torch 1.13 (Debian's python3-torch) still writes files
// that users keep: one test reads those.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <regex>

#include "interop/weights.h"
#include "run_support.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/sgd.h"
#include "train/trainer.h"
#include "util/errors.h"
#include "util/json_io.h"
#include "util/sha256.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using resnet::testing::kPython;
const std::string kScripts = std::string(RESNET_SOURCE_DIR) + "/tests/interop/";

// Runs a command; returns (exit code, stdout + stderr).
std::pair<int, std::string> run(const std::string& cmd, const TempDir& tmp) {
  const std::string log = tmp / "cmd.log";
  const int status = std::system((cmd + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(log)};
}

double max_abs_diff(const std::string& text) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("max_abs_diff ([0-9.e+-]+)"))) return 1e9;
  return std::stod(m[1]);
}

// The logits agree: within 1e-4, or 1e-5 of their largest magnitude (the scripts print "|logit|
// up to S"). Our LibTorch and Python's torch may be different releases, whose fp32 convolutions
// round differently (ResNet-18's logits of ~200 differ by ~2e-4 between 1.13's and 2.11's).
::testing::AssertionResult logits_agree(const std::string& text) {
  std::smatch m;
  const double diff = max_abs_diff(text);
  const double scale = std::regex_search(text, m, std::regex("\\|logit\\| up to ([0-9.e+-]+)")) ? std::stod(m[1]) : 0;
  if (diff <= std::max(1e-4, 1e-5 * scale)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max_abs_diff " << diff << " with |logit| up to " << scale << ": " << text;
}

class InteropPython : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(resnet::testing::python_has("torch, torchvision, safetensors"));
    data = tmp / "data";
    resnet::testing::write_synthetic_cifar(data, 20, 64);  // 100 training images, 64 test images
  }

  // A few SGD steps on the synthetic set: BN statistics and weights that are not the init.
  std::string trained_run(ModelConfig model, const std::string& name, int64_t steps = 3) {
    ExperimentConfig c;
    c.name = name;
    c.model = model;
    c.data.dir = data;
    c.train.batch_size = 16;
    c.train.iterations = steps;
    c.train.lr = 0.01;  // gentle: larger steps on 100 images blow the logits up to 1e3
    c.train.eval_every = steps;
    c.train.eval_batch_size = 64;
    c.runtime.threads = 1;
    c.runtime.seed = 5;
    validate(c);
    const std::string out = tmp / name;
    EXPECT_EQ(train(c, resnet::testing::quiet(out)), 0);
    return out;
  }

  std::string python(const std::string& script, const std::string& args, const std::string& py = kPython) {
    // No __pycache__ folders in the source tree.
    return "cd " + kScripts + " && PYTHONDONTWRITEBYTECODE=1 " + py + " " + script + " " + args;
  }

  // resnet-eval --weights on make_python_weights.py's files in `dir`: Python's logits to 1e-4 and
  // its test error exactly. `configs`: file name (no .pt) -> the config that names its network.
  void expect_python_logits(const std::string& dir, const std::map<std::string, std::string>& configs) {
    for (const auto& [name, config] : configs) {
      const std::string cfg = tmp / (name + ".json"), logits = tmp / (name + "_cpp.safetensors");
      write_file_atomic(cfg, config);
      auto [rc, text] =
          run(std::string(RESNET_EVAL_BIN) + " --weights " + dir + "/" + name + ".pt --config " + cfg + " --data-dir " +
                  data + " --limit 64 --logits " + logits + " --json " + (tmp / "eval.json"),
              tmp);
      ASSERT_EQ(rc, 0) << text;
      EXPECT_NE(text.find("normaliser fitted on the training images"), std::string::npos) << text;
      const at::Tensor ours = read_weights(logits).tensors.at(0).second;
      const at::Tensor theirs = read_weights(dir + "/" + name + "_logits.pt").tensors.at(0).second;
      ASSERT_EQ(ours.sizes(), theirs.sizes());
      const double diff = (ours - theirs).abs().max().item<double>();
      EXPECT_LE(diff, 1e-4) << name;
      EXPECT_DOUBLE_EQ(read_json_file(tmp / "eval.json")["error"].get<double>(),
                       read_json_file(dir + "/" + name + ".json")["error"].get<double>())
          << name;
      std::printf("%s: max |logit diff| %.3g (|logit| up to %.3g)\n", name.c_str(), diff,
                  theirs.abs().max().item<double>());
    }
  }

  TempDir tmp;
  std::string data;
};

ModelConfig model_of(const std::string& family, int depth, const std::string& stem = "auto") {
  ModelConfig m;
  m.family = family;
  m.depth = depth;
  m.stem = stem;
  validate_model(m);
  return m;
}

}  // namespace

// (1) C++ -> Python: exported weights load with torch.load(weights_only=True) and strict=True
// into python/cifar_resnet.py or torchvision, and give resnet-eval's logits to 1e-4.
TEST_F(InteropPython, ExportsLoadIntoPyTorchAndGiveTheSameLogits) {
  struct Case {
    ModelConfig model;
    std::string name, names, ext;
  };
  const std::vector<Case> cases = {
      {model_of("cifar", 20), "resnet20", "native", ".pt"},
      {model_of("cifar", 20), "resnet20", "native", ".safetensors"},
      {model_of("imagenet", 18), "resnet18", "torchvision", ".pt"},
      {model_of("imagenet", 18), "resnet18", "torchvision", ".safetensors"},
  };
  for (const auto& c : cases) {
    // 30 steps: BN's running statistics (momentum 0.1) are then close to the activations' own, so
    // eval-mode logits have a sane scale (after 3 steps ResNet-18's reach 1e5, where fp32 rounding
    // alone exceeds 1e-4).
    const std::string run_dir = fs::exists(tmp / c.name) ? tmp / c.name : trained_run(c.model, c.name, 30);
    const std::string out = tmp / (c.name + c.ext), logits = tmp / (c.name + "_logits.pt");
    auto [rc, text] =
        run(std::string(RESNET_EXPORT_BIN) + " --checkpoint " + run_dir + " --out " + out + " --names " + c.names, tmp);
    ASSERT_EQ(rc, 0) << text;
    std::tie(rc, text) =
        run(std::string(RESNET_EVAL_BIN) + " --checkpoint " + run_dir + " --logits " + logits + " --limit 64", tmp);
    ASSERT_EQ(rc, 0) << text;
    std::tie(rc, text) = run(python("check_export.py", "--weights " + out + " --arch " + c.names + " --data " + data +
                                                           " --logits " + logits),
                             tmp);
    EXPECT_EQ(rc, 0) << c.name << c.ext << ": " << text;
    EXPECT_TRUE(logits_agree(text));
    std::printf("%s%s (%s names): %s", c.name.c_str(), c.ext.c_str(), c.names.c_str(), text.c_str());
  }
}

// (2) Python -> C++: torchvision ResNet-18/50 and python/cifar_resnet.py's ResNet-56 and -20, saved
// by torch.save (OrderedDict, plain dict, the legacy non-zip format), give Python's logits and test
// error in resnet-eval.
TEST_F(InteropPython, PythonWeightsGiveTheSameLogitsInResnetEval) {
  auto [rc, text] = run(python("make_python_weights.py", "--out " + (tmp / "py") + " --data " + data +
                                                             " --only tv_resnet18 tv_resnet50 cifar_resnet56 "
                                                             "cifar_resnet20_legacy evil"),
                        tmp);
  ASSERT_EQ(rc, 0) << text;
  const std::map<std::string, std::string> configs = {
      {"tv_resnet18", R"({"model": {"family": "imagenet", "depth": 18}})"},
      {"tv_resnet50", R"({"model": {"family": "imagenet", "depth": 50}})"},
      {"cifar_resnet56", R"({"model": {"depth": 56}})"},
      {"cifar_resnet20_legacy", R"({"model": {"depth": 20}})"}};
  expect_python_logits(tmp / "py", configs);
  // A pickle that would run os.system when unpickled by pickle.load: refused by name, nothing run.
  std::tie(rc, text) = run("cd " + tmp.path() + " && " + RESNET_EVAL_BIN + " --weights py/evil.pt --config " +
                               (tmp / "cifar_resnet56.json") + " --data-dir " + data,
                           tmp);
  EXPECT_EQ(rc, 2) << text;
  EXPECT_NE(text.find("resnet-eval: error: py/evil.pt: data.pkl: refers to posix.system"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(tmp / "PWNED"));
}

// Files that torch 1.13 wrote (Debian's python3-torch; users of the old releases keep such files):
// its zip and its legacy non-zip format give 1.13's own logits and test error in resnet-eval.
TEST_F(InteropPython, Torch113FilesGiveTheirLogitsInResnetEval) {
  const std::string py113 = "/usr/bin/python3";
  ASSERT_EQ(std::system((py113 + " -c 'import torch, torchvision; assert torch.__version__.startswith(\"1.13\")' "
                                 "> /dev/null 2>&1")
                            .c_str()),
            0)
      << py113 << " has no torch 1.13 (Debian's python3-torch: scripts/install_deps.sh --test)";
  auto [rc, text] = run(
      python("make_python_weights.py",
             "--out " + (tmp / "py113") + " --data " + data + " --only cifar_resnet56 cifar_resnet20_legacy", py113),
      tmp);
  ASSERT_EQ(rc, 0) << text;
  expect_python_logits(tmp / "py113", {{"cifar_resnet56", R"({"model": {"depth": 56}})"},
                                       {"cifar_resnet20_legacy", R"({"model": {"depth": 20}})"}});
}

// torchvision's own ResNet-18 and -50 state_dicts start a run (model.init_from), and its weights go
// back out with --names torchvision into torchvision.models: torch.load(weights_only=True), a strict
// load, resnet-eval's logits, and the file's own weights bit for bit (one step at lr 1e-30, which
// no fp32 weight of these magnitudes can feel, moves only BN's running statistics).
TEST_F(InteropPython, TorchvisionWeightsGoInThroughInitFromAndBackOutIntoTorchvision) {
  auto [rc, text] = run(
      python("make_python_weights.py", "--out " + (tmp / "py") + " --data " + data + " --only tv_resnet18 tv_resnet50"),
      tmp);
  ASSERT_EQ(rc, 0) << text;
  for (const auto& [name, depth] : std::vector<std::pair<std::string, int>>{{"tv_resnet18", 18}, {"tv_resnet50", 50}}) {
    ExperimentConfig c;
    c.name = name;
    c.model = model_of("imagenet", depth);
    c.model.init_from = tmp / ("py/" + name + ".pt");
    c.data.dir = data;
    c.train.batch_size = 16;
    c.train.iterations = 1;
    c.train.lr = 1e-30;
    c.train.weight_decay = 0;
    c.train.eval_every = 1;
    c.train.eval_batch_size = 64;
    c.runtime.threads = 1;
    validate(c);
    const std::string run_dir = tmp / ("run_" + name), out = tmp / (name + "_back.pt"), logits = tmp / "logits.pt";
    ASSERT_EQ(train(c, resnet::testing::quiet(run_dir)), 0);
    std::tie(rc, text) = run(
        std::string(RESNET_EXPORT_BIN) + " --checkpoint " + run_dir + " --out " + out + " --names torchvision", tmp);
    ASSERT_EQ(rc, 0) << text;
    std::tie(rc, text) =
        run(std::string(RESNET_EVAL_BIN) + " --checkpoint " + run_dir + " --logits " + logits + " --limit 64", tmp);
    ASSERT_EQ(rc, 0) << text;
    std::tie(rc, text) =
        run(python("check_export.py", "--weights " + out + " --arch torchvision --data " + data + " --logits " +
                                          logits + " --same-weights " + c.model.init_from),
            tmp);
    EXPECT_EQ(rc, 0) << name << ": " << text;
    EXPECT_TRUE(logits_agree(text));
    EXPECT_NE(text.find("weights as in " + c.model.init_from), std::string::npos) << text;
    std::printf("%s: %s", name.c_str(), text.c_str());
  }
}

// (3) C++ -> Python -> C++: what PyTorch saves back (an OrderedDict) is bit for bit what we exported.
TEST_F(InteropPython, RoundTripThroughPyTorchIsBitIdentical) {
  const std::string run_dir = trained_run(model_of("cifar", 20), "resnet20");
  const std::string out = tmp / "r20.pt", back = tmp / "r20_back.pt", logits = tmp / "logits.pt";
  ASSERT_EQ(run(std::string(RESNET_EXPORT_BIN) + " --checkpoint " + run_dir + " --out " + out, tmp).first, 0);
  ASSERT_EQ(run(std::string(RESNET_EVAL_BIN) + " --checkpoint " + run_dir + " --logits " + logits, tmp).first, 0);
  auto [rc, text] = run(python("check_export.py", "--weights " + out + " --arch native --data " + data + " --logits " +
                                                      logits + " --resave " + back),
                        tmp);
  ASSERT_EQ(rc, 0) << text;
  const WeightsFile a = read_weights(out), b = read_weights(back);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_EQ(a.tensors[i].second.scalar_type(), b.tensors[i].second.scalar_type());
    EXPECT_TRUE(at::equal(a.tensors[i].second, b.tensors[i].second)) << a.tensors[i].first;
  }
  // And into a model: the checkpoint's weights exactly.
  CheckpointReader reader(run_dir + "/checkpoints/last.ckpt");
  auto original = make_model(reader.config().model);
  reader.load_model(*original);
  auto loaded = make_model(reader.config().model);
  load_weights_into(*loaded, back);
  const auto x = model_state(*original), y = model_state(*loaded);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << x[i].first;
}

// (4) Fine-tuning: a 1000-class torchvision ResNet-18 starts a 10-class CIFAR run (cifar stem)
// once its head and stem are skipped; the run records the file and learns.
TEST_F(InteropPython, FineTuneFromA1000ClassTorchvisionCheckpoint) {
  auto [rc, text] = run(
      python("make_python_weights.py", "--out " + (tmp / "py") + " --data " + data + " --only tv_resnet18_imagenet"),
      tmp);
  ASSERT_EQ(rc, 0) << text;
  const std::string weights = tmp / "py/tv_resnet18_imagenet.pt";
  ExperimentConfig c;
  c.model = model_of("imagenet", 18, "cifar");
  c.data.dir = data;
  c.train.batch_size = 20;
  c.train.iterations = 10;
  c.train.eval_every = 5;
  c.train.lr = 0.02;
  c.train.eval_batch_size = 64;
  c.runtime.threads = 1;
  write_file_atomic(tmp / "cfg.json", to_json(c).dump());
  const std::string train_cmd = std::string(RESNET_TRAIN_BIN) + " --config " + (tmp / "cfg.json") +
                                " --no-progress --set model.init_from=" + weights;
  // Without init_skip: the ImageNet stem and head do not fit, and the message lists them.
  std::tie(rc, text) = run(train_cmd + " --out " + (tmp / "refused"), tmp);
  EXPECT_EQ(rc, 2) << text;
  EXPECT_NE(text.find("resnet-train: error: model.init_from: " + weights +
                      ": does not fit resnet-18-imagenet "
                      "(torchvision names): 3 mis-shaped (conv1.weight [64, 3, 7, 7] in the file, [64, 3, 3, 3] in "
                      "the model, fc.weight [1000, 512] in the file, [10, 512] in the model, fc.bias [1000] in the "
                      "file, [10] in the model)"),
            std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(tmp / "refused"));

  std::tie(rc, text) = run(train_cmd + " --set 'model.init_skip=[\"fc\", \"conv1\"]' --out " + (tmp / "run"), tmp);
  ASSERT_EQ(rc, 0) << text;
  const nlohmann::json config = read_json_file(tmp / "run/config.json");
  EXPECT_EQ(config["model"]["init_from"], fs::absolute(weights).lexically_normal().string());
  EXPECT_EQ(config["model"]["init_sha256"], sha256_hex(read_text_file(weights)));
  std::vector<double> losses;
  std::ifstream metrics(tmp / "run/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) losses.push_back(nlohmann::json::parse(line)["train_loss"]);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_LT(losses[1], losses[0]) << "the fine-tune did not learn";
  // The body started from the file: 10 small steps later it is still close to it.
  CheckpointReader reader(tmp / "run/checkpoints/last.ckpt");
  auto model = make_model(reader.config().model);
  reader.load_model(*model);
  at::Tensor start;
  for (const auto& [name, t] : read_weights(weights).tensors)
    if (name == "layer3.0.conv1.weight") start = t;
  ASSERT_TRUE(start.defined());
  const at::Tensor now = model->named_parameters()["block4.conv1.weight"];
  EXPECT_LT((now - start).norm().item<double>(), 0.2 * start.norm().item<double>());
}

// docs/interop.md's "Weights from other code" table: the `build/resnet-eval ...` command of the row
// whose source starts with `source`.
std::string readme_command(const std::string& source) {
  const std::string readme = read_text_file(std::string(RESNET_SOURCE_DIR) + "/docs/interop.md");
  const size_t section = readme.find("## Weights from other code");
  const size_t row = readme.find("\n| " + source, section);
  if (section == std::string::npos || row == std::string::npos) return "";
  const size_t start = readme.find("`build/resnet-eval ", row), end = readme.find('\n', row + 1);
  if (start == std::string::npos || start > end) return "";
  return readme.substr(start + 1, readme.find('`', start + 1) - start - 1);
}

// `command` (a docs/interop.md row's) for `weights` in place of its file, and our binaries and configs.
std::string as_test_command(std::string command, const std::string& weights, const std::string& config) {
  std::smatch m;
  std::regex_search(command, m, std::regex("--weights (\\S+) --config configs/(\\S+)"));
  command = m.prefix().str() + "--weights " + weights + " --config " + RESNET_SOURCE_DIR + "/configs/" +
            (config.empty() ? m[2].str() : config) + m.suffix().str();
  return std::regex_replace(command, std::regex("^build/resnet-eval"), RESNET_EVAL_BIN);
}

// (5) The weights the popular CIFAR codes publish: networks written after each code's published
// architecture (tests/interop/published_models.py), saved as those codes save them, evaluated by
// the docs/interop.md table's command for that code: Python's logits on 64 images, and its test error on
// the first 1,000 real test images when $CIFAR10_DIR is set.
TEST_F(InteropPython, PublishedCodesWeightsGiveTheirLogitsWithTheReadmesCommands) {
  const char* real = std::getenv("CIFAR10_DIR");
  const bool have_real = real && fs::exists(std::string(real) + "/test_batch.bin");
  // The save formats under test: torch.save's zip files and its legacy (pre-1.6) stream, in which
  // akamaster's pretrained_models/*.th were written (published_models.py --formats).
  const std::vector<std::string> formats = {"zip", "legacy"};
  std::string formats_flag;
  for (const auto& f : formats) formats_flag += " " + f;
  const std::string real_flags =
      have_real ? std::string(" --real ") + real + " --real-only akamaster_resnet20 chenyaofo_resnet20" : "";
  auto [rc, text] = run(python("published_models.py",
                               "--out " + (tmp / "py") + " --data " + data + " --formats" + formats_flag + real_flags),
                        tmp);
  ASSERT_EQ(rc, 0) << text;
  struct Case {
    std::string model, source, config;  // config: "" = the row's own
    nlohmann::json model_json;          // what the row's command builds
    bool real = false;                  // also the error on 1,000 real images (one case per scheme)
  };
  const nlohmann::json akamaster = {{"depth", 20}, {"option_a_padding", "split"}};
  const nlohmann::json chenyaofo = {{"depth", 20}, {"shortcut", "B"}};
  const std::vector<Case> cases = {
      {"akamaster_resnet20", "akamaster/pytorch_resnet_cifar10", "", akamaster, true},
      {"akamaster_resnet56",
       "akamaster/pytorch_resnet_cifar10",
       "cifar_resnet56.json",
       {{"depth", 56}, {"option_a_padding", "split"}}},
      {"kuangliu_resnet18", "kuangliu/pytorch-cifar", "", {{"family", "imagenet"}, {"depth", 18}, {"stem", "cifar"}}},
      {"chenyaofo_resnet20", "chenyaofo/pytorch-cifar-models", "", chenyaofo, true},
      {"fork_shortcut_fc", "chenyaofo/pytorch-cifar-models", "", chenyaofo},  // the same network, mixed names
      {"fork_downsample_linear", "chenyaofo/pytorch-cifar-models", "", chenyaofo},
  };
  for (const auto& c : cases) {
    const std::string command = readme_command(c.source);
    ASSERT_FALSE(command.empty()) << "no docs/interop.md row for " << c.source;
    const at::Tensor theirs = read_weights(tmp / ("py/" + c.model) + "_logits.pt").tensors.at(0).second;
    for (const auto& format : formats) {
      // The docs' command on the file DataParallel and a training script wrote ...
      const std::string file = tmp / ("py/" + c.model + "." + format + ".module_state_dict.pt");
      const std::string logits = tmp / "logits.safetensors";
      std::tie(rc, text) = run(as_test_command(command, file, c.config) + " --data-dir " + data +
                                   " --limit 64 --device cpu --logits " + logits,
                               tmp);
      ASSERT_EQ(rc, 0) << file << ": " << text;
      EXPECT_NE(text.find("normaliser data.mean/data.std"), std::string::npos) << text;
      EXPECT_EQ(text.find("note:"), std::string::npos) << "the docs' command misses an option: " << text;
      const at::Tensor ours = read_weights(logits).tensors.at(0).second;
      const double diff = (ours - theirs).abs().max().item<double>();
      EXPECT_LE(diff, 1e-4) << file;
      std::printf("%s.%s: max |logit diff| %.3g (|logit| up to %.3g)\n", c.model.c_str(), format.c_str(), diff,
                  theirs.abs().max().item<double>());
      // ... and the plain state_dict and the {"model": ...} wrapper load the very same tensors.
      auto reference = make_model(config_from_json({{"model", c.model_json}}).model);
      load_weights_into(*reference, file);
      for (const char* saved : {"plain", "module_model"}) {
        auto other = make_model(config_from_json({{"model", c.model_json}}).model);
        load_weights_into(*other, tmp / ("py/" + c.model + "." + format + "." + saved + ".pt"));
        const auto x = model_state(*reference), y = model_state(*other);
        for (size_t i = 0; i < x.size(); ++i)
          EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << saved << " " << x[i].first;
      }
    }
    if (!have_real || !c.real) continue;
    std::tie(rc, text) = run(as_test_command(command, tmp / ("py/" + c.model + ".zip.plain.pt"), c.config) +
                                 " --data-dir " + real + " --limit 1000 --device cpu --json " + (tmp / "eval.json"),
                             tmp);
    ASSERT_EQ(rc, 0) << text;
    const double ours = read_json_file(tmp / "eval.json")["error"];
    const double theirs_error = read_json_file(tmp / ("py/" + c.model + ".json"))["error_real"];
    EXPECT_EQ(std::lround(ours * 1000), std::lround(theirs_error * 1000)) << c.model;  // the same misclassified count
    std::printf("%s: test error on 1,000 real images %.3f (Python %.3f)\n", c.model.c_str(), ours, theirs_error);
  }
  if (!have_real)
    std::printf("SKIPPED (this check only): the same test error on 1,000 real images needs $CIFAR10_DIR\n");
}

// The same files with the options left out: a network the keys do not fit gets the options that
// build it; one they fit but whose code pads and normalises otherwise loads with a note; a
// fine-tune from it says the same; kuangliu's own {"net": ...} wrapper is read through.
TEST_F(InteropPython, PublishedCodesWeightsSayWhichOptionsTheyNeed) {
  auto [rc, text] = run(python("published_models.py", "--out " + (tmp / "py") + " --data " + data +
                                                          " --only akamaster_resnet20 akamaster_resnet56"),
                        tmp);
  ASSERT_EQ(rc, 0) << text;
  const std::string r20 = std::string(RESNET_SOURCE_DIR) + "/configs/cifar_resnet20.json";
  const std::string eval =
      std::string(RESNET_EVAL_BIN) + " --data-dir " + data + " --limit 8 --device cpu --config " + r20;
  const std::string r56 = tmp / "py/akamaster_resnet56.zip.module_state_dict.pt";
  std::tie(rc, text) = run(eval + " --weights " + r56, tmp);
  EXPECT_EQ(rc, 2) << text;
  EXPECT_NE(text.find("resnet-eval: error: " + r56 + ": does not fit resnet-20 (kuangliu names): "), std::string::npos)
      << text;
  EXPECT_NE(text.find("; these keys look like akamaster/pytorch_resnet_cifar10's resnet-56 (option A or a plain net, "
                      "zeros split around the identity channels, trained on mean [0.485,0.456,0.406] std "
                      "[0.229,0.224,0.225]): try --set model.depth=56 --set model.option_a_padding=split --set "
                      "'data.mean=[0.485,0.456,0.406]' --set 'data.std=[0.229,0.224,0.225]'"),
            std::string::npos)
      << text;
  std::printf("%s", text.c_str());
  const std::string a20 = tmp / "py/akamaster_resnet20.zip.plain.pt";
  std::tie(rc, text) = run(eval + " --weights " + a20, tmp);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(
      text.find("resnet-eval: note: " + a20 + ": these keys look like akamaster/pytorch_resnet_cifar10's resnet-20"),
      std::string::npos)
      << text;
  // Fine-tuning from it: the same note where the run starts.
  std::tie(rc, text) = run(std::string(RESNET_TRAIN_BIN) + " --config " + r20 + " --data-dir " + data + " --out " +
                               (tmp / "ft") + " --no-progress --set model.init_from=" + a20 +
                               " --set train.iterations=1 --set train.batch_size=10 --set runtime.threads=1",
                           tmp);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("note: model.init_from: " + a20 + ": these keys look like akamaster"), std::string::npos) << text;
  // kuangliu's checkpoint/ckpt.pth layout, {"net": state_dict, "acc": 95.1, "epoch": 199}: the
  // state_dict under "net" is read through, the same tensors as the plain file.
  std::tie(rc, text) = run("cd " + kScripts + " && PYTHONDONTWRITEBYTECODE=1 " + kPython +
                               " -c 'import torch; torch.save({\"net\": torch.load(\"" +
                               (tmp / "py/akamaster_resnet20.zip.module_model.pt") +
                               "\")[\"model\"], \"acc\": 95.1, \"epoch\": 199}, \"" + (tmp / "ckpt.pth") + "\")'",
                           tmp);
  ASSERT_EQ(rc, 0) << text;
  const nlohmann::json a20_model = {{"model", {{"depth", 20}, {"option_a_padding", "split"}}}};
  auto plain = make_model(config_from_json(a20_model).model);
  auto wrapped = make_model(config_from_json(a20_model).model);
  load_weights_into(*plain, a20);
  load_weights_into(*wrapped, tmp / "ckpt.pth");
  const auto x = model_state(*plain), y = model_state(*wrapped);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << x[i].first;
}

// docs/interop.md's "Using the weights in Python" snippets, run as written next to the files its
// commands produce.
TEST_F(InteropPython, ReadmeSnippetsRunAsWritten) {
  const std::string readme = read_text_file(std::string(RESNET_SOURCE_DIR) + "/docs/interop.md");
  const size_t start = readme.find("## Using the weights in Python");
  ASSERT_NE(start, std::string::npos);
  const size_t end = readme.find("\n## ", start + 3);
  const std::string section = readme.substr(start, end == std::string::npos ? std::string::npos : end - start);
  std::string code;
  std::regex block("```python\n([\\s\\S]*?)```");
  for (std::sregex_iterator it(section.begin(), section.end(), block), last; it != last; ++it) code += (*it)[1].str();
  ASSERT_FALSE(code.empty());
  // The files the section's shell commands make: resnet56.pt (native) and r18.pt (torchvision).
  auto r56 = make_model(model_of("cifar", 56));
  export_weights(*r56, tmp / "resnet56.pt", WeightsFormat::kPt, Names::kNative, {});
  auto r18 = make_model(model_of("imagenet", 18));
  export_weights(*r18, tmp / "r18.pt", WeightsFormat::kPt, Names::kTorchvision, {});
  write_file_atomic(tmp / "snippet.py", code);
  auto [rc, text] = run("cd " + tmp.path() + " && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=" + RESNET_SOURCE_DIR +
                            "/python " + kPython + " snippet.py",
                        tmp);
  EXPECT_EQ(rc, 0) << code << "\n" << text;
}

// A checkpoint (format version 2) read in plain Python with cifar_resnet.read_checkpoint: the
// weights load strictly, the momentum is one buffer per parameter, and the stored normaliser
// gives resnet-eval's logits. And by the safetensors package (safetensors.torch.load_file,
// safe_open(...).metadata()): the same tensors, the same JSON.
TEST_F(InteropPython, CheckpointsReadInPlainPython) {
  const std::string run_dir = trained_run(model_of("cifar", 20), "ckpt20");
  const std::string logits = tmp / "logits.pt";
  ASSERT_EQ(run(std::string(RESNET_EVAL_BIN) + " --checkpoint " + run_dir + " --logits " + logits, tmp).first, 0);
  auto [rc, text] = run(python("check_checkpoint.py", "--checkpoint " + run_dir + "/checkpoints/last.ckpt --data " +
                                                          data + " --logits " + logits),
                        tmp);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_LE(max_abs_diff(text), 1e-4) << text;
  // The safetensors package reads the same file: every tensor equal, the run's JSON in its metadata.
  EXPECT_TRUE(std::regex_search(text, std::regex("safetensors package [0-9.]+: [0-9]+ tensors equal, metadata equal")))
      << text;
}

// docs/formats.md "Checkpoints: tensors and JSON, never code": its Python runs as written on a
// checkpoint at the path it names.
TEST_F(InteropPython, ReadmeCheckpointSnippetRunsAsWritten) {
  const std::string readme = read_text_file(std::string(RESNET_SOURCE_DIR) + "/docs/formats.md");
  const size_t start = readme.find("## Checkpoints: tensors and JSON, never code");
  ASSERT_NE(start, std::string::npos);
  const std::string section = readme.substr(start, readme.find("\n## ", start + 3) - start);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(section, m, std::regex("```python\n([\\s\\S]*?)```")));
  ExperimentConfig c;
  c.model = model_of("cifar", 56);
  at::manual_seed(0);
  auto model = make_model(c.model);
  Sgd sgd(model->parameters(), SgdOptions{});
  CheckpointContents contents;
  contents.config = to_json(c);
  contents.state.step = 123;
  contents.normalizer = {at::rand({1, 3, 1, 1}), at::rand({1, 3, 1, 1}) + 0.5};
  save_checkpoint(tmp / "runs/cifar_resnet56/checkpoints/last.ckpt", contents, *model, &sgd);
  write_file_atomic(tmp / "snippet.py", m[1].str());
  auto [rc, text] = run("cd " + tmp.path() + " && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=" + RESNET_SOURCE_DIR +
                            "/python " + kPython + " snippet.py",
                        tmp);
  EXPECT_EQ(rc, 0) << m[1].str() << "\n" << text;
  EXPECT_NE(text.find("123 ['mean', 'std']"), std::string::npos) << text;
  // The safetensors package's view: every tensor (model, momentum, normaliser) and the same step.
  const size_t tensors = model_state(*model).size() + sgd.momentum_buffers().size() + 2;
  EXPECT_NE(text.find(std::to_string(tensors) + " 123"), std::string::npos) << text;
}
