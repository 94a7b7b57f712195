// Data-parallel training on c10d (Gloo, 2 ranks on localhost): the ranks' weights stay
// identical, the averaged gradient is the mean of the shards' gradients, the ranks' batches
// together are the single-process batch, sharded evaluation equals one process's, a 2-rank run
// interrupted and resumed equals a straight one, a 2-rank checkpoint resumes in one process, a
// dead or hung rank stops the other within the timeout, and torchrun (PyPI's torch, .venv, as users
// have it) launches and restarts it.
//
// Ranks are processes: this binary re-executes itself with RESNET_DIST_WORKER=<mode> and
// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ...), or runs resnet-train.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <map>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "parallel/job.h"
#include "parallel/replay_deadline.h"
#include "eval/evaluate.h"
#include "models/resnet.h"
#include "run_support.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/runtime.h"
#include "train/sgd.h"
#include "train/step.h"
#include "util/errors.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
using namespace resnet::testing;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kBatch = 32;

ExperimentConfig tiny_config(const std::string& data_dir, int64_t iterations) {
  ExperimentConfig c = resnet::testing::tiny_defaults(data_dir, iterations);
  c.name = "dist";
  c.train.batch_size = kBatch;
  c.train.eval_every = 5;
  c.train.checkpoint_every = 2;
  c.train.log_every = 1;
  c.train.lr_schedule.milestones = {iterations / 2};
  c.runtime.dist_timeout_s = 20;
  validate(c);
  return c;
}

// The pieces a rank trains with, built the way the trainer builds them.
struct Rig {
  Cifar10 data;
  Normalizer norm;
  ResNet model{nullptr};
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<BatchSource> source;

  Rig(const std::string& data_dir, Shard shard) {
    const ExperimentConfig c = tiny_config(data_dir, 10);
    at::set_num_threads(1);
    data = load_cifar10(data_dir);
    norm = fit_normalizer(data.train.images, "channel");
    at::manual_seed(static_cast<uint64_t>(c.runtime.seed));
    model = make_model(c.model);
    sgd = std::make_unique<Sgd>(model->parameters(), SgdOptions{});  // momentum 0.9, wd 1e-4
    source = std::make_unique<BatchSource>(data.train, norm, kBatch, true, 7, c10::Device(c10::kCPU), shard);
  }
};

// Raw bytes of tensors, concatenated (float32 / int64 as they are in memory).
void dump(const std::string& path, const std::vector<at::Tensor>& tensors) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& t : tensors) {
    const at::Tensor c = t.detach().contiguous();
    out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
  }
}

// The first 99 test images: a count that 2 ranks do not divide (rank 0 takes 49, rank 1 50),
// evaluated in batches of 20 that divide neither share (single: 4 x 20 + 19; rank 0: 20 + 20 + 9;
// rank 1: 20 + 20 + 10), so no batch of one side is a batch of the other.
constexpr int64_t kOddTestImages = 99, kOddEvalBatch = 20;
ImageSet odd_test_set(const Cifar10& data) {
  return {data.test.images.narrow(0, 0, kOddTestImages), data.test.labels.narrow(0, 0, kOddTestImages)};
}

std::vector<at::Tensor> grads_of(ResNetImpl& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.grad().clone());
  return out;
}

// ---- the worker side: what one rank does in each mode ----------------------------------------
int worker(const std::string& mode) {
  const std::string data_dir = std::getenv("DIST_DATA");
  const std::string out = std::getenv("DIST_OUT");
  Job job(read_launch_env(), std::chrono::seconds(20));
  auto pg = job.connect("gloo", c10::Device(c10::kCPU), std::chrono::seconds(20));
  Rig rig(data_dir, {pg->rank(), pg->size()});
  std::vector<at::Tensor> start = rig.model->parameters();
  pg->broadcast(start, "the test's broadcast");
  auto average = pg->gradient_average(rig.model->parameters(), /*bucket_bytes=*/64 << 10);  // several buckets
  GradientAverage& grads = *average;
  if (mode == "grad") {  // one step's averaged gradient
    Batch b = rig.source->batch(0);
    rig.sgd->zero_grad();
    at::cross_entropy_loss(rig.model->forward(b.images), b.labels).backward();
    grads.run();
    dump(out, grads_of(*rig.model));
    std::ofstream(out + ".buckets") << grads.buckets();
  } else if (mode == "train") {  // N steps of TrainStep with the all-reduce
    Runtime rt;
    TrainStep step(*rig.model, *rig.sgd, *rig.source, rt, nullptr);
    step.set_grad_sync(&grads);
    for (int64_t k = 0; k < 12; ++k) step.run(k, k < 6 ? 0.1 : 0.01);
    std::vector<at::Tensor> state = rig.model->parameters();
    for (const auto& m : rig.sgd->momentum_buffers()) state.push_back(m);
    dump(out, state);
  } else if (mode == "eval") {  // sharded evaluation of the (broadcast) initial weights
    EvalOptions opts(kOddEvalBatch);
    opts.shard = {pg->rank(), pg->size()};
    opts.sum_over_ranks = [&](at::Tensor& t) { pg->sum(t, "the test's evaluation"); };
    const EvalResult r = evaluate(*rig.model, odd_test_set(rig.data), rig.norm, opts);
    dump(out, {r.confusion});
    std::ofstream(out + ".loss") << fmt::format("{:.17g} {}", r.loss, r.count);
  } else {
    return 3;
  }
  return 0;
}

// ---- the test side ------------------------------------------------------------------------
using resnet::testing::free_port;

// Starts `bin args` as rank `rank` of `world` (torchrun's variables), output to files.
pid_t spawn_rank(const std::string& bin, const std::vector<std::string>& args, int rank, int world, int port,
                 const std::string& log_prefix, const std::vector<std::string>& extra_env = {},
                 const std::string& cwd = "") {
  pid_t pid = fork();
  if (pid == 0) {
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(97);
    const std::string out = log_prefix + ".out" + std::to_string(rank),
                      err = log_prefix + ".err" + std::to_string(rank);
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) _exit(98);
    setenv("RANK", std::to_string(rank).c_str(), 1);
    setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    setenv("LOCAL_WORLD_SIZE", std::to_string(world).c_str(), 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    unsetenv("TORCHELASTIC_RESTART_COUNT");
    for (const auto& kv : extra_env) putenv(strdup(kv.c_str()));
    std::vector<std::string> copy = args;
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(99);
  }
  return pid;
}

// Both ranks of a resnet-train job; returns their exit codes.
std::vector<int> run_two(const std::vector<std::string>& args, const std::string& log_prefix) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(RESNET_TRAIN_BIN, args, r, 2, port, log_prefix));
  std::vector<int> codes;
  for (pid_t p : pids) codes.push_back(wait_exit(p));
  return codes;
}

class Dist : public ::testing::Test {
 protected:
  void SetUp() override {
    resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100);  // 320 train, 100 test
    write_file_atomic(tmp / "tiny.json", to_json(tiny_config(tmp / "data", 12)).dump(2));
  }
  // Runs this binary's worker `mode` as 2 ranks; returns the two output files.
  std::vector<std::string> run_workers(const std::string& mode) {
    const int port = free_port();
    std::vector<pid_t> pids;
    for (int r = 0; r < 2; ++r)
      pids.push_back(spawn_rank("/proc/self/exe", {}, r, 2, port, tmp / mode,
                                {"RESNET_DIST_WORKER=" + mode, "DIST_DATA=" + (tmp / "data"),
                                 "DIST_OUT=" + (tmp / (mode + std::to_string(r)))}));
    for (int r = 0; r < 2; ++r) EXPECT_EQ(wait_exit(pids[r]), 0) << read_all(tmp / (mode + ".err" + std::to_string(r)));
    return {tmp / (mode + "0"), tmp / (mode + "1")};
  }
  TempDir tmp;
};

}  // namespace

// The host-side deadline for a replayed (captured) all-reduce, with fake marks standing in for
// the CUDA events: the logic that runs on a GPU with NCCL, checked here on the CPU.
namespace {
struct FakeMarks {
  int records[2] = {0, 0};
  int queries[2] = {0, 0};
  bool stuck[2] = {false, false};  // a mark the GPU never passes (a peer died)
  int ready_after = 0;             // queries before a mark that is not stuck reads as passed
  ReplayDeadline::Probe probe() {
    return {[this](ReplayDeadline::Slot s) { ++records[s]; },
            [this](ReplayDeadline::Slot s) { return !stuck[s] && ++queries[s] > ready_after; }};
  }
};
struct Expired : std::runtime_error {
  using std::runtime_error::runtime_error;
};
ReplayDeadline::Expire throw_expired() {
  return [](std::chrono::milliseconds t) { throw Expired("expired after " + std::to_string(t.count()) + " ms"); };
}
}  // namespace

TEST(ReplayDeadline, ASyncWaitsForTheLastReplayAndExpiresWhenItNeverEnds) {
  FakeMarks marks;
  marks.ready_after = 3;  // the GPU is a little behind: polled, not failed
  ReplayDeadline d(marks.probe(), std::chrono::milliseconds(100), 20, throw_expired());
  d.settle();  // nothing replayed yet: nothing to wait for
  EXPECT_EQ(marks.queries[0], 0);
  d.replayed();
  EXPECT_EQ(marks.records[0], 1);
  EXPECT_NO_THROW(d.settle());
  EXPECT_EQ(marks.queries[0], 4);
  d.settle();  // already passed: not polled again
  EXPECT_EQ(marks.queries[0], 4);

  marks.stuck[0] = true;
  d.replayed();
  const auto start = Clock::now();
  EXPECT_THROW(d.settle(), Expired);
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(waited, 0.1);
  EXPECT_LT(waited, 5.0);
  const int polls = marks.queries[0];
  EXPECT_NO_THROW(d.settle()) << "expired once: the error unwinds without a second wait";
  EXPECT_EQ(marks.queries[0], polls);
}

TEST(ReplayDeadline, AHostThatNeverSyncsIsStoppedWithinTwiceTheCheckInterval) {
  FakeMarks marks;
  marks.stuck[1] = true;  // from the first periodic mark on, the GPU makes no progress
  ReplayDeadline d(marks.probe(), std::chrono::milliseconds(20), 5, throw_expired());
  int replays = 0;
  try {
    for (; replays < 100; ++replays) d.replayed();
  } catch (const Expired&) {
  }
  // Mark at replay 5, checked (and found stuck) at replay 10; the latest mark is never waited on.
  EXPECT_EQ(replays, 9) << "the 10th replay should have expired";
  EXPECT_EQ(marks.records[1], 1);
  EXPECT_EQ(marks.records[0], 10);
  EXPECT_EQ(marks.queries[0], 0);
}

TEST(ReplayDeadline, PollUntilSaysWhetherItHappenedInTime) {
  int calls = 0;
  EXPECT_TRUE(poll_until([&] { return ++calls == 5; }, std::chrono::milliseconds(1000)));
  EXPECT_EQ(calls, 5);
  const auto start = Clock::now();
  EXPECT_FALSE(poll_until([] { return false; }, std::chrono::milliseconds(30)));
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 0.03);
}

TEST(DistEnv, ReadsTorchrunsVariables) {
  std::map<std::string, std::string> vars = {{"RANK", "3"},
                                             {"WORLD_SIZE", "8"},
                                             {"LOCAL_RANK", "1"},
                                             {"LOCAL_WORLD_SIZE", "2"},
                                             {"MASTER_ADDR", "host0"},
                                             {"MASTER_PORT", "29400"},
                                             {"TORCHELASTIC_RESTART_COUNT", "2"},
                                             {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
  auto get = [&](const char* k) -> const char* { return vars.count(k) ? vars[k].c_str() : nullptr; };
  LaunchEnv e = read_launch_env(get);
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "host0");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_EQ(e.restart_count, 2);
  EXPECT_TRUE(e.agent_store);

  vars["RANK"] = "8";  // not below WORLD_SIZE
  try {
    read_launch_env(get);
    FAIL() << "RANK=8 of 8 accepted";
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what()).find("RANK"), std::string::npos) << err.what();
  }
  vars["RANK"] = "1";
  vars.erase("MASTER_PORT");
  EXPECT_THROW(read_launch_env(get), InputError);
}

TEST(DistEnv, ReadsAnSrunStepAndIgnoresABatchScript) {
  std::map<std::string, std::string> vars = {
      {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"}, {"SLURM_JOB_ID", "4242"}};
  auto get = [&](const char* k) -> const char* { return vars.count(k) ? vars[k].c_str() : nullptr; };
  EXPECT_FALSE(read_launch_env(get).active()) << "an sbatch script with --ntasks=2 runs one process";
  vars["SLURM_STEP_NUM_TASKS"] = "2";
  vars["SLURM_STEP_NUM_NODES"] = "1";
  LaunchEnv e = read_launch_env(get);
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 2);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 20000 + 4242);
  vars["SLURM_STEP_NUM_NODES"] = "2";  // several nodes: the first node's address must be given
  EXPECT_THROW(read_launch_env(get), InputError);
  EXPECT_FALSE(read_launch_env([](const char*) -> const char* { return nullptr; }).active());
}

// (c) The ranks' parts of step k, put together, are the single-process batch of step k.
TEST_F(Dist, RanksBatchesTogetherAreTheSingleProcessBatch) {
  Rig one(tmp / "data", {0, 1}), r0(tmp / "data", {0, 2}), r1(tmp / "data", {1, 2});
  EXPECT_EQ(r0.source->batch_size(), kBatch / 2);
  for (int64_t step : {0, 3, 9, 10, 23}) {  // across epochs (10 steps each)
    Batch all = one.source->batch(step), a = r0.source->batch(step), b = r1.source->batch(step);
    EXPECT_TRUE(at::equal(at::cat({a.images, b.images}), all.images)) << "step " << step;
    EXPECT_TRUE(at::equal(at::cat({a.labels, b.labels}), all.labels)) << "step " << step;
  }
  EXPECT_THROW(BatchSource(one.data.train, one.norm, 31, true, 7, c10::Device(c10::kCPU), {0, 2}), InputError);
}

// (b) The all-reduced gradient is the mean of the two shards' gradients computed here.
TEST_F(Dist, AveragedGradientIsTheMeanOfTheShardsGradients) {
  const auto files = run_workers("grad");
  const std::string g0 = read_all(files[0]), g1 = read_all(files[1]);
  ASSERT_FALSE(g0.empty());
  EXPECT_TRUE(g0 == g1) << "the ranks hold different averaged gradients";
  EXPECT_GT(std::stoi(read_all(files[0] + ".buckets")), 1) << "64 KB buckets: ResNet-8 needs several";

  std::vector<std::vector<at::Tensor>> shard_grads;
  for (int r = 0; r < 2; ++r) {
    Rig rig(tmp / "data", {r, 2});
    Batch b = rig.source->batch(0);
    rig.sgd->zero_grad();
    at::cross_entropy_loss(rig.model->forward(b.images), b.labels).backward();
    shard_grads.push_back(grads_of(*rig.model));
  }
  std::vector<at::Tensor> mean;
  for (size_t i = 0; i < shard_grads[0].size(); ++i) mean.push_back((shard_grads[0][i] + shard_grads[1][i]) / 2);
  const std::string expected = [&] {
    dump(tmp / "mean", mean);
    return read_all(tmp / "mean");
  }();
  EXPECT_TRUE(g0 == expected) << "averaged gradient != (g_shard0 + g_shard1) / 2";
  // And it is not just the first shard's: the shards differ.
  dump(tmp / "shard0", shard_grads[0]);
  EXPECT_FALSE(read_all(tmp / "shard0") == expected) << "the two shards have the same gradient";
}

// (a) After 12 steps (lr milestone included) both ranks hold the same weights and momentum.
TEST_F(Dist, RanksHoldBitIdenticalWeightsAfterTraining) {
  const auto files = run_workers("train");
  const std::string w0 = read_all(files[0]), w1 = read_all(files[1]);
  ASSERT_GT(w0.size(), 1000u);
  EXPECT_TRUE(w0 == w1) << "the ranks' weights differ after 12 steps";
  // Training moved them: not the initial weights.
  Rig fresh(tmp / "data", {0, 1});
  std::vector<at::Tensor> init = fresh.model->parameters();
  dump(tmp / "init", init);
  EXPECT_FALSE(read_all(tmp / "init") == w0.substr(0, read_all(tmp / "init").size()))
      << "training did not move the weights";
}

// (g) Sharded evaluation of 99 images over 2 ranks (49 + 50, in batches that differ from one
// process's) gives one process's counts, and its loss within 1e-9.
TEST_F(Dist, ShardedEvaluationEqualsSingleProcessEvaluation) {
  const auto files = run_workers("eval");
  Rig rig(tmp / "data", {0, 1});
  const EvalResult single = evaluate(*rig.model, odd_test_set(rig.data), rig.norm, EvalOptions(kOddEvalBatch));
  ASSERT_EQ(single.count, kOddTestImages);
  ASSERT_EQ(single.confusion.sum().item<int64_t>(), kOddTestImages);
  dump(tmp / "single", {single.confusion});
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(read_all(files[r]) == read_all(tmp / "single")) << "rank " << r << ": confusion matrix differs";
    std::istringstream in(read_all(files[r] + ".loss"));
    double loss = -1;
    int64_t count = -1;
    in >> loss >> count;
    EXPECT_EQ(count, kOddTestImages) << "rank " << r;
    EXPECT_NEAR(loss, single.loss, 1e-9 * std::max(1.0, single.loss)) << "rank " << r;
  }
}

// (d) A 2-rank run SIGTERMed (both ranks, as torchrun forwards it) and resumed with 2 ranks ends
// with the weights and metrics of a straight 2-rank run, bit for bit.
TEST_F(Dist, InterruptedAndResumedTwoRankRunEqualsAStraightOne) {
  const std::vector<std::string> common{"--config", tmp / "tiny.json", "--no-progress"};
  auto args = [&](const std::string& out) {
    std::vector<std::string> a = common;
    a.insert(a.end(), {"--out", out});
    return a;
  };
  const auto straight = run_two(args(tmp / "straight"), tmp / "straight");
  ASSERT_EQ(straight, (std::vector<int>{0, 0})) << read_all(tmp / "straight.err0") << read_all(tmp / "straight.err1");
  const nlohmann::json summary = read_json_file(tmp / "straight/summary.json");
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["dist_backend"], "gloo");
  // The ranks evaluated, and rank 0 saved, the same model (rank 0's BN statistics): one process
  // evaluating the checkpoint gets the run's last test error exactly.
  const std::string eval = std::string(RESNET_EVAL_BIN) + " --checkpoint " + (tmp / "straight") +
                           " --split test --json " + (tmp / "eval.json") + " > " + (tmp / "eval.out") + " 2>&1";
  ASSERT_EQ(std::system(eval.c_str()), 0) << read_all(tmp / "eval.out");
  EXPECT_EQ(read_json_file(tmp / "eval.json")["error"].get<double>(), summary["final_test_error"].get<double>());

  // Slow the run down (threads=1, depth 8 is fast) by interrupting as soon as a checkpoint exists.
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(RESNET_TRAIN_BIN, args(tmp / "cut"), r, 2, port, tmp / "cut"));
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!fs::exists(tmp / "cut/checkpoints/last.ckpt") && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pids[1], SIGTERM);  // one rank only: the ranks agree on it and stop together
  const int c0 = wait_exit(pids[0]), c1 = wait_exit(pids[1]);
  EXPECT_EQ(c0, c1) << "the ranks stopped differently";
  ASSERT_EQ(c0, 143) << read_all(tmp / "cut.err0");  // SIGTERM: checkpoint, exit 143 on every rank
  int64_t cut_step = 0;
  (void)weights_of(tmp / "cut", &cut_step);
  EXPECT_LT(cut_step, 12);
  const auto resumed = run_two({"--resume", tmp / "cut", "--no-progress"}, tmp / "resumed");
  ASSERT_EQ(resumed, (std::vector<int>{0, 0})) << read_all(tmp / "resumed.err0") << read_all(tmp / "resumed.err1");
  const auto a = weights_of(tmp / "straight"), b = weights_of(tmp / "cut");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
  EXPECT_EQ(metric_rows(tmp / "straight"), metric_rows(tmp / "cut"));
}

// (e) A checkpoint written by 2 ranks resumes in one process (and the reverse).
TEST_F(Dist, TwoRankCheckpointResumesInOneProcessAndBack) {
  const auto two =
      run_two({"--config", tmp / "tiny.json", "--set", "train.iterations=4", "--out", tmp / "run", "--no-progress"},
              tmp / "two");
  ASSERT_EQ(two, (std::vector<int>{0, 0})) << read_all(tmp / "two.err0");
  int64_t step = 0;
  const auto after_two = weights_of(tmp / "run", &step);
  EXPECT_EQ(step, 4);
  // One process, no torchrun variables.
  const std::string cmd = std::string(RESNET_TRAIN_BIN) + " --resume " + (tmp / "run") +
                          " --set train.iterations=8 --no-progress > " + (tmp / "one.out") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_all(tmp / "one.out");
  const nlohmann::json one = read_json_file(tmp / "run/summary.json");
  EXPECT_EQ(one["steps"], 8);
  EXPECT_EQ(one["world_size"], 1);
  const auto after_one = weights_of(tmp / "run", &step);
  EXPECT_EQ(step, 8);
  EXPECT_FALSE(at::equal(after_two[0], after_one[0])) << "the single process did not train";
  // And back to 2 ranks.
  const auto back = run_two({"--resume", tmp / "run", "--set", "train.iterations=10", "--no-progress"}, tmp / "back");
  ASSERT_EQ(back, (std::vector<int>{0, 0})) << read_all(tmp / "back.err0");
  EXPECT_EQ(read_json_file(tmp / "run/summary.json")["steps"], 10);
  std::vector<int64_t> steps;
  for (const auto& row : metric_rows(tmp / "run")) steps.push_back(row["step"]);
  EXPECT_EQ(steps, (std::vector<int64_t>{4, 5, 8, 10}));  // every evaluation once, in order
}

// (f) A rank that dies (SIGKILL) or hangs (SIGSTOP) makes the other exit non-zero, with a message
// naming what happened, within the timeout (runtime.dist_timeout_s = 5 here).
TEST_F(Dist, ADeadOrHungRankStopsTheOtherWithinTheTimeout) {
  for (const int sig : {SIGKILL, SIGSTOP}) {
    const std::string name = sig == SIGKILL ? "killed" : "hung";
    const int port = free_port();
    const std::vector<std::string> args{"--config",     tmp / "tiny.json",          "--set", "train.iterations=100000",
                                        "--set",        "runtime.dist_timeout_s=5", "--out", tmp / name,
                                        "--no-progress"};
    std::vector<pid_t> pids;
    for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(RESNET_TRAIN_BIN, args, r, 2, port, tmp / name));
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!fs::exists(tmp / (name + "/checkpoints/last.ckpt")) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    kill(pids[1], sig);
    const auto t0 = Clock::now();
    const int code = wait_exit(pids[0], std::chrono::seconds(60));
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    kill(pids[1], SIGKILL);
    if (sig == SIGSTOP) kill(pids[1], SIGCONT);
    wait_exit(pids[1]);
    const std::string err = read_all(tmp / (name + ".err0"));
    EXPECT_NE(code, -1) << name << ": rank 0 did not stop within 60 s";
    EXPECT_NE(code, 0) << name;
    EXPECT_LT(waited, 5 + 10) << name << ": rank 0 took " << waited << " s";
    EXPECT_NE(err.find("lost contact"), std::string::npos) << name << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << name << ": not one line: " << err;
    // The last checkpoint is whole: the run resumes (in one process).
    EXPECT_NO_THROW(weights_of(tmp / name)) << name;
  }
}

// A refusal on rank 0 (the run folder exists) stops both ranks with exit 2, at once.
TEST_F(Dist, ARefusalOnRankZeroStopsEveryRank) {
  fs::create_directories(tmp / "taken");
  std::ofstream(tmp / "taken/notes.txt") << "mine";
  const auto t0 = Clock::now();
  const auto codes = run_two({"--config", tmp / "tiny.json", "--out", tmp / "taken", "--no-progress"}, tmp / "taken");
  EXPECT_EQ(codes, (std::vector<int>{2, 2})) << read_all(tmp / "taken.err0") << read_all(tmp / "taken.err1");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 15.0);
  EXPECT_NE(read_all(tmp / "taken.err1").find("another rank failed while creating the run folder"), std::string::npos)
      << read_all(tmp / "taken.err1");
  // A refusal inside the start-up on rank 0 alone: the folder is locked by another trainer, which
  // only rank 0 (the one that opens it) finds out. Both ranks stop with exit 2, promptly.
  ASSERT_EQ(
      run_two({"--config", tmp / "tiny.json", "--set", "train.iterations=2", "--out", tmp / "busy", "--no-progress"},
              tmp / "prep"),
      (std::vector<int>{0, 0}));
  {
    const std::string other = std::string(RESNET_TRAIN_BIN) + " --resume " + (tmp / "busy") +
                              " --set train.iterations=100000 --no-progress > " + (tmp / "holder.out") +
                              " 2>&1 & echo $! > " + (tmp / "holder.pid");
    ASSERT_EQ(std::system(other.c_str()), 0);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (read_all(tmp / "holder.out").find("continuing at step") == std::string::npos && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const pid_t holder = std::stoi(read_all(tmp / "holder.pid"));
    const auto t1 = Clock::now();
    const auto busy = run_two({"--resume", tmp / "busy", "--no-progress"}, tmp / "busy2");
    const double waited = std::chrono::duration<double>(Clock::now() - t1).count();
    kill(holder, SIGKILL);
    EXPECT_EQ(busy, (std::vector<int>{2, 2})) << read_all(tmp / "busy2.err0") << read_all(tmp / "busy2.err1");
    EXPECT_NE(read_all(tmp / "busy2.err0").find("pid " + std::to_string(holder)), std::string::npos)
        << read_all(tmp / "busy2.err0");
    EXPECT_LT(waited, 15.0);
  }
  // A global batch the ranks cannot share is refused on every rank.
  const auto odd =
      run_two({"--config", tmp / "tiny.json", "--set", "train.batch_size=31", "--out", tmp / "odd", "--no-progress"},
              tmp / "odd");
  EXPECT_EQ(odd, (std::vector<int>{2, 2}));
  EXPECT_NE(read_all(tmp / "odd.err0").find("train.batch_size"), std::string::npos) << read_all(tmp / "odd.err0");
}

// torchrun of the torch whose LibTorch the binary links launches it (agent store, attempt prefix),
// and with --max-restarts a job whose rank was killed is restarted and resumes by itself, ending as
// a straight run does. The pip build: PyPI's torch at python/requirements.txt's pin (.venv).
// Debian's 1.13 build: Debian's python3-torch, whose 1.13 launcher spells its flags with
// underscores and needs --redirects/--tee on Python 3.11. (A 2.x torchrun's store does not answer
// a 1.13 client: docs/distributed.md.)
TEST_F(Dist, TorchrunLaunchesAndRestartsTheJob) {
  const bool torch1 = TORCH_VERSION_MAJOR < 2;
  const std::string python = torch1 ? "/usr/bin/python3" : kPython;
  ASSERT_EQ(std::system((python + " -c 'import torch.distributed.run' > /dev/null 2>&1").c_str()), 0)
      << python << " has no torch.distributed.run: scripts/install_deps.sh --test (1.13) or scripts/python_env.sh";
  auto torchrun = [&](const std::string& out, std::string extra) {
    if (torch1 && !extra.empty()) extra = "--max_restarts=1";
    const std::string flags = torch1 ? "--nproc_per_node=2 --master_port={} --no_python --redirects=1 --tee=1"
                                     : "--nproc-per-node=2 --master-port={} --no-python";
    return fmt::format("{} -m torch.distributed.run {} {} {} --config {} --out {} --no-progress", python,
                       fmt::format(fmt::runtime(flags), free_port()), extra, RESNET_TRAIN_BIN, tmp / "tiny.json", out);
  };
  const std::string plain = torchrun(tmp / "plain", "") + " > " + (tmp / "plain.log") + " 2>&1";
  ASSERT_EQ(std::system(plain.c_str()), 0) << read_all(tmp / "plain.log");
  EXPECT_EQ(read_json_file(tmp / "plain/summary.json")["world_size"], 2);

  // The same job with one restart allowed; a rank is killed once a checkpoint exists.
  pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = torchrun(tmp / "restarted", "--max-restarts=1") + " > " + (tmp / "restarted.log") + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(99);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!fs::exists(tmp / "restarted/checkpoints/last.ckpt") && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // A rank: its command line starts with the binary (torchrun's own names it later on).
  const std::string kill_cmd =
      "pkill -KILL -n -f '^" + std::string(RESNET_TRAIN_BIN) + " .*--out " + (tmp / "restarted") + "'";
  EXPECT_EQ(std::system(kill_cmd.c_str()), 0) << "no rank to kill";
  ASSERT_EQ(wait_exit(pid, std::chrono::seconds(180)), 0) << read_all(tmp / "restarted.log");
  const std::string log = read_all(tmp / "restarted/train.log");
  EXPECT_NE(log.find("resuming run"), std::string::npos) << log;
  const auto a = weights_of(tmp / "plain"), b = weights_of(tmp / "restarted");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;

  // A restart never resumes a run the command did not start: --out names another run (here one
  // with 12 iterations, the command asks for 13). Both attempts are refused; that run is untouched.
  const std::string summary_before = read_all(tmp / "plain/summary.json");
  const std::string other =
      torchrun(tmp / "plain", "--max-restarts=1") + " --set train.iterations=13 > " + (tmp / "other.log") + " 2>&1";
  EXPECT_NE(std::system(other.c_str()), 0) << read_all(tmp / "other.log");
  EXPECT_NE(read_all(tmp / "other.log").find("run folder exists"), std::string::npos) << read_all(tmp / "other.log");
  EXPECT_EQ(read_all(tmp / "plain/summary.json"), summary_before);
}

// A store that takes the connection and never answers (what LibTorch 1.13's client meets in a 2.x
// torchrun's store) stops the rank within runtime.dist_timeout_s (and a grace of 10 s), exit 1 and
// one line that names the store and the likely cause; without the watchdog it waited forever.
TEST_F(Dist, AStoreThatNeverAnswersStopsTheRankWithinTheTimeout) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 8), 0);  // the kernel completes connections; nothing reads or answers
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const auto start = Clock::now();
  const pid_t pid = spawn_rank(
      RESNET_TRAIN_BIN,
      {"--config", tmp / "tiny.json", "--set", "runtime.dist_timeout_s=2", "--out", tmp / "silent", "--no-progress"}, 0,
      2, ntohs(addr.sin_port), tmp / "silent", {"TORCHELASTIC_USE_AGENT_STORE=True"});
  const int code = wait_exit(pid, std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(listener);
  const std::string err = read_all(tmp / "silent.err0");
  EXPECT_EQ(code, 1) << err;
  EXPECT_LT(seconds, 30.0);
  EXPECT_NE(err.find("rank 0: "), std::string::npos) << err;
  EXPECT_NE(err.find("rendezvous store at 127.0.0.1:" + std::to_string(ntohs(addr.sin_port))), std::string::npos)
      << err;
  // LibTorch 1.13's client waits in a read no timeout of its own ends: only the watchdog stops it,
  // after the timeout and its grace. (2.x's client may give up by itself: either message will do.)
  if (TORCH_VERSION_MAJOR < 2) {
    EXPECT_NE(err.find("did not answer within 2 s (+10 s of grace"), std::string::npos) << err;
    EXPECT_GE(seconds, 12.0);
  }
  EXPECT_FALSE(fs::exists(tmp / "silent/checkpoints")) << "a rank that never joined wrote a run";
}

int main(int argc, char** argv) {
  if (const char* mode = std::getenv("RESNET_DIST_WORKER")) {
    try {
      return worker(mode);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "worker %s: %s\n", mode, e.what());
      return 1;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// ---- agreement points ---------------------------------------------------------------------

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

// Every rank makes the same collectives in the same order (each rank records them: the test
// hook RESNET_RECORD_COLLECTIVES); and the comparison catches a rank that skips an agreement
// point (the test hook RESNET_TEST_SKIP_COLLECTIVE makes rank 1 skip "writing the metrics row").
TEST_F(Dist, EveryRankMakesTheSameCollectivesInTheSameOrder) {
  fs::create_directories(tmp / "rec");
  const int port = free_port();
  std::vector<pid_t> pids;
  const std::vector<std::string> args = {"--config", tmp / "tiny.json", "--out", tmp / "run", "--no-progress"};
  for (int r = 0; r < 2; ++r)
    pids.push_back(
        spawn_rank(RESNET_TRAIN_BIN, args, r, 2, port, tmp / "rec", {"RESNET_RECORD_COLLECTIVES=" + (tmp / "rec")}));
  for (int r = 0; r < 2; ++r) ASSERT_EQ(wait_exit(pids[r]), 0) << read_all(tmp / ("rec.err" + std::to_string(r)));
  const auto rank0 = lines_of(tmp / "rec/rank0.txt"), rank1 = lines_of(tmp / "rec/rank1.txt");
  EXPECT_EQ(rank0, rank1);
  const std::string all = read_all(tmp / "rec/rank0.txt");
  for (const char* point : {"broadcast the start-up broadcast of the weights", "max the stop-signal agreement",
                            "sum the training metrics' all-reduce", "broadcast the BatchNorm statistics' broadcast",
                            "sum the evaluation's all-reduce", "max the weight check", "max writing the checkpoint",
                            "max writing the metrics row", "max writing the progress line", "max writing the summary"})
    EXPECT_NE(all.find(point), std::string::npos) << point;

  // Rank 1 forgets an agreement point: the records part there (the job itself then fails or
  // goes wrong: the ranks' collectives no longer pair up).
  fs::remove_all(tmp / "rec");
  fs::create_directories(tmp / "rec");
  std::vector<std::string> skip_args = args;
  skip_args[3] = tmp / "run2";
  skip_args.insert(skip_args.end(), {"--set", "runtime.dist_timeout_s=5"});
  const int port2 = free_port();
  pids.clear();
  for (int r = 0; r < 2; ++r)
    pids.push_back(spawn_rank(
        RESNET_TRAIN_BIN, skip_args, r, 2, port2, tmp / "skip",
        {"RESNET_RECORD_COLLECTIVES=" + (tmp / "rec"), "RESNET_TEST_SKIP_COLLECTIVE=1:writing the metrics row"}));
  for (pid_t p : pids) wait_exit(p, std::chrono::seconds(120));
  const auto a = lines_of(tmp / "rec/rank0.txt"), b = lines_of(tmp / "rec/rank1.txt");
  size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
  ASSERT_LT(k, a.size()) << "the records agree although rank 1 skipped an agreement point";
  EXPECT_EQ(a[k], "max writing the metrics row") << "the records part elsewhere";
}

// A rank that fails before any process group exists (here: rank 1 runs elsewhere, where the
// relative run folder is not) stops the other at once, not after dist_timeout_s (300 s here).
TEST_F(Dist, AFailureBeforeTheProcessGroupStopsEveryRankAtOnce) {
  fs::create_directories(tmp / "a");
  fs::create_directories(tmp / "b");
  ExperimentConfig c = tiny_config(tmp / "data", 4);
  ASSERT_EQ(train(c, quiet(tmp / "a/run")), 0);
  const int port = free_port();
  const auto start = Clock::now();
  std::vector<pid_t> pids;
  const std::vector<std::string> args = {"--resume", "run", "--set", "train.iterations=8", "--no-progress"};
  for (int r = 0; r < 2; ++r)
    pids.push_back(spawn_rank(RESNET_TRAIN_BIN, args, r, 2, port, tmp / "early", {}, r == 0 ? tmp / "a" : tmp / "b"));
  std::vector<int> codes;
  for (pid_t p : pids) codes.push_back(wait_exit(p, std::chrono::seconds(200)));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(codes, (std::vector<int>{2, 2})) << read_all(tmp / "early.err0") << read_all(tmp / "early.err1");
  EXPECT_LT(seconds, 30) << "the failure did not reach rank 0 at once";
  EXPECT_NE(read_all(tmp / "early.err1").find("run: not a run folder"), std::string::npos)
      << read_all(tmp / "early.err1");
  EXPECT_NE(read_all(tmp / "early.err0").find("another rank failed while reading the checkpoint"), std::string::npos)
      << read_all(tmp / "early.err0");
}

// A write that fails on rank 0 only (its metrics file cannot be appended to) stops every rank,
// each with its own message: rank 0 names the file, rank 1 says what rank 0 was doing.
TEST_F(Dist, AFailedWriteOnRankZeroStopsEveryRankWithItsOwnMessage) {
  ExperimentConfig c = tiny_config(tmp / "data", 200);
  write_file_atomic(tmp / "long.json", to_json(c).dump(2));
  const int port = free_port();
  std::vector<pid_t> pids;
  const std::vector<std::string> args = {"--config", tmp / "long.json", "--out", tmp / "run", "--no-progress"};
  for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(RESNET_TRAIN_BIN, args, r, 2, port, tmp / "write"));
  // Before the first evaluation (step 5): metrics.jsonl becomes a folder, which cannot be appended to.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!fs::exists(tmp / "run/config.json") && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  fs::create_directories(tmp / "run/metrics.jsonl");
  std::vector<int> codes;
  for (pid_t p : pids) codes.push_back(wait_exit(p, std::chrono::seconds(120)));
  const std::string err0 = read_all(tmp / "write.err0"), err1 = read_all(tmp / "write.err1");
  EXPECT_EQ(codes, (std::vector<int>{1, 1})) << err0 << err1;
  EXPECT_NE(err0.find("metrics.jsonl"), std::string::npos) << err0;
  EXPECT_NE(err1.find("another rank failed while writing the metrics row"), std::string::npos) << err1;
}
