#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

struct RunDir::Lock {
  int fd = -1;
  ~Lock() {
    if (fd >= 0) ::close(fd);  // releases the flock
  }
};

void RunDir::lock() {
  const std::string path = file(".lock");
  auto lock = std::make_shared<Lock>();
  lock->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock->fd < 0) throw InputError(path + ": cannot open the run folder's lock (" + std::strerror(errno) + ")");
  if (::flock(lock->fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) {
      lock_warning_ = path + ": this file system cannot lock (" + std::strerror(errno) +
                      "); nothing stops a second trainer from using this folder at the same time";
      lock_ = std::move(lock);
      return;
    }
    if (errno != EWOULDBLOCK)
      throw InputError(path + ": cannot lock the run folder (" + std::strerror(errno) + ")");
    char buf[32] = {};
    const ssize_t n = ::pread(lock->fd, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw InputError(path_ + ": another resnet-train is training in this folder (pid " +
                     (pid.empty() ? std::string("unknown") : pid) + "); wait for it or stop it first");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock->fd, 0) != 0 || ::pwrite(lock->fd, pid.data(), pid.size(), 0) < 0)
    throw std::runtime_error(path + ": cannot write the lock's pid (" + std::strerror(errno) + ")");
  lock_ = std::move(lock);
}

RunDir RunDir::create(const std::string& path, bool force) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    throw InputError(path + ": exists and is not a folder");
  // Anything but the lock file and temp files (a process killed before its first file was
  // whole) makes the folder a run that --force must be asked to replace.
  auto has_run = [&] {
    if (!fs::is_directory(path, ec)) return false;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string name = entry.path().filename().string();
      const bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
      if (name != ".lock" && !tmp) return true;
    }
    return false;
  };
  if (has_run() && !force)
    throw InputError(path + ": run folder exists; use --resume " + path +
                     " to continue it or --force to start over");
  const bool existed = fs::is_directory(path, ec);
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    throw InputError(path + ": cannot create the run folder (" + (ec ? ec.message() : "not a folder") + ")");
  if (!existed) {  // the new folder's entry survives a power cut
    sync_folder(parent_folder(path));
  }
  RunDir dir(path);
  dir.lock();
  if (has_run()) {
    if (!force)  // another process made a run here between the check and the lock
      throw InputError(path + ": run folder exists; use --resume " + path +
                       " to continue it or --force to start over");
    for (const auto& f : kRunFiles) fs::remove_all(fs::path(path) / f);
    // The old run's TensorBoard event files (events.out.tfevents.*) go too.
    for (const auto& entry : fs::directory_iterator(path, ec))
      if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) fs::remove(entry.path(), ec);
  }
  return dir;  // checkpoints/ comes with the first checkpoint
}

RunDir RunDir::open(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw InputError(path + ": no such run folder");
  RunDir dir(path);
  dir.lock();
  return dir;
}

void RunDir::trim_to(int64_t step) const {
  // Rows written after the checkpoint will be written again by the resumed run.
  const std::string jsonl = file("metrics.jsonl");
  std::ifstream in(jsonl);
  std::string kept_jsonl, kept_csv = csv_header();
  for (std::string line; std::getline(in, line);) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object() || !row.contains("step") || !row["step"].is_number_integer() ||
        row["step"].get<int64_t>() > step)
      continue;
    kept_jsonl += line + "\n";
    kept_csv += csv_line(row);
  }
  write_file_atomic(jsonl, kept_jsonl);
  write_file_atomic(file("metrics.csv"), kept_csv);
  std::error_code ec;
  fs::remove(file("summary.json"), ec);
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void RunDir::write_json(const std::string& name, const nlohmann::json& value) const {
  write_file_atomic(file(name), value.dump(2) + "\n");
}

void RunDir::append_metrics(const nlohmann::json& row) const {
  // jsonl first: it is the record (a resume rebuilds the csv from it).
  const std::string csv = file("metrics.csv");
  std::error_code ec;
  const bool new_csv = !fs::exists(csv, ec) || fs::file_size(csv, ec) == 0;
  append_file(file("metrics.jsonl"), row.dump() + "\n");
  append_file(csv, (new_csv ? csv_header() : std::string()) + csv_line(row));
}

std::string checkpoint_in(const std::string& path) {
  if (fs::is_directory(path)) return (fs::path(path) / "checkpoints" / "last.ckpt").string();
  return path;
}

}  // namespace resnet
