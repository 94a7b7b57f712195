#pragma once
// What a run produces, handed to whoever records it. The loop reports two things: a progress
// line at log points and an evaluation row at evaluation points; each goes to every observer in
// the list (metrics.jsonl/csv, TensorBoard, train.log, the live progress line). Only the writer
// (rank 0, or a single process) has observers: the other ranks' list is empty. Adding a sink
// means writing an Observer and adding it in make_observers(), not touching the loop.
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace resnet {

class RunDir;

// The running numbers at a log point.
struct Progress {
  int64_t step = 0, total = 0;
  double loss = 0, error = 0;  // training, since the last evaluation
  double lr = 0;
  double images_per_sec = 0;
  double eta_seconds = 0;
};

// An evaluation's numbers: one row of metrics.jsonl / metrics.csv.
struct EvalRow {
  int64_t step = 0;
  double epoch = 0;
  double lr = 0;
  double train_loss = 0, train_error = 0;  // since the last evaluation
  double test_loss = 0, test_error = 0;
  std::optional<double> val_loss, val_error;  // none without a validation split (null in the files)
  double images_per_sec = 0;
  double elapsed_s = 0;
};

// The row as the metrics files hold it: one key per column of metrics_columns() (train/run_dir.h),
// in that order (a test holds the two together).
nlohmann::json to_json(const EvalRow& row);

// An evaluation and the run's length.
struct EvalReport {
  EvalRow row;
  int64_t total = 0;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_progress(const Progress&) {}
  virtual void on_eval(const EvalReport&) {}
};

class Observers {
 public:
  void add(std::unique_ptr<Observer> observer) { list_.push_back(std::move(observer)); }
  void progress(const Progress& p) {
    for (auto& o : list_) o->on_progress(p);
  }
  void eval(const EvalReport& r) {
    for (auto& o : list_) o->on_eval(r);
  }
  bool empty() const { return list_.empty(); }

 private:
  std::vector<std::unique_ptr<Observer>> list_;
};

// The writer's observers: the metrics files and TensorBoard events in `dir` (TensorBoard when
// `tensorboard` and built with it; a build without it logs that it writes none), the log line
// per evaluation, and the progress line: live on a terminal (`tty`), else a log line.
// `dir` null: no observers (a rank other than 0).
Observers make_observers(const RunDir* dir, spdlog::logger& log, bool tty, bool tensorboard);

}  // namespace resnet
