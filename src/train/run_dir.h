#pragma once
// The run directory contract (docs/usage.md, docs/safety.md): config.json, metrics.jsonl, metrics.csv, train.log,
// checkpoints/last.ckpt, summary.json. Every JSON file is replaced atomically; metrics are
// appended one row per evaluation and, on resume, cut back to the checkpoint's step.
//
// The folder is opened once and every file in it is opened relative to it without following a
// symlink (util/folder.h): a symlink, a FIFO, a device or a folder where one of the run's files
// should be is refused with one line naming it, and nothing outside the folder is touched, the
// lock included. Files read from it are regular files within their budget (util/budgets.h).
//
// A process that trains in a folder holds an exclusive flock on `.lock` there (with its pid in
// it) for as long as the RunDir lives: a second trainer, with --resume or --force, is refused
// instead of both writing the same checkpoint. The lock goes with the process, even on SIGKILL.
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/folder.h"

namespace spdlog::sinks {
class sink;
}

namespace resnet {

// Columns of metrics.csv, in order; metrics.jsonl rows have the same keys (null = not measured).
const std::vector<std::string>& metrics_columns();

// The rows of a run's metrics.jsonl (empty if it has none), each checked: an object whose
// "step" is an integer and whose columns are numbers or null. A torn last line (a crash while it
// was appended) is left out; anything else that is not such a row is an InputError naming the
// file, the line and the key.
std::vector<nlohmann::json> read_metrics_rows(const Folder& run);

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
  const Folder& folder() const { return folder_; }
  std::string file(const std::string& name) const;
  std::string checkpoint_path() const { return file("checkpoints/last.ckpt"); }
  std::string log_path() const { return file("train.log"); }
  // Non-empty where the file system cannot lock (some network file systems): the run goes on
  // unlocked and says so in its log.
  const std::string& lock_warning() const { return lock_warning_; }

  void write_json(const std::string& name, const nlohmann::json& value) const;
  void append_metrics(const nlohmann::json& row) const;
  // train.log as a spdlog sink, appended to through a descriptor opened in the folder.
  std::shared_ptr<spdlog::sinks::sink> log_sink() const;

 private:
  struct Lock;
  RunDir(std::string path, Folder folder) : path_(std::move(path)), folder_(std::move(folder)) {}
  void lock();
  void check_layout() const;
  std::string path_;
  Folder folder_;
  std::shared_ptr<Lock> lock_;
  std::string lock_warning_;
};

// The checkpoint inside a run folder, or `path` itself if it is a file.
std::string checkpoint_in(const std::string& path);

}  // namespace resnet
