// Training runs end to end: resume gives the same weights, interrupts leave a resumable run,
// bad input writes nothing, a diverged run keeps its last good checkpoint, real data is learnt.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "data/batches.h"
#include "data/cifar10.h"
#include "models/resnet.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/graph_check.h"
#include "train/observers.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "train/sgd.h"
#include "train/trainer.h"
#include "util/errors.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

ExperimentConfig tiny_config(const std::string& data_dir, int64_t iterations) {
  ExperimentConfig c = resnet::testing::tiny_defaults(data_dir, iterations);
  validate(c);
  return c;
}

TrainOptions quiet(const std::string& out) {
  TrainOptions o;
  o.out_dir = out;
  o.progress = false;
  return o;
}

// Loads the weights and momentum buffers of a run's checkpoint.
struct Weights {
  std::vector<at::Tensor> model, momentum;
  int64_t step = 0;
};
Weights weights_of(const std::string& run) {
  CheckpointReader r(run + "/checkpoints/last.ckpt");
  ExperimentConfig c = r.config();
  auto model = make_model(c.model);
  r.load_model(*model);
  Sgd sgd(model->parameters(), {});
  r.load_optimizer(sgd, *model);
  Weights w;
  for (const auto& p : model->parameters()) w.model.push_back(p.detach().clone());
  for (const auto& b : model->buffers()) w.model.push_back(b.detach().clone());
  w.momentum = sgd.momentum_buffers();
  w.step = r.contents().state.step;
  return w;
}

void expect_identical(const Weights& a, const Weights& b) {
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) EXPECT_TRUE(at::equal(a.model[i], b.model[i])) << "tensor " << i;
  ASSERT_EQ(a.momentum.size(), b.momentum.size());
  for (size_t i = 0; i < a.momentum.size(); ++i) EXPECT_TRUE(at::equal(a.momentum[i], b.momentum[i])) << "buffer " << i;
}

std::vector<nlohmann::json> metrics_rows(const std::string& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

class Training : public ::testing::Test {
 protected:
  void SetUp() override { resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100); }
  TempDir tmp;
};

}  // namespace

TEST_F(Training, RunDirectoryHoldsTheContractFiles) {
  ExperimentConfig c = tiny_config(tmp / "data", 20);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  for (const char* f :
       {"config.json", "metrics.jsonl", "metrics.csv", "train.log", "checkpoints/last.ckpt", "summary.json"})
    EXPECT_TRUE(fs::exists(tmp / (std::string("run/") + f))) << f;
  auto rows = metrics_rows(tmp / "run");
  ASSERT_EQ(rows.size(), 2u);  // steps 10 and 20
  for (const char* key :
       {"step", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "images_per_sec", "elapsed_s"})
    EXPECT_TRUE(rows[1].contains(key) && !rows[1][key].is_null()) << key;
  EXPECT_EQ(rows[1]["step"], 20);
  const double err = rows[1]["test_error"];
  EXPECT_TRUE(err >= 0 && err <= 1);
  nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  EXPECT_EQ(summary["final_test_error"], rows[1]["test_error"]);
  EXPECT_EQ(summary["precision"], "fp32");  // the CPU's default
  EXPECT_GT(summary["eval_time_s"].get<double>(), 0.0);
  EXPECT_LT(summary["eval_time_s"].get<double>() + summary["train_time_s"].get<double>(),
            summary["wall_time_s"].get<double>());
  // ResNet-8: stem 464 + stages 4,672 + 13,952 + 55,552 + fc 650
  EXPECT_EQ(summary["parameters"], 75290);
  // config.json is the resolved config, with the data folder made absolute.
  nlohmann::json expected = to_json(c);
  expected["data"]["dir"] = fs::absolute(c.data.dir).lexically_normal().string();
  EXPECT_EQ(read_json_file(tmp / "run/config.json"), expected);
  // metrics.csv has a header and one line per row.
  std::ifstream csv(tmp / "run/metrics.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("step,epoch,lr,train_loss,train_error,test_loss,test_error", 0), 0u);
}

// bf16 autocast is opt-in on the CPU: it really runs (the weights differ from the fp32 run's),
// its loss stays close to fp32's over a short run, and the run says which precision it used.
TEST_F(Training, Bf16OnTheCpuIsOptInAndTracksFp32) {
  ExperimentConfig c = tiny_config(tmp / "data", 20);
  EXPECT_FALSE(resolve_runtime(c.runtime).bf16);  // auto: fp32 on the CPU
  ASSERT_EQ(train(c, quiet(tmp / "fp32")), 0);
  c.runtime.precision = "bf16";
  ASSERT_TRUE(resolve_runtime(c.runtime).bf16);
  ASSERT_EQ(train(c, quiet(tmp / "bf16")), 0);
  EXPECT_EQ(read_json_file(tmp / "bf16/summary.json")["precision"], "bf16");
  Weights a = weights_of(tmp / "fp32"), b = weights_of(tmp / "bf16");
  ASSERT_EQ(a.model.size(), b.model.size());
  bool differs = false;
  for (size_t i = 0; i < a.model.size(); ++i) differs = differs || !at::equal(a.model[i], b.model[i]);
  EXPECT_TRUE(differs) << "bf16 run is bit-identical to fp32: autocast did not run";
  // 20 steps at lr 0.1 on random labels amplify rounding, so the weights are not compared; the
  // loss each run reports at its end is.
  const double fp32_loss = metrics_rows(tmp / "fp32").back()["train_loss"];
  const double bf16_loss = metrics_rows(tmp / "bf16").back()["train_loss"];
  EXPECT_NEAR(bf16_loss, fp32_loss, 0.1 * fp32_loss);
}

TEST_F(Training, ResumingGivesBitIdenticalWeights) {
  ExperimentConfig c = tiny_config(tmp / "data", 24);
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  // 13 steps (lr changes at 12 and 18 lie on both sides), then the rest after a resume.
  ExperimentConfig first = c;
  first.train.iterations = 13;
  ASSERT_EQ(train(first, quiet(tmp / "split")), 0);
  EXPECT_EQ(weights_of(tmp / "split").step, 13);
  ASSERT_EQ(resume(tmp / "split", {"train.iterations=24"}, quiet("")), 0);
  Weights a = weights_of(tmp / "straight"), b = weights_of(tmp / "split");
  EXPECT_EQ(b.step, 24);
  expect_identical(a, b);
}

// data.mean/data.std: the run normalises with them (not with statistics fitted on its images),
// its checkpoint stores them, a resume keeps them, and a resume allowed to change them switches.
TEST_F(Training, AnExplicitNormaliserIsTheOneTheRunUses) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  c.data.mean = {0.485, 0.456, 0.406};
  c.data.std = {0.229, 0.224, 0.225};
  ASSERT_EQ(train(c, quiet(tmp / "explicit")), 0);
  auto stored = [&](const std::string& run) {
    return CheckpointReader(run + "/checkpoints/last.ckpt").contents().normalizer;
  };
  const Normalizer n = stored(tmp / "explicit");
  const at::Tensor mean = at::tensor(std::vector<double>{0.485, 0.456, 0.406}, at::kFloat).view({1, 3, 1, 1});
  const at::Tensor std_ = at::tensor(std::vector<double>{0.229, 0.224, 0.225}, at::kFloat).view({1, 3, 1, 1});
  EXPECT_TRUE(at::allclose(n.mean.reshape({1, 3, 1, 1}), mean, 0, 1e-7)) << n.mean;
  EXPECT_TRUE(at::allclose(n.std.reshape({1, 3, 1, 1}), std_, 0, 1e-7)) << n.std;
  // The weights differ from a run with the fitted normaliser: the inputs really were others.
  ExperimentConfig fitted = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(fitted, quiet(tmp / "fitted")), 0);
  EXPECT_FALSE(at::allclose(stored(tmp / "fitted").mean, n.mean));
  EXPECT_FALSE(at::equal(weights_of(tmp / "fitted").model[0], weights_of(tmp / "explicit").model[0]));
  // A resume keeps the stored normaliser; changing it is refused unless allowed, then applied.
  ASSERT_EQ(resume(tmp / "explicit", {"train.iterations=20"}, quiet("")), 0);
  EXPECT_TRUE(at::equal(stored(tmp / "explicit").mean, n.mean));
  EXPECT_THROW(resume(tmp / "explicit", {"train.iterations=30", "data.mean=[0.5,0.5,0.5]"}, quiet("")), InputError);
  TrainOptions allow = quiet("");
  allow.allow_changes = {"data.mean"};
  ASSERT_EQ(resume(tmp / "explicit", {"train.iterations=30", "data.mean=[0.5,0.5,0.5]"}, allow), 0);
  EXPECT_TRUE(at::allclose(stored(tmp / "explicit").mean.reshape({3}), at::full({3}, 0.5f)));
  EXPECT_TRUE(at::equal(stored(tmp / "explicit").std, n.std));
  // A fitted normaliser: kept bit for bit on resume, even on other training images (a refit
  // there would give other statistics); refitted per pixel when a resume may change
  // data.normalize to "pixel".
  const Normalizer f = stored(tmp / "fitted");
  resnet::testing::write_synthetic_cifar(tmp / "other", 80, 100);  // other images, other statistics
  EXPECT_FALSE(at::allclose(fit_normalizer(load_cifar10(tmp / "other").train.images, "channel").mean, f.mean));
  TrainOptions other_data = quiet("");
  other_data.allow_changes = {"data.dir"};
  ASSERT_EQ(resume(tmp / "fitted", {"train.iterations=20", "data.dir=\"" + (tmp / "other") + "\""}, other_data), 0);
  EXPECT_TRUE(at::equal(stored(tmp / "fitted").mean, f.mean));
  TrainOptions allow_pixel = quiet("");
  allow_pixel.allow_changes = {"data.normalize"};
  ASSERT_EQ(resume(tmp / "fitted", {"train.iterations=30", "data.normalize=\"pixel\""}, allow_pixel), 0);
  EXPECT_EQ(stored(tmp / "fitted").mean.numel(), 3 * 32 * 32);
  EXPECT_EQ(f.mean.numel(), 3);
}

TEST_F(Training, ExistingRunIsNeverOverwrittenWithoutForce) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const auto before = fs::last_write_time(tmp / "run/checkpoints/last.ckpt");
  try {
    train(c, quiet(tmp / "run"));
    FAIL() << "overwrote an existing run";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::last_write_time(tmp / "run/checkpoints/last.ckpt"), before);
  TrainOptions force = quiet(tmp / "run");
  force.force = true;
  EXPECT_EQ(train(c, force), 0);
  EXPECT_EQ(metrics_rows(tmp / "run").size(), 1u);  // the old metrics are gone, not appended to
}

TEST_F(Training, BadInputWritesNothing) {
  ExperimentConfig c = tiny_config(tmp / "nowhere", 10);
  EXPECT_THROW(train(c, quiet(tmp / "run")), InputError);
  EXPECT_FALSE(fs::exists(tmp / "run"));
  c = tiny_config(tmp / "data", 10);
  c.train.batch_size = 1000;  // more than the 320 training images
  EXPECT_THROW(train(c, quiet(tmp / "run")), InputError);
  EXPECT_FALSE(fs::exists(tmp / "run"));
  // An output folder that cannot be made (its parent is a file) is a clear error too.
  std::ofstream(tmp / "afile") << "x";
  try {
    train(tiny_config(tmp / "data", 10), quiet(tmp / "afile/run"));
    FAIL() << "trained into a folder under a file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("afile/run: cannot create"), std::string::npos) << e.what();
  }
}

TEST_F(Training, UnreadableCheckpointsAreClearErrors) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const std::string good = tmp / "run/checkpoints/last.ckpt";
  // Truncated.
  fs::copy_file(good, tmp / "cut.ckpt");
  fs::resize_file(tmp / "cut.ckpt", fs::file_size(good) / 2);
  EXPECT_THROW(CheckpointReader(tmp / "cut.ckpt"), InputError);
  // Foreign: not a zip, and a zip that is not ours.
  std::ofstream(tmp / "foreign.ckpt") << "{\"hello\": 1}";
  EXPECT_THROW(CheckpointReader(tmp / "foreign.ckpt"), InputError);
  EXPECT_THROW(CheckpointReader(tmp / "missing.ckpt"), InputError);
  // A model that does not match: load ResNet-8 weights into ResNet-14.
  CheckpointReader reader(good);
  ModelConfig other = c.model;
  other.depth = 14;
  auto model = make_model(other);
  try {
    reader.load_model(*model);
    FAIL() << "loaded mismatched weights";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
  // Resume refuses to change the model.
  EXPECT_THROW(resume(tmp / "run", {"model.depth=14"}, quiet("")), InputError);
}

TEST_F(Training, DivergedRunStopsAndKeepsTheLastGoodCheckpoint) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  Weights good = weights_of(tmp / "run");
  EXPECT_THROW(resume(tmp / "run", {"train.iterations=40", "train.lr=1e30"}, quiet("")), std::runtime_error);
  Weights after = weights_of(tmp / "run");
  EXPECT_EQ(after.step, 10);
  expect_identical(good, after);
}

// SIGINT mid-run: the step finishes, a checkpoint is written, the exit code is 130, and
// resuming reaches the same weights as a run that was never interrupted.
TEST_F(Training, InterruptLeavesAResumableRun) {
  const char* bin = RESNET_TRAIN_BIN;
  ExperimentConfig c = tiny_config(tmp / "data", 150);
  c.train.checkpoint_every = 1000;  // only the interrupt writes one before the end
  c.train.eval_every = 1000;
  write_file_atomic(tmp / "tiny.json", to_json(c).dump());
  const std::string run = tmp / "run";
  pid_t pid = fork();
  if (pid == 0) {
    std::freopen((tmp / "stdout.txt").c_str(), "w", stdout);
    execl(bin, bin, "--config", (tmp / "tiny.json").c_str(), "--out", run.c_str(), "--no-progress",
          static_cast<char*>(nullptr));
    _exit(99);
  }
  // Wait until training is under way, then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream log(run + "/train.log");
    std::string text((std::istreambuf_iterator<char>(log)), {});
    if (text.find("step 6/") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 130);
  const int64_t stopped = weights_of(run).step;
  EXPECT_GT(stopped, 0);
  EXPECT_LT(stopped, 150);
  std::ifstream out(tmp / "stdout.txt");
  std::string text((std::istreambuf_iterator<char>(out)), {});
  EXPECT_NE(text.find("resnet-train --resume " + run), std::string::npos) << text;

  ASSERT_EQ(resume(run, {}, quiet("")), 0);
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  expect_identical(weights_of(tmp / "straight"), weights_of(run));
}

TEST_F(Training, ResnetEvalReproducesTheTrainersError) {
  const char* bin = RESNET_EVAL_BIN;
  ExperimentConfig c = tiny_config(tmp / "data", 30);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const std::string cmd = std::string(bin) + " --checkpoint " + (tmp / "run") + " --json " + (tmp / "eval.json") +
                          " > " + (tmp / "eval.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  nlohmann::json eval = read_json_file(tmp / "eval.json");
  nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  EXPECT_DOUBLE_EQ(eval["error"].get<double>(), summary["final_test_error"].get<double>());
  EXPECT_EQ(eval["confusion"].size(), 10u);
  EXPECT_EQ(eval["per_class_accuracy"].size(), 10u);
  int64_t total = 0;
  for (const auto& row : eval["confusion"])
    for (const auto& v : row) total += v.get<int64_t>();
  EXPECT_EQ(total, 100);

  // A --json that cannot be written is refused before evaluating (exit 2, no report printed).
  for (const std::string target : {tmp.path(), tmp / "no/such/folder.json"}) {
    const std::string bad =
        std::string(bin) + " --checkpoint " + (tmp / "run") + " --json " + target + " > " + (tmp / "bad.txt") + " 2>&1";
    EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2) << target;
    std::ifstream in(tmp / "bad.txt");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find("confusion"), std::string::npos) << text;
    EXPECT_NE(text.find(target), std::string::npos) << text;
  }
}

// A checkpoint whose metadata claims a huge net (the shapes of 20,000,000 classes, a depth of
// 1,200,002) beside its small tensors is refused by the net's size before anything is built, by
// resnet-eval and resnet-export alike: exit 2 at once, one line naming the file and the key, nothing
// written; past the config's bounds too, since the file's tensors cannot hold such a net.
TEST_F(Training, ResnetEvalAndExportSizeTheNetBeforeBuildingIt) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  CheckpointReader reader(tmp / "run/checkpoints/last.ckpt");
  auto model = make_model(reader.config().model);
  reader.load_model(*model);
  struct Case {
    nlohmann::json model;
    std::string key;
  };
  const std::vector<Case> cases = {
      {{{"num_classes", 20000000}}, "model.num_classes: 20000000 is above the bound"},
      {{{"depth", 1200002}}, "model.depth: 1200002 is above the bound"},
      {{{"num_classes", 20000000}, {"allow_large", true}}, "model.num_classes: resnet-8 has fc.weight [20000000, 64]"},
      {{{"depth", 1200002}, {"allow_large", true}}, "model: resnet-1200002 has "}};
  for (const auto& k : cases) {
    CheckpointContents contents = reader.contents();
    contents.config["model"].update(k.model);
    const std::string bad = tmp / "bad.ckpt";
    save_checkpoint(bad, contents, *model, nullptr);
    for (const std::string& tool : {std::string(RESNET_EVAL_BIN) + " --checkpoint " + bad,
                                    std::string(RESNET_BIN_DIR) + "/resnet-export --checkpoint " + bad + " --out " +
                                        (tmp / "never.safetensors")}) {
      const auto start = std::chrono::steady_clock::now();
      const std::string cmd = tool + " > " + (tmp / "out.txt") + " 2>&1";
      EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2) << tool << ": " << k.model;
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const std::string text = read_text_file(tmp / "out.txt");
      EXPECT_NE(text.find(bad + ": "), std::string::npos) << text;
      EXPECT_NE(text.find(k.key), std::string::npos) << text;
      EXPECT_EQ(text.find('\n'), text.size() - 1) << "not one line: " << text;
      EXPECT_LT(seconds, 10) << text;
      EXPECT_FALSE(fs::exists(tmp / "never.safetensors")) << tool;
    }
  }
}

// A NaN loss at step k stops the run naming step k, although the loop reads the metrics back only
// every 10 steps (the device kept the index); nothing after the last good checkpoint is saved.
TEST_F(Training, ANonFiniteLossIsReportedAtTheStepWhereItHappened) {
  for (int64_t k : {1, 13, 20}) {
    ExperimentConfig c = tiny_config(tmp / "data", 30);
    c.train.log_every = 10;
    const std::string run = tmp / ("run" + std::to_string(k));
    TrainOptions o = quiet(run);
    o.non_finite_loss_at = k;
    try {
      train(c, o);
      ADD_FAILURE() << "step " << k << ": the run did not stop";
    } catch (const InputError& e) {
      ADD_FAILURE() << e.what();
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("the loss of step " + std::to_string(k) + " is not finite"), std::string::npos) << msg;
      EXPECT_NE(msg.find("(read at step " + std::to_string(k <= 10 ? 10 : 20) + ")"), std::string::npos) << msg;
    }
    if (k > 10) EXPECT_EQ(weights_of(run).step, 10) << "the checkpoint before step " << k << " is kept";
  }
}

// The loop hands the observers a typed row; the metrics files get exactly their columns from it.
TEST(Observers, AnEvalRowHoldsEveryMetricsColumn) {
  EvalRow row;
  row.step = 7;
  row.test_error = 0.25;
  nlohmann::json j = to_json(row);
  std::vector<std::string> keys;
  for (const auto& [key, value] : j.items()) keys.push_back(key);
  std::vector<std::string> columns = metrics_columns();
  std::sort(keys.begin(), keys.end());
  std::sort(columns.begin(), columns.end());
  EXPECT_EQ(keys, columns);
  EXPECT_EQ(j["step"], 7);
  EXPECT_EQ(j["test_error"], 0.25);
  EXPECT_TRUE(j["val_error"].is_null());  // no validation split: null, as the files have it
  row.val_error = 0.5;
  EXPECT_EQ(to_json(row)["val_error"], 0.5);
}

// Real CIFAR-10: a small ResNet on 5,000 training images for about a minute must get far below
// the 90% error of chance; a broken pipeline (labels shuffled, augmentation wrong, no update)
// stays near 90%.
TEST(RealData, SmallResNetLearnsCifar10) {
  const char* dir = std::getenv("CIFAR10_DIR");
  if (!dir || !fs::exists(std::string(dir) + "/data_batch_1.bin")) GTEST_SKIP() << "CIFAR10_DIR not set";
  TempDir tmp;
  ExperimentConfig c;
  c.name = "real";
  c.model.depth = 8;
  c.data.dir = dir;
  c.data.train_limit = 5000;
  c.data.test_limit = 2000;
  c.train.batch_size = 64;
  c.train.iterations = 624;  // 8 epochs of 78 steps
  c.train.eval_every = 624;
  c.train.lr_schedule.milestones = {470};
  c.runtime.threads = 1;  // ctest -j2 runs two tests at once on the 2 cores: more threads only wait
  validate(c);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  const double error = summary["final_test_error"];
  std::cout << "real CIFAR-10 test error after 8 epochs on 5k images: " << error << std::endl;
  EXPECT_LT(error, 0.60);
}

// runtime.threads far above the cores (1000 once made a 4-step run spin for ten minutes on 2
// cores) is capped at the cores this process may use, with a warning that the run logs.
TEST(Runtime, ThreadsAboveTheCoresAreCapped) {
  RuntimeConfig r;
  r.device = "cpu";  // (auto on a CUDA build without a GPU adds the note that says so)
  r.threads = 1000;
  const Runtime rt = resolve_runtime(r);
  EXPECT_EQ(rt.threads, usable_cores());
  ASSERT_EQ(rt.warnings.size(), 1u);
  EXPECT_EQ(rt.warnings[0].rfind("runtime.threads: 1000 is more than the", 0), 0u) << rt.warnings[0];
  r.threads = 1;
  EXPECT_EQ(resolve_runtime(r).threads, 1);
  EXPECT_TRUE(resolve_runtime(r).warnings.empty());
  r.threads = 0;
  EXPECT_EQ(resolve_runtime(r).threads, usable_cores());
}

// The first CUDA run's self-check (TrainStep::check_graph) compares steps through the graph with
// eager ones, decides and logs. Its decision is tested here with made-up results: on the CPU there
// is no graph to run (and check_graph does nothing; see below).
namespace {

// Five steps' losses and two weight tensors; `eps` moves the graph side away from eager.
Trajectory trajectory(bool graph, double loss_eps = 0, double weight_eps = 0) {
  Trajectory t;
  t.graph = graph;
  t.losses = {2.30, 2.28, 2.25, 2.21, 2.18};
  t.losses[3] *= 1 + loss_eps;
  at::Tensor w0 = at::linspace(-1, 1, 12).view({3, 4}).to(at::kFloat);
  at::Tensor w1 = at::full({5}, 0.5, at::kFloat);
  w1[2] = w1[2].item<float>() + static_cast<float>(weight_eps * 0.5);  // relative to w1's largest magnitude
  t.params = {w0, w1};
  return t;
}

std::string logged(const GraphVerdict& v) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  sink->set_pattern("%l: %v");
  spdlog::logger log("check", sink);
  log_verdict(v, log);
  return out.str();
}

}  // namespace

TEST(GraphSelfCheck, AgreementWithinTheToleranceKeepsTheGraph) {
  const GraphVerdict v = judge_graph(trajectory(true, 5e-5, 5e-5), trajectory(false));
  EXPECT_TRUE(v.agree) << v.reason;
  EXPECT_NEAR(v.loss_diff, 5e-5, 1e-9);
  EXPECT_NEAR(v.weight_diff, 5e-5, 1e-6);
  EXPECT_EQ(logged(v).rfind("info: CUDA graph self-check: 5 steps through the CUDA graph match 5 eager ones", 0), 0u)
      << logged(v);
  EXPECT_EQ(logged(v).find("eagerly"), std::string::npos);
}

TEST(GraphSelfCheck, ALossOrAWeightBeyondTheToleranceMeansEager) {
  for (const auto& [loss, weight] : {std::pair{2e-4, 0.0}, std::pair{0.0, 2e-4}}) {
    const GraphVerdict v = judge_graph(trajectory(true, loss, weight), trajectory(false));
    EXPECT_FALSE(v.agree) << v.reason;
    EXPECT_GT(std::max(v.loss_diff, v.weight_diff), 1e-4);
    const std::string line = logged(v);
    EXPECT_EQ(line.rfind("warning: CUDA graph self-check: 5 steps through the CUDA graph differ from 5 eager", 0), 0u)
        << line;
    EXPECT_NE(line.find("; training eagerly\n"), std::string::npos) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  }
}

TEST(GraphSelfCheck, NaNFailedCaptureOrOtherStepsMeanEager) {
  Trajectory nan_loss = trajectory(true);
  nan_loss.losses[4] = std::nan("");
  EXPECT_FALSE(judge_graph(nan_loss, trajectory(false)).agree);
  Trajectory nan_weight = trajectory(true);
  nan_weight.params[0][1][1] = std::nanf("");
  EXPECT_FALSE(judge_graph(nan_weight, trajectory(false)).agree);

  Trajectory failed = trajectory(false);  // identical numbers, but eager: the capture failed
  failed.capture_failed = true;
  const GraphVerdict v = judge_graph(failed, trajectory(false));
  EXPECT_FALSE(v.agree);
  EXPECT_NE(logged(v).find("could not be captured in a CUDA graph; training eagerly"), std::string::npos) << logged(v);

  Trajectory shorter = trajectory(true);
  shorter.losses.pop_back();
  EXPECT_FALSE(judge_graph(shorter, trajectory(false)).agree);
  // verify on the CPU compares eager with eager: there the graph must be absent.
  EXPECT_TRUE(judge_graph(trajectory(false), trajectory(false), /*expect_graph=*/false).agree);
  EXPECT_FALSE(judge_graph(trajectory(true), trajectory(false), /*expect_graph=*/false).agree);
}

// On the CPU the self-check is a no-op: no steps run, nothing is logged.
TEST(GraphSelfCheck, IsANoOpOnTheCpu) {
  ExperimentConfig c;
  c.model.depth = 8;
  c.train.batch_size = 8;
  validate(c);
  ResNet model = make_model(c.model);
  Sgd sgd(model->parameters(), {});
  at::Generator gen = at::detail::createCPUGenerator(1);
  const ImageSet set{at::randint(0, 256, {16, 3, 32, 32}, gen, at::kLong).to(at::kByte),
                     at::randint(0, 10, {16}, gen, at::kLong)};
  BatchSource source(set, fit_normalizer(set.images, "channel"), 8, true, 7, c10::Device(c10::kCPU));
  const std::vector<at::Tensor> before = cpu_params(*model);
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>("train", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  Runtime rt;
  rt.cuda_graph = true;  // as a CUDA run asks for it: only the missing device makes it a no-op
  TrainStep step(*model, sgd, source, rt, log.get());
  step.check_graph(0.1);
  EXPECT_EQ(out.str(), "");
  const std::vector<at::Tensor> after = cpu_params(*model);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(at::equal(before[i], after[i])) << "tensor " << i;
}
