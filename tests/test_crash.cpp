// Run folders that survive crashes: SIGKILL at random moments (also mid-checkpoint) and resume
// gives the uninterrupted run's weights bit for bit; a full disk is a clear error that keeps the
// previous checkpoint; two trainers cannot share a folder; a resume cannot silently change what
// the run computes.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "models/resnet.h"
#include "run_support.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/sgd.h"
#include "train/trainer.h"
#include "util/errors.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
using namespace resnet::testing;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

ExperimentConfig tiny_config(const std::string& data_dir, int64_t iterations) {
  ExperimentConfig c = resnet::testing::tiny_defaults(data_dir, iterations);
  c.name = "crash";
  c.train.checkpoint_every = 2;  // many checkpoint writes: many chances to be killed during one
  c.train.log_every = 1;
  c.train.lr_schedule.milestones = {iterations / 2};
  c.runtime.seed = 5;
  validate(c);
  return c;
}

void expect_identical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
}

// Starts resnet-train with `args`; stdout and stderr go to files in `dir`.
pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err,
            rlim_t fsize_limit = RLIM_INFINITY) {
  pid_t pid = fork();
  if (pid == 0) {
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) _exit(98);
    if (fsize_limit != RLIM_INFINITY) {
      // A full disk, as the process sees it: writes past the limit fail with EFBIG.
      std::signal(SIGXFSZ, SIG_IGN);
      rlimit lim{fsize_limit, fsize_limit};
      setrlimit(RLIMIT_FSIZE, &lim);
    }
    std::vector<char*> argv;
    std::string bin = RESNET_TRAIN_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(99);
  }
  return pid;
}

// Kills a spawned trainer when the test leaves early (a failed ASSERT).
struct KillOnExit {
  pid_t pid;
  ~KillOnExit() {
    if (pid > 0 && kill(pid, 0) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

class Crash : public ::testing::Test {
 protected:
  void SetUp() override { resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100); }
  TempDir tmp;
};

}  // namespace

// Lines of `path` from byte `offset` on that report a training step ("step N/").
int step_lines_after(const std::string& path, size_t offset) {
  const std::string text = read_all(path);
  int n = 0;
  for (size_t at = text.find("step ", std::min(offset, text.size())); at != std::string::npos;
       at = text.find("step ", at + 1))
    n += (at + 5 < text.size() && std::isdigit(static_cast<unsigned char>(text[at + 5]))) ? 1 : 0;
  return n;
}

// The run is SIGKILLed several times, at moments tied to its progress (after a random number of
// its steps, plus a random delay) and, first, the moment a checkpoint's temp file appears (a kill
// during the write: the temp file outlives the process only then); it is resumed each time. Its
// final weights, momentum and BN statistics equal an uninterrupted run's bit for bit, and so do
// its metrics rows.
TEST_F(Crash, SigkillAnywhereThenResumeIsBitExact) {
  ExperimentConfig c = tiny_config(tmp / "data", 60);
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  write_file_atomic(tmp / "crash.json", to_json(c).dump());

  const std::string run = tmp / "run";
  const std::string log = run + "/train.log";
  const std::string tmp_ckpt = run + "/checkpoints/last.ckpt.tmp";
  std::mt19937 rng(12345);
  int kills = 0, kills_mid_write = 0, attempts = 0;
  bool done = false;
  while (!done && attempts < 40) {
    ++attempts;
    std::error_code ec;
    fs::remove(tmp_ckpt, ec);  // left by the last kill: only a new one proves a kill mid-write
    const size_t log_at = fs::exists(log) ? fs::file_size(log) : 0;
    std::vector<std::string> args = fs::exists(run + "/config.json")
                                        ? std::vector<std::string>{"--resume", run}
                                        : std::vector<std::string>{"--config", tmp / "crash.json", "--out", run};
    args.push_back("--no-progress");
    const pid_t pid = spawn(args, tmp / "out.txt", tmp / "err.txt");
    if (kills >= 6) {
      ASSERT_EQ(wait_exit(pid), 0) << read_all(tmp / "err.txt");
      done = true;
      break;
    }
    const bool aim_at_write = kills_mid_write == 0;
    const int after_steps = 1 + static_cast<int>(rng() % 8);
    const auto delay = std::chrono::microseconds(rng() % 30000);
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    bool exited = false;
    while (Clock::now() < deadline) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {  // finished before the moment came
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_all(tmp / "err.txt");
        exited = done = true;
        break;
      }
      if (aim_at_write ? fs::exists(tmp_ckpt) : step_lines_after(log, log_at) >= after_steps) break;
      std::this_thread::sleep_for(std::chrono::microseconds(aim_at_write ? 100 : 2000));
    }
    if (exited) break;
    if (!aim_at_write) std::this_thread::sleep_for(delay);
    kill(pid, SIGKILL);
    if (wait_exit(pid) != 128 + SIGKILL) {
      done = true;  // it had finished just before the kill
      break;
    }
    ++kills;
    if (fs::exists(tmp_ckpt)) ++kills_mid_write;
    // After every kill the folder holds either no checkpoint yet or a complete one.
    if (fs::exists(run + "/checkpoints/last.ckpt")) EXPECT_NO_THROW(weights_of(run));
  }
  ASSERT_TRUE(done);
  EXPECT_GE(kills, 4) << "the run ended before it could be killed often enough";
  EXPECT_GE(kills_mid_write, 1) << "no kill landed during a checkpoint write";
  int64_t step = 0;
  std::vector<at::Tensor> resumed = weights_of(run, &step);
  EXPECT_EQ(step, 60);
  expect_identical(weights_of(tmp / "straight"), resumed);
  EXPECT_EQ(metric_rows(tmp / "straight"), metric_rows(run));
  EXPECT_TRUE(fs::exists(run + "/summary.json"));
  EXPECT_FALSE(fs::exists(tmp_ckpt));
}

// Stopped after its last checkpoint but before summary.json: a resume does the final evaluation
// and writes the summary instead of calling the run complete.
TEST_F(Crash, ResumeAfterTheLastCheckpointWritesTheSummary) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  fs::remove(tmp / "run/summary.json");
  ASSERT_EQ(resume(tmp / "run", {}, quiet()), 0);
  const nlohmann::json again = read_json_file(tmp / "run/summary.json");
  EXPECT_EQ(again["final_test_error"], summary["final_test_error"]);
  EXPECT_EQ(again["steps"], 10);
  // With the summary there, the run is complete and a resume changes nothing.
  const auto written = fs::last_write_time(tmp / "run/summary.json");
  ASSERT_EQ(resume(tmp / "run", {}, quiet()), 0);
  EXPECT_EQ(fs::last_write_time(tmp / "run/summary.json"), written);
}

// The name makes the default run folder runs/<name>; one that would leave runs/ is refused
// before anything is read or written. Stored configs are not held to it.
TEST_F(Crash, ADefaultRunFolderNeedsAPlainName) {
  for (const char* name : {"", ".", "..", "../elsewhere", "a/b", "/abs", "back\\slash", "tab\there"}) {
    ExperimentConfig c = tiny_config(tmp / "nowhere", 10);
    c.name = name;
    try {
      train(c, quiet());
      ADD_FAILURE() << "accepted name " << name;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("name: ", 0), 0u) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists("runs/elsewhere"));
  EXPECT_FALSE(fs::exists("elsewhere"));
  EXPECT_NO_THROW(config_from_json({{"name", "old/run"}}));
}

// Killed before its first checkpoint (only config.json and the log exist): --resume starts it
// again from step 0 with its own config.
TEST_F(Crash, ResumeBeforeTheFirstCheckpointStartsOver) {
  ExperimentConfig c = tiny_config(tmp / "data", 12);
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  fs::remove_all(tmp / "run/checkpoints");
  fs::remove(tmp / "run/metrics.jsonl");
  fs::remove(tmp / "run/summary.json");
  fs::create_directories(tmp / "run/checkpoints");
  std::ofstream(tmp / "run/checkpoints/last.ckpt.tmp") << "half a checkpoint";
  ASSERT_EQ(resume(tmp / "run", {}, quiet()), 0);
  expect_identical(weights_of(tmp / "straight"), weights_of(tmp / "run"));
  EXPECT_EQ(metric_rows(tmp / "straight"), metric_rows(tmp / "run"));
  // An empty folder is not a run.
  fs::create_directories(tmp / "empty");
  EXPECT_THROW(resume(tmp / "empty", {}, quiet()), InputError);
}

// A write error while checkpointing (here: the file size limit, as a full disk or a quota
// behaves) is exit 1 with one line naming the checkpoint; the previous checkpoint is intact and
// the run resumes from it to the same weights as a run that never failed.
TEST_F(Crash, FullDiskKeepsThePreviousCheckpoint) {
  ExperimentConfig c = tiny_config(tmp / "data", 20);
  c.train.checkpoint_every = 10;
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  c.train.iterations = 10;
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const std::vector<at::Tensor> before = weights_of(tmp / "run");
  const auto ckpt_size = fs::file_size(tmp / "run/checkpoints/last.ckpt");
  ASSERT_GT(ckpt_size, 200u * 1024);  // so that a 100 KiB limit stops the next one

  const pid_t pid = spawn({"--resume", tmp / "run", "--set", "train.iterations=20", "--no-progress"}, tmp / "out.txt",
                          tmp / "err.txt", 100 * 1024);
  EXPECT_EQ(wait_exit(pid), 1);
  const std::string err = read_all(tmp / "err.txt");
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("checkpoints/last.ckpt: write failed (File too large)"), std::string::npos) << err;
  EXPECT_NE(err.find("previous file is kept"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(tmp / "run/checkpoints/last.ckpt.tmp"));
  int64_t step = 0;
  expect_identical(before, weights_of(tmp / "run", &step));
  EXPECT_EQ(step, 10);

  ASSERT_EQ(resume(tmp / "run", {"train.iterations=20"}, quiet()), 0);
  expect_identical(weights_of(tmp / "straight"), weights_of(tmp / "run"));
}

// write_file_atomic on a full disk: the old file stays whole, no temp file is left.
TEST_F(Crash, AtomicWriteErrorLeavesTheOldFile) {
  const std::string path = tmp / "file.json";
  write_file_atomic(path, "old\n");
  pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      write_file_atomic(path, std::string(10000, 'x'));
      _exit(10);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      _exit(msg.find(path + ": write failed (File too large)") != std::string::npos ? 0 : 11);
    }
  }
  EXPECT_EQ(wait_exit(pid), 0);
  EXPECT_EQ(read_all(path), "old\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_THROW(write_file_atomic(tmp / "no/such/folder/x.json", "x"), std::runtime_error);
}

// While one process trains in a folder, a second --resume or --force there is refused (exit 2)
// naming the first one's pid; the first one finishes unharmed.
TEST_F(Crash, SecondTrainerOnTheSameFolderIsRefused) {
  ExperimentConfig c = tiny_config(tmp / "data", 100000);
  c.train.checkpoint_every = 50;
  c.train.eval_every = 1000;
  write_file_atomic(tmp / "long.json", to_json(c).dump());
  const std::string run = tmp / "run";
  const pid_t first =
      spawn({"--config", tmp / "long.json", "--out", run, "--no-progress"}, tmp / "out1.txt", tmp / "err1.txt");
  KillOnExit guard{first};
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && read_all(run + "/train.log").find("step 3/") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_NE(read_all(run + "/train.log").find("step 3/"), std::string::npos);

  const std::string pid_text = "pid " + std::to_string(first);
  for (const auto& args : {std::vector<std::string>{"--resume", run},
                           std::vector<std::string>{"--config", tmp / "long.json", "--out", run, "--force"}}) {
    const pid_t second = spawn(args, tmp / "out2.txt", tmp / "err2.txt");
    EXPECT_EQ(wait_exit(second, std::chrono::seconds(60)), 2) << "the second trainer was not refused";
    const std::string err = read_all(tmp / "err2.txt");
    EXPECT_NE(err.find(pid_text), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  try {  // in-process too: the lock is per open file, not per process
    resume(run, {}, quiet());
    FAIL() << "resumed a run another process trains";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(pid_text), std::string::npos) << e.what();
  }
  kill(first, SIGINT);
  EXPECT_EQ(wait_exit(first, std::chrono::seconds(60)), 130);
  guard.pid = -1;
  int64_t stopped = 0;
  EXPECT_NO_THROW(weights_of(run, &stopped));
  // Free again once the first one has gone.
  EXPECT_EQ(resume(run, {"train.iterations=" + std::to_string(stopped + 3)}, quiet()), 0);
  weights_of(run, &stopped);
  EXPECT_GT(stopped, 3);
}

// --resume --set may change the run's length, schedule, cadence and runtime; anything that
// changes what the run computes (batch, seed, data, model, optimizer) is exit 2 naming the key,
// with nothing written, unless --allow-change names it, and then it is recorded.
TEST_F(Crash, ResumeRefusesChangesThatRedefineTheRun) {
  ExperimentConfig c = tiny_config(tmp / "data", 10);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const std::string config_before = read_all(tmp / "run/config.json");
  const auto ckpt_time = fs::last_write_time(tmp / "run/checkpoints/last.ckpt");
  for (const std::string set : {"train.batch_size=16", "runtime.seed=9", "data.augment=false", "data.train_limit=100",
                                "data.normalize=pixel", "data.val_size=32", "model.depth=14", "train.momentum=0.5"}) {
    const std::string key = set.substr(0, set.find('='));
    try {
      resume(tmp / "run", {"train.iterations=20", set}, quiet());
      ADD_FAILURE() << "resume accepted " << set;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(key + ": a resumed run cannot change it", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("--allow-change " + key), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(read_all(tmp / "run/config.json"), config_before);
  EXPECT_EQ(fs::last_write_time(tmp / "run/checkpoints/last.ckpt"), ckpt_time);

  // Other CIFAR-10 files are refused; the same files in another folder are fine.
  resnet::testing::write_synthetic_cifar(tmp / "other", 64, 101);
  TrainOptions other = quiet();
  other.data_dir = tmp / "other";
  try {
    resume(tmp / "run", {"train.iterations=20"}, other);
    ADD_FAILURE() << "resumed on other data";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("data.dir: the CIFAR-10 files in", 0), 0u) << e.what();
  }
  fs::copy(tmp / "data", tmp / "moved");
  TrainOptions moved = quiet();
  moved.data_dir = tmp / "moved";
  ASSERT_EQ(resume(tmp / "run", {"train.iterations=14", "runtime.threads=1", "train.lr=0.05"}, moved), 0);
  bool moved_recorded = false;
  const nlohmann::json after_move = read_json_file(tmp / "run/config.json");
  for (const auto& change : after_move["resume_changes"])
    moved_recorded = moved_recorded || (change["key"] == "data.dir" && change["forced"] == false &&
                                        change["to"] == fs::absolute(tmp / "moved").lexically_normal().string());
  EXPECT_TRUE(moved_recorded) << read_all(tmp / "run/config.json");

  // --allow-change lets a key through and the run records it.
  TrainOptions allow = quiet();
  allow.allow_changes = {"train.batch_size"};
  ASSERT_EQ(resume(tmp / "run", {"train.iterations=20", "train.batch_size=16"}, allow), 0);
  nlohmann::json config = read_json_file(tmp / "run/config.json");
  EXPECT_EQ(config["train"]["batch_size"], 16);
  bool recorded = false;
  for (const auto& change : config["resume_changes"])
    recorded = recorded || (change["key"] == "train.batch_size" && change["from"] == 32 && change["to"] == 16 &&
                            change["step"] == 14 && change["forced"] == true);
  EXPECT_TRUE(recorded) << config["resume_changes"].dump();
  EXPECT_NE(read_all(tmp / "run/train.log").find("resume changes train.batch_size: 32 -> 16 (--allow-change)"),
            std::string::npos);
  // The history survives further resumes, and resnet-eval still reads the run.
  ASSERT_EQ(resume(tmp / "run", {"train.iterations=22"}, quiet()), 0);
  EXPECT_GE(read_json_file(tmp / "run/config.json")["resume_changes"].size(), 3u);
  EXPECT_NO_THROW(weights_of(tmp / "run"));
  // An --allow-change that names no key is an error too.
  TrainOptions typo = quiet();
  typo.allow_changes = {"train.batchsize"};
  EXPECT_THROW(resume(tmp / "run", {"train.iterations=30"}, typo), InputError);
}

// A run without a checkpoint resumes from its config.json; a damaged change list there is an
// InputError naming the file, not a JSON exception.
TEST_F(Crash, DamagedChangeListInConfigJsonIsAClearError) {
  ExperimentConfig c = tiny_config(tmp / "data", 4);
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  fs::remove_all(tmp / "run/checkpoints");
  nlohmann::json config = read_json_file(tmp / "run/config.json");
  config["resume_changes"] = 7;
  write_file_atomic(tmp / "run/config.json", config.dump());
  try {
    resume(tmp / "run", {}, quiet());
    FAIL() << "accepted a damaged resume_changes";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: resume_changes"), std::string::npos) << e.what();
  }
}
