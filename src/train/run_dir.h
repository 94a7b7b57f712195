#pragma once
// The run directory contract (design.md): config.json, metrics.jsonl, metrics.csv, train.log,
// checkpoints/last.ckpt, summary.json. Every JSON file is replaced atomically; metrics are
// appended one row per evaluation and, on resume, cut back to the checkpoint's step.
//
// A process that trains in a folder holds an exclusive flock on `.lock` there (with its pid in
// it) for as long as the RunDir lives: a second trainer, with --resume or --force, is refused
// instead of both writing the same checkpoint. The lock goes with the process, even on SIGKILL.
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

namespace resnet {

// Columns of metrics.csv, in order; metrics.jsonl rows have the same keys (null = not measured).
const std::vector<std::string>& metrics_columns();

class RunDir {
 public:
  // A new run: `path` must not exist or be empty, unless `force` (then the files of an old run
  // are removed, and nothing else). Otherwise InputError naming the folder and the fix.
  // Locked; InputError naming the holder's pid if another process trains there.
  static RunDir create(const std::string& path, bool force);
  // An existing run folder, locked (InputError naming the holder's pid if that fails).
  static RunDir open(const std::string& path);
  // Before a resume at `step`: metrics rows after `step` (and torn lines) are dropped, the
  // summary goes (the run is not finished any more).
  void trim_to(int64_t step) const;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;
  std::string checkpoint_path() const { return file("checkpoints/last.ckpt"); }
  std::string log_path() const { return file("train.log"); }
  // Non-empty where the file system cannot lock (some network file systems): the run goes on
  // unlocked and says so in its log.
  const std::string& lock_warning() const { return lock_warning_; }

  void write_json(const std::string& name, const nlohmann::json& value) const;
  void append_metrics(const nlohmann::json& row) const;

 private:
  struct Lock;
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  void lock();
  std::string path_;
  std::shared_ptr<Lock> lock_;
  std::string lock_warning_;
};

// The checkpoint inside a run folder, or `path` itself if it is a file.
std::string checkpoint_in(const std::string& path);

}  // namespace resnet
