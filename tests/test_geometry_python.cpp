// resnet-analyze landscape and hessian checked against PyTorch itself (PyPI's torch in .venv, with
// python/cifar_resnet.py read-only): every landscape point equals PyTorch's loss at θ + αδ + βη
// read from the checkpoint and the directions file; a CIFAR ResNet-20's top Hessian eigenvalue
// agrees with PyTorch's power iteration on the same weights and images within 2 %. A missing
// package is a failure (scripts/test.sh installs them).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "run_support.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;

namespace {

using resnet::testing::kPython;
const std::string kScripts = std::string(RESNET_SOURCE_DIR) + "/tests/analysis/";

class GeometryPython : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(resnet::testing::python_has("torch, safetensors"));
    data = tmp / "data";
    resnet::testing::write_synthetic_cifar(data, 20, 20);  // 100 training images
  }

  // A few SGD steps on the synthetic set: weights and BN statistics that are not the init.
  std::string trained(int depth, const std::string& name, int64_t steps) {
    ExperimentConfig c;
    c.name = name;
    c.model.depth = depth;
    c.data.dir = data;
    c.train.batch_size = 16;
    c.train.iterations = steps;
    c.train.lr = 0.02;
    c.train.eval_every = steps;
    c.train.eval_batch_size = 20;
    c.runtime.threads = 1;
    c.runtime.seed = 3;
    validate(c);
    const std::string out = tmp / name;
    EXPECT_EQ(train(c, resnet::testing::quiet(out)), 0);
    return out;
  }

  // Exit status and output of a command.
  std::pair<int, std::string> run(const std::string& cmd) {
    const int status = std::system((cmd + " > " + (tmp / "cmd.log") + " 2>&1").c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(tmp / "cmd.log")};
  }
  std::pair<int, std::string> analyze(const std::string& args) {
    return run(std::string(RESNET_ANALYZE_BIN) + " " + args + " --data-dir " + data +
               " --device cpu --set runtime.threads=1");
  }
  std::pair<int, std::string> python(const std::string& script, const std::string& args) {
    return run("cd " + kScripts + " && PYTHONDONTWRITEBYTECODE=1 " + kPython + " " + script + " " + args);
  }

  TempDir tmp;
  std::string data;
};

double number_after(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + " ([-0-9.e+]+)"))) return std::nan("");
  return std::stod(m[1]);
}

}  // namespace

TEST_F(GeometryPython, LandscapePointsEqualPyTorchsLossAtThePerturbedWeights) {
  const std::string run_dir = trained(8, "resnet8", 4);
  const std::string ckpt = run_dir + "/checkpoints/last.ckpt";
  // A 2-D surface (conv and fc weights perturbed), and a line with biases and BN included.
  for (const std::string flags : {"--grid 3 --range 0.6", "--kind line --grid 5 --include-bn"}) {
    const std::string out = tmp / ("landscape" + std::to_string(flags.size()));
    auto [rc, text] =
        analyze("landscape --checkpoint " + run_dir + " --images 24 --batch 10 " + flags + " --out " + out);
    ASSERT_EQ(rc, 0) << text;
    std::tie(rc, text) = python("check_landscape.py", "--checkpoint " + ckpt + " --data " + data + " --result " + out);
    EXPECT_EQ(rc, 0) << flags << ": " << text;
    std::printf("%s: %s", flags.c_str(), text.c_str());
  }
}

TEST_F(GeometryPython, ResNet20TopEigenvalueAgreesWithPyTorchsPowerIteration) {
  const std::string run_dir = trained(20, "resnet20", 6);
  const std::string out = tmp / "hessian";
  // Tight stopping (relative change 1e-4, up to 300 iterations) on both sides: see check_hessian.py.
  auto [rc, text] = analyze("hessian --checkpoint " + run_dir +
                            " --images 16 --top-k 1 --tolerance 1e-4 "
                            "--max-iterations 300 --probes 0 --slq-runs 0 --out " +
                            out);
  ASSERT_EQ(rc, 0) << text;
  const double ours = read_json_file(out + "/hessian.json")["subjects"][0]["top_eigenvalues"][0].get<double>();
  std::tie(rc, text) =
      python("check_hessian.py", "--checkpoint " + run_dir + "/checkpoints/last.ckpt --data " + data + " --images 16");
  ASSERT_EQ(rc, 0) << text;
  const double theirs = number_after(text, "top_eigenvalue");
  std::printf("top eigenvalue: resnet-analyze %.6g, PyTorch %.6g\n", ours, theirs);
  ASSERT_TRUE(std::isfinite(theirs)) << text;
  EXPECT_GT(theirs, 0.0);
  EXPECT_LT(std::abs(ours - theirs), 0.02 * std::abs(theirs)) << ours << " vs " << theirs;
}
