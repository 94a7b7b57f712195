#include "train/run_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kRunFiles = {"config.json", "metrics.jsonl", "metrics.csv",
                                            "train.log", "summary.json", "checkpoints"};

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_number_float()) {
    std::ostringstream ss;
    ss.precision(8);
    ss << v.get<double>();
    return ss.str();
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string csv_line(const nlohmann::json& row) {
  std::string line;
  for (const auto& c : metrics_columns()) {
    if (!line.empty()) line += ",";
    line += csv_cell(row.contains(c) ? row[c] : nlohmann::json());
  }
  return line + "\n";
}

std::string csv_header() {
  std::string h;
  for (const auto& c : metrics_columns()) h += (h.empty() ? "" : ",") + c;
  return h + "\n";
}

}  // namespace

const std::vector<std::string>& metrics_columns() {
  static const std::vector<std::string> columns = {
      "step", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error",
      "val_loss", "val_error", "images_per_sec", "elapsed_s"};
  return columns;
}

RunDir RunDir::create(const std::string& path, bool force) {
  if (fs::exists(path) && !fs::is_directory(path))
    throw InputError(path + ": exists and is not a folder");
  if (fs::is_directory(path) && !fs::is_empty(path)) {
    if (!force)
      throw InputError(path + ": run folder exists; use --resume " + path +
                       " to continue it or --force to start over");
    for (const auto& f : kRunFiles) fs::remove_all(fs::path(path) / f);
  }
  std::error_code ec;
  fs::create_directories(fs::path(path) / "checkpoints", ec);
  if (ec) throw InputError(path + ": cannot create the run folder (" + ec.message() + ")");
  return RunDir(path);
}

RunDir RunDir::resume(const std::string& path, int64_t step) {
  RunDir dir(path);
  // Rows written after the checkpoint will be written again by the resumed run.
  const std::string jsonl = dir.file("metrics.jsonl");
  std::ifstream in(jsonl);
  std::string kept_jsonl, kept_csv = csv_header();
  for (std::string line; std::getline(in, line);) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.contains("step") || row["step"].get<int64_t>() > step) continue;
    kept_jsonl += line + "\n";
    kept_csv += csv_line(row);
  }
  write_file_atomic(jsonl, kept_jsonl);
  write_file_atomic(dir.file("metrics.csv"), kept_csv);
  fs::remove(dir.file("summary.json"));  // the run is not finished any more
  return dir;
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void RunDir::write_json(const std::string& name, const nlohmann::json& value) const {
  write_file_atomic(file(name), value.dump(2) + "\n");
}

void RunDir::append_metrics(const nlohmann::json& row) const {
  const std::string csv = file("metrics.csv");
  const bool new_csv = !fs::exists(csv) || fs::file_size(csv) == 0;
  std::ofstream jsonl(file("metrics.jsonl"), std::ios::app);
  jsonl << row.dump() << "\n";
  std::ofstream out(csv, std::ios::app);
  if (new_csv) out << csv_header();
  out << csv_line(row);
  if (!jsonl || !out) throw std::runtime_error(path_ + ": cannot append metrics");
}

std::string checkpoint_in(const std::string& path) {
  if (fs::is_directory(path)) return (fs::path(path) / "checkpoints" / "last.ckpt").string();
  return path;
}

}  // namespace resnet
