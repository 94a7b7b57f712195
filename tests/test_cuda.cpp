// The CUDA build (scripts/build.sh --pip: PyPI's torch with CUDA) on whatever machine runs it.
//   CudaOnly.*   need a CUDA device: the whole-step graph against eager steps, a bf16 +
//                channels_last + graph run and its checkpoint read back on the CPU, NCCL over
//                two GPUs. Without a device they are reported as skipped, never as passed, and
//                scripts/test.sh counts them in its summary.
//   CudaBuild.*  a CUDA binary on a machine without a GPU: it trains on the CPU and says so once;
//                runtime.device=cuda is exit 2 with one line and nothing written.
//   Version.*    --version of every tool: LibTorch's version, what is built in, the devices.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "bench/verify.h"
#include "compat/torch_compat.h"
#include "run_support.h"
#include "test_support.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kBinDir = RESNET_BIN_DIR;

std::pair<int, std::string> run(const std::string& cmd, const TempDir& tmp) {
  const std::string log = tmp / "cmd.log";
  const int status = std::system((cmd + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(log)};
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

#define SKIP_WITHOUT_CUDA_DEVICE()                                                                                 \
  if (!compat::cuda_available())                                                                                   \
  GTEST_SKIP() << "needs a CUDA device (" << (compat::cuda_status().built ? "none visible: " : "not a CUDA build") \
               << compat::cuda_status().why_none << ")"

}  // namespace

TEST(CudaOnly, WholeStepGraphMatchesEagerStepsAndFallsBackAfterAFailedCapture) {
  SKIP_WITHOUT_CUDA_DEVICE();
  ExperimentConfig c = resnet::testing::tiny_defaults("", 40);
  c.runtime.device = "cuda";
  const nlohmann::json r = run_verify(c, 20);
  EXPECT_EQ(r["skipped"], 0) << r.dump(2);
  EXPECT_TRUE(r["passed"].get<bool>()) << r.dump(2);
}

TEST(CudaOnly, Bf16GraphRunOnTheGpuEvaluatesAlikeOnTheCpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  TempDir tmp;
  const std::string data = tmp / "data";
  resnet::testing::write_synthetic_cifar(data, 40, 200);
  ExperimentConfig c = resnet::testing::tiny_defaults(data, 60);
  c.runtime.device = "cuda";  // auto: bf16, channels_last, the whole-step graph
  validate(c);
  ASSERT_EQ(train(c, resnet::testing::quiet(tmp / "run")), 0);
  const nlohmann::json summary = nlohmann::json::parse(read_text_file(tmp / "run/summary.json"));
  EXPECT_EQ(summary["cuda_graph"], true) << summary.dump(2);
  const double gpu_error = summary["final_test_error"].get<double>();
  auto [rc, text] =
      run(kBinDir + "/resnet-eval --checkpoint " + (tmp / "run") + " --device cpu --json " + (tmp / "eval.json"), tmp);
  ASSERT_EQ(rc, 0) << text;
  const double cpu_error = nlohmann::json::parse(read_text_file(tmp / "eval.json"))["error"].get<double>();
  // bf16 on the GPU vs fp32 on the CPU: a few of 200 images may change sides.
  EXPECT_NEAR(cpu_error, gpu_error, 0.03) << text;
}

TEST(CudaOnly, NcclAllReduceOverTwoGpus) {
  SKIP_WITHOUT_CUDA_DEVICE();
  if (compat::cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  TempDir tmp;
  const std::string data = tmp / "data";
  resnet::testing::write_synthetic_cifar(data, 40, 100);
  const std::string torchrun = fs::path(resnet::testing::kPython).parent_path() / "torchrun";
  auto [rc, text] =
      run(torchrun + " --nproc-per-node=2 --master-port=" + std::to_string(resnet::testing::free_port()) +
              " --no-python " + kBinDir + "/resnet-train --config " + RESNET_SOURCE_DIR +
              "/configs/quick.json --set model.depth=8 --set train.iterations=20 --set train.eval_every=10"
              " --set runtime.device=cuda --set runtime.dist_backend=nccl --data-dir " +
              data + " --out " + (tmp / "run") + " --no-progress",
          tmp);
  ASSERT_EQ(rc, 0) << text;
  EXPECT_NE(read_text_file(tmp / "run/train.log").find("nccl"), std::string::npos);
}

TEST(CudaBuild, WithoutAGpuTrainsOnTheCpuAndSaysSoOnce) {
  if (!compat::cuda_status().built) GTEST_SKIP() << "not a CUDA build (Debian's LibTorch is CPU-only)";
  if (compat::cuda_available()) GTEST_SKIP() << "this machine has a CUDA device";
  TempDir tmp;
  const std::string data = tmp / "data";
  resnet::testing::write_synthetic_cifar(data, 20, 50);
  auto [rc, text] = run(kBinDir + "/resnet-train --config " + std::string(RESNET_SOURCE_DIR) +
                            "/configs/quick.json --set model.depth=8 --set train.iterations=4 --set train.eval_every=4"
                            " --set runtime.threads=1 --set train.batch_size=16 --data-dir " +
                            data + " --out " + (tmp / "run") + " --no-progress",
                        tmp);
  ASSERT_EQ(rc, 0) << text;
  const std::string note = "this build has CUDA, but sees no CUDA device";
  EXPECT_EQ(count(text, note), 1) << text;
  EXPECT_EQ(count(read_text_file(tmp / "run/train.log"), note), 1);
  const nlohmann::json summary = nlohmann::json::parse(read_text_file(tmp / "run/summary.json"));
  EXPECT_EQ(summary["cuda_graph"], false);
  // The CUDA runtime's own warning (no driver) is caught, not printed beside ours.
  EXPECT_EQ(text.find("CUDA initialization"), std::string::npos) << text;
  std::tie(rc, text) = run(kBinDir + "/resnet-eval --checkpoint " + (tmp / "run") + " --limit 50", tmp);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_EQ(count(text, note), 1) << text;
}

TEST(CudaBuild, DeviceCudaWithoutAGpuIsExit2WithOneLineAndWritesNothing) {
  if (compat::cuda_available()) GTEST_SKIP() << "this machine has a CUDA device";
  TempDir tmp;
  auto [rc, text] = run(kBinDir + "/resnet-train --config " + std::string(RESNET_SOURCE_DIR) +
                            "/configs/quick.json --set runtime.device=cuda --out " + (tmp / "run"),
                        tmp);
  EXPECT_EQ(rc, 2) << text;
  EXPECT_EQ(count(text, "\n"), 1) << text;
  EXPECT_NE(text.find("resnet-train: error: runtime.device: cuda requested, but this "), std::string::npos) << text;
  EXPECT_NE(text.find(compat::cuda_status().built ? "shows no CUDA device" : "build has no CUDA"), std::string::npos)
      << text;
  EXPECT_FALSE(fs::exists(tmp / "run"));
}

TEST(Version, EveryToolNamesLibTorchWhatIsBuiltInAndTheDevices) {
  TempDir tmp;
  const compat::CudaStatus& cuda = compat::cuda_status();
  for (const char* tool : {"resnet-train", "resnet-eval", "resnet-analyze", "resnet-export", "resnet-bench"}) {
    auto [rc, text] = run(kBinDir + "/" + tool + " --version", tmp);
    ASSERT_EQ(rc, 0) << tool << ": " << text;
    EXPECT_TRUE(std::regex_search(text, std::regex(std::string("^") + tool + " \\d+\\.\\d+\\.\\d+\n"))) << text;
    EXPECT_NE(text.find("\nlibtorch: " + compat::torch_version() + "\n"), std::string::npos) << text;
    if (cuda.built) {
      EXPECT_TRUE(std::regex_search(text, std::regex("\ncuda: built in \\(runtime \\d+\\.\\d+\\)\n"))) << text;
      EXPECT_TRUE(std::regex_search(text, std::regex("\ncudnn: built in \\(\\d+\\.\\d+\\.\\d+\\)\n"))) << text;
      EXPECT_TRUE(std::regex_search(text, std::regex("\nnccl: built in \\(\\d+\\.\\d+\\.\\d+\\)\n"))) << text;
    } else {
      EXPECT_NE(text.find("\ncuda: no (a CPU-only LibTorch)\ncudnn: no\nnccl: no\n"), std::string::npos) << text;
    }
    EXPECT_TRUE(std::regex_search(text, std::regex("\ndevices: cpu \\(\\d+ cores\\)"))) << text;
    if (cuda.built && cuda.devices == 0) EXPECT_NE(text.find("; no CUDA device ("), std::string::npos) << text;
    for (int i = 0; i < cuda.devices; ++i)
      EXPECT_NE(text.find("; cuda:" + std::to_string(i) + " "), std::string::npos) << text;
  }
}
