#pragma once
// The run directory contract (design.md): config.json, metrics.jsonl, metrics.csv, train.log,
// checkpoints/last.ckpt, summary.json. Every JSON file is replaced atomically; metrics are
// appended one row per evaluation and, on resume, cut back to the checkpoint's step.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace resnet {

// Columns of metrics.csv, in order; metrics.jsonl rows have the same keys (null = not measured).
const std::vector<std::string>& metrics_columns();

class RunDir {
 public:
  // A new run: `path` must not exist or be empty, unless `force` (then the files of an old run
  // are removed, and nothing else). Otherwise InputError naming the folder and the fix.
  static RunDir create(const std::string& path, bool force);
  // An existing run to resume at `step`: metrics rows after `step` are dropped.
  static RunDir resume(const std::string& path, int64_t step);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;
  std::string checkpoint_path() const { return file("checkpoints/last.ckpt"); }
  std::string log_path() const { return file("train.log"); }

  void write_json(const std::string& name, const nlohmann::json& value) const;
  void append_metrics(const nlohmann::json& row) const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// The checkpoint inside a run folder, or `path` itself if it is a file.
std::string checkpoint_in(const std::string& path);

}  // namespace resnet
