// resnet-export --format onnx, checked by the other side's own code: the ONNX library's Python
// checker and ONNX Runtime (PyPI's onnx and onnxruntime in .venv, as users install them) and OpenCV's
// DNN module (Debian's python3-opencv) run the exported file on the same 64 images as resnet-eval
// and give its logits within 1e-4 (tests/interop/check_onnx.py). These are test dependencies that
// scripts/test.sh installs: a missing one is a failure, not a skip.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "interop/onnx_export.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSource = RESNET_SOURCE_DIR;

std::pair<int, std::string> run(const std::string& cmd, const TempDir& tmp) {
  const std::string log = tmp / "cmd.log";
  const int status = std::system((cmd + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(log)};
}

// A few SGD steps on the synthetic set, so that weights and BN statistics are not the init.
std::string trained_run(const TempDir& tmp, const std::string& data, const std::string& name,
                        const nlohmann::json& model, int64_t steps, double lr) {
  ExperimentConfig c = config_from_json({{"model", model}});
  c.name = name;
  c.data.dir = data;
  c.train.batch_size = 16;
  c.train.iterations = steps;
  c.train.lr = lr;
  c.train.eval_every = steps;
  c.train.eval_batch_size = 64;
  c.runtime.threads = 1;
  c.runtime.seed = 5;
  TrainOptions o;
  o.out_dir = tmp / name;
  o.progress = false;
  o.console = false;
  EXPECT_EQ(train(c, o), 0) << name;
  return o.out_dir;
}

}  // namespace

TEST(OnnxExport, RunsInOnnxRuntimeAndOpenCVWithResnetEvalsLogits) {
  ASSERT_TRUE(onnx_available()) << "this build has no ONNX library: run scripts/install_deps.sh (libonnx-dev)";
  ASSERT_TRUE(resnet::testing::python_has("onnx, onnxruntime, torch"));
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import cv2' > /dev/null 2>&1"), 0)
      << "/usr/bin/python3 needs python3-opencv: run scripts/install_deps.sh --test";
  TempDir tmp;
  const std::string data = tmp / "data";
  resnet::testing::write_synthetic_cifar(data, 20, 64);  // 100 training images, 64 test images
  struct Case {
    std::string name;
    nlohmann::json model;
    int64_t steps;
    double lr;
    std::string flags;
  };
  const std::vector<Case> cases = {
      {"resnet-20", {{"depth", 20}}, 3, 0.01, ""},
      {"plain-20", {{"depth", 20}, {"residual", false}}, 3, 0.01, ""},
      {"preact-bottleneck-20", {{"depth", 20}, {"block", "bottleneck"}, {"preact", true}}, 3, 0.01, ""},
      // Slower steps: ResNet-18 on 100 images at lr 0.01 reaches logits of 1e2-1e3, where fp32
      // rounding alone (another runtime's conv kernels) exceeds 1e-4; at 1e-3 they stay near 10.
      {"resnet-18", {{"family", "imagenet"}, {"depth", 18}}, 30, 1e-3, ""},
      // The other option-A layout, option C, and the normaliser inside the graph (uint8 input).
      {"resnet-20-split-uint8", {{"depth", 20}, {"option_a_padding", "split"}}, 3, 0.01, " --with-normalizer"},
      {"resnet-20-C", {{"depth", 20}, {"shortcut", "C"}}, 3, 0.01, ""},
  };
  std::string check = "cd " + kSource + "/tests/interop && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=" + kSource +
                      "/python " + resnet::testing::kPython + " check_onnx.py --data " + data +
                      " --opencv-python /usr/bin/python3";
  for (const auto& c : cases) {
    const std::string run_dir = trained_run(tmp, data, c.name, c.model, c.steps, c.lr);
    const std::string onnx = tmp / (c.name + ".onnx"), logits = tmp / (c.name + "_logits.pt");
    auto [rc, text] =
        run(std::string(RESNET_EXPORT_BIN) + " --checkpoint " + run_dir + " --out " + onnx + c.flags, tmp);
    ASSERT_EQ(rc, 0) << c.name << ": " << text;
    std::tie(rc, text) = run(
        std::string(RESNET_EVAL_BIN) + " --checkpoint " + run_dir + " --logits " + logits + " --limit 64 --device cpu",
        tmp);
    ASSERT_EQ(rc, 0) << c.name << ": " << text;
    check += " --case " + onnx + " " + logits;
  }
  // One Python for all the files (importing torch, onnx and cv2 takes seconds).
  auto [rc, text] = run(check, tmp);
  EXPECT_EQ(rc, 0) << text;
  std::printf("%s", text.c_str());
  EXPECT_NE(text.find("failed: none"), std::string::npos);
  for (const auto& c : cases) {
    const size_t at = text.find("== " + (tmp / (c.name + ".onnx")));
    ASSERT_NE(at, std::string::npos) << c.name << " was not checked:\n" << text;
    const std::string part = text.substr(at, text.find("==", at + 3) - at);
    for (const char* step : {"onnx checker ok", "onnxruntime max_abs_diff", "onnxruntime batch 3", "opencv"})
      EXPECT_NE(part.find(step), std::string::npos) << c.name << ": no " << step << " in\n" << part;
  }
}

// The file is only written once the checker accepted it, atomically; usage errors are exit 2.
TEST(OnnxExport, FlagsThatDoNotApplyAreUsageErrors) {
  TempDir tmp;
  const std::string exporter = std::string(RESNET_EXPORT_BIN) + " --checkpoint " + (tmp / "none");
  EXPECT_EQ(run(exporter + " --out " + (tmp / "m.onnx") + " --names torchvision", tmp).first, 2);
  EXPECT_EQ(run(exporter + " --out " + (tmp / "m.pt") + " --with-normalizer", tmp).first, 2);
  auto [rc, text] = run(exporter + " --out " + (tmp / "m.onnx"), tmp);
  EXPECT_EQ(rc, 2) << text;  // no such checkpoint
  EXPECT_FALSE(fs::exists(tmp / "m.onnx"));
}
