// resnet-bench as a user runs it: each mode prints one JSON object with its timings, and bad
// flags or configs exit 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "bench/verify.h"
#include "util/json_io.h"

using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct BenchRun {
  int exit_code = -1;
  std::string out, err;
};

// Runs resnet-bench with `args` (shell words), TMPDIR pointing into `tmp`; captures both streams.
BenchRun bench(const TempDir& tmp, const std::string& args) {
  fs::create_directories(tmp / "tmpdir");
  const std::string cmd = "TMPDIR=" + (tmp / "tmpdir") + " " + RESNET_BENCH_BIN + " " + args + " > " +
                          (tmp / "out.txt") + " 2> " + (tmp / "err.txt");
  const int status = std::system(cmd.c_str());
  BenchRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = resnet::read_text_file(tmp / "out.txt");
  r.err = resnet::read_text_file(tmp / "err.txt");
  return r;
}

// The one line a mode prints, parsed; the common keys checked.
nlohmann::json parse_report(const BenchRun& r, const std::string& mode) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << r.out;
  if (!j.is_object()) return nlohmann::json::object();
  EXPECT_EQ(j["mode"], mode);
  EXPECT_EQ(j["model"], "resnet-8");
  EXPECT_EQ(j["batch"], 16);
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["threads"], 1);
  EXPECT_TRUE(j["channels_last"].is_boolean());
  EXPECT_TRUE(j["torch_version"].is_string());
  return j;
}

void expect_positive(const nlohmann::json& j, const std::string& key) {
  ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key << " in " << j.dump();
  EXPECT_GT(j[key].get<double>(), 0.0) << key;
}

class Bench : public ::testing::Test {
 protected:
  // One thread, as in test_run_dir.cpp: two tests share the 2 cores under ctest -j2.
  void SetUp() override {
    resnet::testing::write_synthetic_cifar(tmp / "data", 32, 48);
    resnet::write_file_atomic(tmp / "tiny.json", R"({"model": {"depth": 8},
        "train": {"batch_size": 16, "iterations": 12, "eval_every": 6, "eval_batch_size": 24,
                  "lr_schedule": {"milestones": [8]}},
        "runtime": {"threads": 1, "device": "cpu"}})");
  }
  std::string config() const { return " --config " + (tmp / "tiny.json"); }
  TempDir tmp;
};

}  // namespace

TEST_F(Bench, BareTimesTheModelStep) {
  nlohmann::json j = parse_report(bench(tmp, config() + " --mode bare --steps 3 --warmup 1"), "bare");
  EXPECT_EQ(j["steps"], 3);
  EXPECT_EQ(j["cuda_graph"], false);
  expect_positive(j, "ms_per_step");
  expect_positive(j, "images_per_sec");
  // images_per_sec is the batch over the step time.
  EXPECT_NEAR(j["images_per_sec"].get<double>(), 16 * 1000 / j["ms_per_step"].get<double>(),
              1e-6 * j["images_per_sec"].get<double>());
  EXPECT_FALSE(j.contains("train_loss"));  // bare steps report no loss
}

TEST_F(Bench, StepRunsTheTrainersStepAndReportsItsLoss) {
  nlohmann::json j = parse_report(bench(tmp, config() + " --mode step --steps 3 --warmup 1"), "step");
  EXPECT_EQ(j["steps"], 3);
  expect_positive(j, "ms_per_step");
  expect_positive(j, "images_per_sec");
  // Mean cross-entropy over the 4 steps of random images and labels: near ln 10 = 2.30.
  expect_positive(j, "train_loss");
  EXPECT_LT(j["train_loss"].get<double>(), 10.0);
}

TEST_F(Bench, EvalTimesAPassOverTheTestSet) {
  nlohmann::json j =
      parse_report(bench(tmp, config() + " --mode eval --steps 10 --data-dir " + (tmp / "data")), "eval");
  EXPECT_EQ(j["source"], "cifar10-test");
  EXPECT_EQ(j["images"], 48);
  EXPECT_EQ(j["eval_batch"], 24);
  expect_positive(j, "seconds_per_pass");
  EXPECT_NEAR(j["images_per_sec"].get<double>(), 48 / j["seconds_per_pass"].get<double>(),
              1e-6 * j["images_per_sec"].get<double>());
}

// A whole run through the trainer: its steps and test error, where the time went, and no run
// folder left behind in the temp dir.
TEST_F(Bench, TrainRunsTheConfigEndToEnd) {
  nlohmann::json j = parse_report(bench(tmp, config() + " --mode train --data-dir " + (tmp / "data")), "train");
  EXPECT_EQ(j["steps"], 12);
  const double error = j["test_error"];
  EXPECT_TRUE(error >= 0 && error <= 1) << error;
  for (const char* key : {"wall_s", "images_per_sec", "train_images_per_sec", "train_s", "eval_s", "ms_per_step",
                          "last_period_s", "last_period_images_per_sec"})
    expect_positive(j, key);
  EXPECT_GE(j["other_s"].get<double>(), 0.0);
  EXPECT_NEAR(j["train_s"].get<double>() + j["eval_s"].get<double>() + j["other_s"].get<double>(),
              j["wall_s"].get<double>(), 1e-6);
  EXPECT_NEAR(j["ms_per_step"].get<double>(), 1000 * j["wall_s"].get<double>() / 12, 1e-6);
  EXPECT_LT(j["last_period_s"].get<double>(), j["wall_s"].get<double>());
  EXPECT_TRUE(fs::is_empty(tmp / "tmpdir")) << "the benchmark's run folder was left behind";
}

// Input errors: exit 2, nothing on stdout, one line on stderr naming what is wrong.
TEST_F(Bench, BadModeOrConfigExitsTwoWithOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {config() + " --mode nope", "--mode"},
      {config() + " --set model.depth=21", "model.depth"},
      {config() + " --set train.batch_size=0", "train.batch_size"},
      {" --config " + (tmp / "missing.json"), "missing.json"},
      {config() + " --mode bare --steps 0", "--steps"},
  };
  for (const auto& [args, text] : cases) {
    BenchRun r = bench(tmp, args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("resnet-bench: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << args << ": " << r.err;
  }
}

// --mode verify on the CPU: the eager parts of the GPU proof run and pass; the two CUDA-only
// checks say "skipped" and nothing else (no "passed"), and the output counts what ran and what did
// not. The milestone check has the power to catch an lr baked into a replayed step (a run that
// kept the first lr ends far from the reference, the real one does not).
TEST_F(Bench, VerifyOnTheCpuRunsTheEagerPartsAndSaysWhatItSkipped) {
  nlohmann::json j = parse_report(bench(tmp, config() + " --mode verify --steps 12 --set train.lr=0.05"), "verify");
  std::map<std::string, nlohmann::json> checks;
  for (const auto& check : j["checks"]) checks[check["name"]] = check;
  ASSERT_EQ(checks.size(), 6u) << j.dump(2);
  for (const char* name : {"graph_matches_eager", "lr_zero_freezes", "milestone_follows", "summary_says_graph"}) {
    ASSERT_TRUE(checks.count(name)) << name;
    EXPECT_FALSE(checks[name].contains("skipped")) << name;
    EXPECT_EQ(checks[name]["passed"], true) << checks[name].dump();
  }
  for (const char* name : {"fallback_after_throw", "fallback_after_sync"}) {
    ASSERT_TRUE(checks.count(name)) << name;
    EXPECT_EQ(checks[name], (nlohmann::json{{"name", name}, {"skipped", "needs CUDA"}})) << checks[name].dump();
  }
  EXPECT_EQ(j["ran"], 4);
  EXPECT_EQ(j["skipped"], 2);
  EXPECT_EQ(j["passed"], true);
  EXPECT_TRUE(checks["graph_matches_eager"]["bit_identical"].get<bool>());  // eager twice on the CPU
  EXPECT_FALSE(checks["graph_matches_eager"]["graph"].get<bool>());
  EXPECT_EQ(checks["summary_says_graph"]["cuda_graph"], false);
  const double error = checks["milestone_follows"]["max_rel_weight_diff"];
  const double baked = checks["milestone_follows"]["without_milestone_diff"];
  EXPECT_GT(baked, 1e-3);
  EXPECT_LT(error, 1e-5);
}

// The verdict is over the checks that ran: a skipped check neither passes nor fails a run, one
// failed check that ran fails it, and nothing run is no pass.
TEST(VerifyTally, CountsWhatRanAndJudgesOnlyThat) {
  using nlohmann::json;
  const json ok = {{"name", "a"}, {"passed", true}}, bad = {{"name", "b"}, {"passed", false}},
             skip = {{"name", "c"}, {"skipped", "needs CUDA"}};
  EXPECT_EQ(resnet::tally_checks(json{ok, skip, skip}), (json{{"ran", 1}, {"skipped", 2}, {"passed", true}}));
  EXPECT_EQ(resnet::tally_checks(json{ok, bad, skip}), (json{{"ran", 2}, {"skipped", 1}, {"passed", false}}));
  EXPECT_EQ(resnet::tally_checks(json{skip, skip}), (json{{"ran", 0}, {"skipped", 2}, {"passed", false}}));
  EXPECT_EQ(resnet::tally_checks(json::array()), (json{{"ran", 0}, {"skipped", 0}, {"passed", false}}));
}
