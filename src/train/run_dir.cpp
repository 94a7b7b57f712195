#include "train/run_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "util/budgets.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kRunFiles = {"config.json", "metrics.jsonl", "metrics.csv",
                                            "train.log",   "summary.json",  "checkpoints"};
const char* kEventsPrefix = "events.out.tfevents.";

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_number_float()) {
    std::ostringstream ss;
    ss.precision(8);
    ss << v.get<double>();
    return ss.str();
  }
  return v.dump();  // integers (rows are checked: numbers or null)
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

// One row of metrics.jsonl, checked (read_metrics_rows).
void check_row(const nlohmann::json& row, const std::string& where) {
  json_int(json_member(row, "step", where), where + ": step");
  for (const auto& c : metrics_columns()) {
    const auto it = row.find(c);
    if (it != row.end() && !it->is_null() && !it->is_number())
      throw InputError(where + ": " + c + ": expected a number or null, got " + json_excerpt(*it));
  }
}

// The entries of `folder` (names only, "." and ".." left out), without following any.
std::vector<std::string> entries(const Folder& folder) {
  std::vector<std::string> out;
  const int fd = ::openat(folder.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (!dir) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(folder.path() + ": cannot list the folder (" + std::strerror(errno) + ")");
  }
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(dir);
  return out;
}

// Removes `name` in `folder`: a file or symlink itself, a folder with what it holds (entered
// without following symlinks: what they point to stays).
void remove_tree(const Folder& folder, const std::string& name) {
  if (folder.kind(name) == EntryKind::kFolder) {
    const Folder sub = folder.sub(name, false);
    for (const auto& entry : entries(sub)) remove_tree(sub, entry);
    if (::unlinkat(folder.fd(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      throw std::runtime_error(folder.file(name) + ": cannot remove (" + std::strerror(errno) + ")");
    return;
  }
  folder.remove(name);
}

// Anything but the lock file and temp files (a process killed before its first file was whole)
// makes the folder a run that --force must be asked to replace.
bool holds_a_run(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    const bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    if (name != ".lock" && !tmp) return true;
  }
  return false;
}

// spdlog's file sink opens by name (following symlinks); this one writes to a descriptor the run
// folder opened. Each message is one write(2), so nothing is buffered and nothing to flush.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FdSink(Fd fd) : fd_(std::move(fd)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const char* p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_.get(), p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw spdlog::spdlog_ex(std::strerror(errno));
      p += n, left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  Fd fd_;
};

}  // namespace

const std::vector<std::string>& metrics_columns() {
  static const std::vector<std::string> columns = {"step",        "epoch",          "lr",         "train_loss",
                                                   "train_error", "test_loss",      "test_error", "val_loss",
                                                   "val_error",   "images_per_sec", "elapsed_s"};
  return columns;
}

std::vector<nlohmann::json> read_metrics_rows(const Folder& run) {
  const std::optional<std::string> text = run.read("metrics.jsonl", budget::kMetricsFileBytes);
  std::vector<nlohmann::json> rows;
  if (!text) return rows;
  const std::string file = run.file("metrics.jsonl");
  size_t at = 0;
  for (int64_t number = 1; at < text->size(); ++number) {
    size_t end = text->find('\n', at);
    const bool last = end == std::string::npos;
    if (last) end = text->size();
    const std::string line = text->substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    const std::string where = file + " line " + std::to_string(number);
    std::optional<nlohmann::json> row = parse_json_or_null(line, where);
    if (!row && last) break;  // torn by a crash while it was appended
    if (!row) throw InputError(where + ": not a JSON row (" + excerpt(line, budget::kQuoteBytes) + ")");
    check_row(*row, where);
    rows.push_back(std::move(*row));
  }
  return rows;
}

struct RunDir::Lock {
  Fd fd;
};

void RunDir::lock() {
  const std::string path = file(".lock");
  auto lock = std::make_shared<Lock>();
  lock->fd = folder_.open_to_append(".lock", /*read_write=*/true);
  if (::flock(lock->fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) {
      lock_warning_ = path + ": this file system cannot lock (" + std::strerror(errno) +
                      "); nothing stops a second trainer from using this folder at the same time";
      lock_ = std::move(lock);
      return;
    }
    if (errno != EWOULDBLOCK) throw InputError(path + ": cannot lock the run folder (" + std::strerror(errno) + ")");
    char buf[32] = {};
    const ssize_t n = ::pread(lock->fd.get(), buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw InputError(path_ + ": another resnet-train is training in this folder (pid " +
                     (pid.empty() ? std::string("unknown") : excerpt(pid, 20)) + "); wait for it or stop it first");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock->fd.get(), 0) != 0 || ::pwrite(lock->fd.get(), pid.data(), pid.size(), 0) < 0)
    throw std::runtime_error(path + ": cannot write the lock's pid (" + std::strerror(errno) + ")");
  lock_ = std::move(lock);
}

// Each of the run's files is a regular file (or missing), checkpoints/ a folder of the run's own
// and its checkpoint a regular file: a symlink, FIFO, device or folder planted in their place is
// refused by name before anything is read or written (those written are then opened without
// following symlinks too: util/folder.h).
void RunDir::check_layout() const {
  auto check = [](const Folder& folder, const std::string& name) {
    const EntryKind kind = folder.kind(name);
    if (kind != EntryKind::kMissing && kind != EntryKind::kFile)
      throw InputError(
          folder.file(name) + ": is " + describe_entry(folder.fd(), name) + ", where a regular file should be" +
          (kind == EntryKind::kSymlink ? " (refused: nothing in a run folder is followed out of it)" : ""));
  };
  // A temporary's name may hold anything (it is removed before the temporary is made), but a
  // folder, which cannot be removed as a file.
  auto check_temp = [](const Folder& folder, const std::string& name) {
    if (folder.kind(name) == EntryKind::kFolder)
      throw InputError(folder.file(name) + ": is a folder, where a temporary file is written");
  };
  for (const char* name : {"config.json", "metrics.jsonl", "metrics.csv", "train.log", "summary.json"}) {
    check(folder_, name);
    check_temp(folder_, std::string(name) + ".tmp");
  }
  if (const std::optional<Folder> checkpoints = folder_.sub_if_exists("checkpoints")) {
    check(*checkpoints, "last.ckpt");
    check_temp(*checkpoints, "last.ckpt.tmp");
  }
  for (const auto& name : entries(folder_))
    if (name.rfind(kEventsPrefix, 0) == 0) check(folder_, name);
}

RunDir RunDir::create(const std::string& path, bool force) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec)) throw InputError(path + ": exists and is not a folder");
  if (holds_a_run(path) && !force)
    throw InputError(path + ": run folder exists; use --resume " + path + " to continue it or --force to start over");
  const bool existed = fs::is_directory(path, ec);
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    throw InputError(path + ": cannot create the run folder (" + (ec ? ec.message() : "not a folder") + ")");
  if (!existed) sync_folder(parent_folder(path));  // the new folder's entry survives a power cut
  RunDir dir(path, Folder::open(path));
  dir.lock();
  if (holds_a_run(path)) {
    if (force) dir.check_layout();  // an old run's files are removed: never through a symlink
    if (!force)                     // another process made a run here between the check and the lock
      throw InputError(path + ": run folder exists; use --resume " + path + " to continue it or --force to start over");
    for (const auto& f : kRunFiles) remove_tree(dir.folder_, f);
    // The old run's TensorBoard event files (events.out.tfevents.*) go too.
    for (const auto& name : entries(dir.folder_))
      if (name.rfind(kEventsPrefix, 0) == 0) dir.folder_.remove(name);
  }
  return dir;  // checkpoints/ comes with the first checkpoint
}

RunDir RunDir::open(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw InputError(path + ": no such run folder");
  RunDir dir(path, Folder::open(path));
  dir.lock();
  dir.check_layout();
  return dir;
}

void RunDir::trim_to(int64_t step) const {
  // Rows written after the checkpoint will be written again by the resumed run.
  std::string kept_jsonl, kept_csv = csv_header();
  for (const auto& row : read_metrics_rows(folder_)) {
    if (row["step"].get<int64_t>() > step) continue;
    kept_jsonl += row.dump() + "\n";
    kept_csv += csv_line(row);
  }
  folder_.write_atomic("metrics.jsonl", kept_jsonl);
  folder_.write_atomic("metrics.csv", kept_csv);
  folder_.remove("summary.json");
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void RunDir::write_json(const std::string& name, const nlohmann::json& value) const {
  folder_.write_atomic(name, value.dump(2) + "\n");
}

void RunDir::append_metrics(const nlohmann::json& row) const {
  // The folder's entries were checked before the run started (check_layout): one that is not a
  // regular file now appeared during the run, and is a failed write like any other (exit 1).
  try {
    // jsonl first: it is the record (a resume rebuilds the csv from it).
    folder_.append("metrics.jsonl", row.dump() + "\n");
    Fd csv = folder_.open_to_append("metrics.csv");
    struct stat st {};
    const bool fresh = ::fstat(csv.get(), &st) == 0 && st.st_size == 0;
    csv.close();
    folder_.append("metrics.csv", (fresh ? csv_header() : std::string()) + csv_line(row));
  } catch (const InputError& e) {
    throw std::runtime_error(std::string(e.what()) + ": cannot append the metrics row");
  }
}

std::shared_ptr<spdlog::sinks::sink> RunDir::log_sink() const {
  return std::make_shared<FdSink>(folder_.open_to_append("train.log"));
}

std::string checkpoint_in(const std::string& path) {
  if (fs::is_directory(path)) return (fs::path(path) / "checkpoints" / "last.ckpt").string();
  return path;
}

}  // namespace resnet
