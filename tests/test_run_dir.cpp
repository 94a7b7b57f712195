// The run folder across a run's life, through the public train/resume API: a resume cuts the
// metrics back to its checkpoint, a finished run is left alone, train.epochs sets the length, and
// the validation split's best error is the minimum of the rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "test_support.h"
#include "train/trainer.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

ExperimentConfig tiny_config(const std::string& data_dir, int64_t iterations) {
  ExperimentConfig c = resnet::testing::tiny_defaults(data_dir, iterations);
  c.train.eval_every = 5;
  c.train.log_every = 5;
  c.train.lr_schedule.milestones = {15, 25};
  validate(c);
  return c;
}

TrainOptions quiet(const std::string& out) {
  TrainOptions o;
  o.out_dir = out;
  o.progress = false;
  o.console = false;
  return o;
}

std::vector<nlohmann::json> jsonl_rows(const std::string& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::vector<int64_t> steps_of(const std::vector<nlohmann::json>& rows) {
  std::vector<int64_t> steps;
  for (const auto& r : rows) steps.push_back(r["step"]);
  return steps;
}

// metrics.csv as rows of column -> cell text.
std::vector<std::map<std::string, std::string>> csv_rows(const std::string& run) {
  auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    return cells;
  };
  std::ifstream in(run + "/metrics.csv");
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> header = split(line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = split(line);
    EXPECT_EQ(cells.size(), header.size()) << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < std::min(cells.size(), header.size()); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

// metrics.csv says what metrics.jsonl says: the same rows, every cell the same value (the csv
// keeps 8 significant digits; an empty cell is a null).
void expect_csv_matches_jsonl(const std::string& run) {
  const auto json = jsonl_rows(run);
  const auto csv = csv_rows(run);
  ASSERT_EQ(csv.size(), json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    ASSERT_EQ(csv[i].size(), json[i].size()) << "row " << i;
    for (const auto& [key, value] : json[i].items()) {
      ASSERT_TRUE(csv[i].count(key)) << key;
      const std::string& cell = csv[i].at(key);
      if (value.is_null()) {
        EXPECT_EQ(cell, "") << key;
      } else {
        const double v = value.get<double>();
        EXPECT_NEAR(std::stod(cell), v, 1e-7 * std::abs(v)) << "row " << i << " " << key;
      }
    }
  }
}

// The run folder's contract files (README) with their bytes; a missing one is absent.
std::map<std::string, std::string> snapshot(const std::string& run) {
  std::map<std::string, std::string> files;
  for (const char* name :
       {"config.json", "metrics.jsonl", "metrics.csv", "train.log", "summary.json", "checkpoints/last.ckpt"}) {
    const std::string path = run + "/" + name;
    if (fs::exists(path)) files[path] = read_text_file(path);
  }
  return files;
}

class RunDirLife : public ::testing::Test {
 protected:
  void SetUp() override { resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100); }
  TempDir tmp;
};

}  // namespace

// A run killed while it appended the row of step 30 (checkpoints every 10 steps): its checkpoint
// is at step 20, metrics.jsonl holds rows 5..25 and half of row 30, metrics.csv rows 5..25.
// Resuming drops the rows after step 20 and writes them again: each step's row once, the csv
// and the jsonl the same, every row what a run that was never stopped wrote.
TEST_F(RunDirLife, ResumeCutsMetricsBackToTheCheckpoint) {
  ExperimentConfig c = tiny_config(tmp / "data", 30);
  ASSERT_EQ(train(c, quiet(tmp / "straight")), 0);
  const auto straight = jsonl_rows(tmp / "straight");
  ASSERT_EQ(steps_of(straight), (std::vector<int64_t>{5, 10, 15, 20, 25, 30}));

  // The crashed run: 20 steps and their checkpoint, then (from a copy of it) 10 steps more whose
  // checkpoint and last row are lost.
  const std::string run = tmp / "run";
  ExperimentConfig first = c;
  first.train.iterations = 20;
  ASSERT_EQ(train(first, quiet(run)), 0);
  fs::copy_file(run + "/checkpoints/last.ckpt", tmp / "step20.ckpt");
  ASSERT_EQ(resume(run, {"train.iterations=30"}, quiet("")), 0);
  fs::copy_file(tmp / "step20.ckpt", run + "/checkpoints/last.ckpt", fs::copy_options::overwrite_existing);
  fs::remove(run + "/summary.json");
  // Row 30 is the last line of each file (jsonl keys are sorted, csv starts with the step).
  const std::string jsonl = read_text_file(run + "/metrics.jsonl");
  const std::string csv = read_text_file(run + "/metrics.csv");
  const size_t row30_jsonl = jsonl.rfind('\n', jsonl.size() - 2) + 1;
  const size_t row30_csv = csv.rfind('\n', csv.size() - 2) + 1;
  ASSERT_EQ(nlohmann::json::parse(jsonl.substr(row30_jsonl))["step"], 30);
  ASSERT_EQ(csv.substr(row30_csv, 3), "30,");
  write_file_atomic(run + "/metrics.jsonl", jsonl.substr(0, row30_jsonl + (jsonl.size() - row30_jsonl) / 2));
  write_file_atomic(run + "/metrics.csv", csv.substr(0, row30_csv));
  ASSERT_EQ(csv_rows(run).size(), 5u);  // 5..25, and 25 is newer than the checkpoint

  ASSERT_EQ(resume(run, {"train.iterations=30"}, quiet("")), 0);
  const auto rows = jsonl_rows(run);
  EXPECT_EQ(steps_of(rows), steps_of(straight));
  expect_csv_matches_jsonl(run);
  for (size_t i = 0; i < std::min(rows.size(), straight.size()); ++i)
    for (const char* key : {"step", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error"})
      EXPECT_EQ(rows[i][key], straight[i][key]) << "step " << rows[i]["step"] << " " << key;
  nlohmann::json summary = read_json_file(run + "/summary.json");
  EXPECT_EQ(summary["steps"], 30);
  EXPECT_EQ(summary["final_test_error"], straight.back()["test_error"]);
}

// Resuming a finished run says so and exits 0 without touching the run's files, also when --set
// asks for fewer steps than it has.
TEST_F(RunDirLife, ResumingACompleteRunChangesNothing) {
  ASSERT_EQ(train(tiny_config(tmp / "data", 10), quiet(tmp / "run")), 0);
  const auto before = snapshot(tmp / "run");
  std::map<std::string, fs::file_time_type> times;
  for (const auto& [path, bytes] : before) times[path] = fs::last_write_time(path);
  ASSERT_EQ(before.size(), 6u);

  for (const std::vector<std::string>& sets : {std::vector<std::string>{}, {"train.iterations=5"}}) {
    ::testing::internal::CaptureStdout();
    const int rc = resume(tmp / "run", sets, quiet(""));
    const std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("already complete"), std::string::npos) << out;
    EXPECT_EQ(snapshot(tmp / "run"), before);
    for (const auto& [path, time] : times) EXPECT_EQ(fs::last_write_time(path), time) << path;
  }
}

// train.epochs overrides train.iterations: ceil(epochs x steps per epoch) steps, with
// floor(images / batch) steps per epoch, and eval_every 0 evaluates at each epoch's end and last.
TEST_F(RunDirLife, EpochsSetTheNumberOfSteps) {
  ExperimentConfig c = tiny_config(tmp / "data", 1000);
  c.train.batch_size = 48;  // 320 images: 6 full batches per epoch (6.67 if partial ones counted)
  c.train.epochs = 2.25;    // 13.5 steps: 14
  c.train.eval_every = 0;
  c.train.checkpoint_every = 0;
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  EXPECT_EQ(summary["steps"], 14);
  const auto rows = jsonl_rows(tmp / "run");
  EXPECT_EQ(steps_of(rows), (std::vector<int64_t>{6, 12, 14}));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0]["epoch"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(rows[2]["epoch"].get<double>(), 14.0 / 6.0);
  // Without a validation split there is no validation error anywhere.
  for (const auto& r : rows) EXPECT_TRUE(r["val_error"].is_null());
  EXPECT_TRUE(summary["best_val_error"].is_null());
  EXPECT_TRUE(summary["best_val_step"].is_null());

  // A whole number of epochs is exactly that many epochs' steps.
  c.train.epochs = 1;
  ASSERT_EQ(train(c, quiet(tmp / "one")), 0);
  EXPECT_EQ(read_json_file(tmp / "one/summary.json")["steps"], 6);
}

// data.val_size holds images out of training and evaluates them at every evaluation; the summary's
// best validation error is the minimum of the rows, at the first step that reached it. (Measured:
// val error 0.78 at step 5 down to 0.359 at step 35, 0.375 at the last row, 40: a summary that
// kept the last row instead of the best fails.)
TEST_F(RunDirLife, ValidationSplitReportsTheBestRow) {
  ExperimentConfig c = tiny_config(tmp / "data", 40);
  c.data.val_size = 64;  // 256 images left: 8 steps per epoch
  ASSERT_EQ(train(c, quiet(tmp / "run")), 0);
  const auto rows = jsonl_rows(tmp / "run");
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_DOUBLE_EQ(rows.back()["epoch"].get<double>(), 5.0);  // 40 steps of 8 per epoch
  double best = 2;
  int64_t best_step = -1;
  for (const auto& r : rows) {
    ASSERT_FALSE(r["val_error"].is_null());
    ASSERT_FALSE(r["val_loss"].is_null());
    const double e = r["val_error"];
    EXPECT_DOUBLE_EQ(e * 64, std::round(e * 64)) << "not a fraction of the 64 validation images";
    if (e < best) {
      best = e;
      best_step = r["step"];
    }
  }
  nlohmann::json summary = read_json_file(tmp / "run/summary.json");
  EXPECT_EQ(summary["best_val_error"].get<double>(), best);
  EXPECT_EQ(summary["best_val_step"].get<int64_t>(), best_step);
  expect_csv_matches_jsonl(tmp / "run");
}
