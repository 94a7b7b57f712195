#include "util/json_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "util/errors.h"

namespace resnet {

namespace {

std::string parent_of(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

std::string name_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// Writes all of `size` bytes; returns 0 or the errno of the failure.
int write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

Folder folder_of(const std::string& path) {
  try {
    return Folder::open(parent_of(path));
  } catch (const InputError& e) {
    throw std::runtime_error(path + ": cannot write (" + e.what() + ")");
  }
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : AtomicFile(folder_of(path), name_of(path)) {}

AtomicFile::AtomicFile(const Folder& folder, std::string name)
    : folder_(folder), name_(std::move(name)), tmp_(name_ + ".tmp") {
  if (name_.empty() || name_ == "." || name_ == ".." || name_.find('/') != std::string::npos)
    throw InputError(folder_.file(name_) + ": not a file name");
  fd_ = folder_.create_new(tmp_);
}

AtomicFile::~AtomicFile() {
  if (!done_) {
    fd_.close();
    ::unlinkat(folder_.fd(), tmp_.c_str(), 0);
  }
}

void AtomicFile::fail(const std::string& what, int error) {
  fd_.close();
  ::unlinkat(folder_.fd(), tmp_.c_str(), 0);
  done_ = true;
  const bool kept = folder_.kind(name_) != EntryKind::kMissing;
  throw std::runtime_error(folder_.file(name_) + ": " + what + " (" + std::strerror(error) + ")" +
                           (kept ? "; the previous file is kept" : ""));
}

void AtomicFile::write(const void* data, size_t size) {
  if (done_) throw std::logic_error(folder_.file(name_) + ": write after commit");
  if (int e = write_all(fd_.get(), data, size)) fail("write failed", e);
}

void AtomicFile::commit() {
  if (done_) throw std::logic_error(folder_.file(name_) + ": committed twice");
  if (::fsync(fd_.get()) != 0) fail("fsync failed", errno);
  if (int e = fd_.close()) fail("write failed", e);  // NFS and quotas report late write errors here
  done_ = true;
  folder_.rename(tmp_, name_);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

void append_file(const std::string& path, const std::string& content) {
  folder_of(path).append(name_of(path), content);
}

std::string parent_folder(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "runs/x/" names runs/x
  return p.parent_path().string();
}

void sync_folder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open the folder to sync it (" + std::strerror(errno) + ")");
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL): nothing more can be done there.
  if (rc != 0 && e != EINVAL) throw std::runtime_error(path + ": folder fsync failed (" + std::strerror(e) + ")");
}

void check_output_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path + ": is a folder, not a file");
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw InputError(path + ": folder " + parent.string() + " does not exist");
}

void make_output_folder(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw InputError(path + ": cannot create the folder (" + ec.message() + ")");
  if (!std::filesystem::is_directory(path, ec)) throw InputError(path + ": exists and is not a folder");
}

std::string read_text_file(const std::string& path, uint64_t max_bytes) {
  const ReadableFile file = open_for_reading(path, max_bytes, "this file");
  return read_whole(file, path);
}

// ---- parsing ----------------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

// nlohmann's parser is iterative, but dump(), copies and comparisons of what it builds recurse:
// the nesting is checked while parsing, before a level too deep is built. Keys are checked per
// object as they come (the parser itself would keep the last of two).
class Limits {
 public:
  explicit Limits(const std::string& what) : what_(what) {}
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open_.size() >= static_cast<size_t>(budget::kJsonDepth))
          throw InputError(what_ + ": JSON nested deeper than " + std::to_string(budget::kJsonDepth) + " levels");
        open_.push_back(event == json::parse_event_t::object_start);
        if (open_.back()) keys_.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open_.empty() && open_.back()) keys_.pop_back();
        if (!open_.empty()) open_.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys_.empty() && parsed.is_string() && !keys_.back().insert(parsed.get_ref<const std::string&>()).second)
          throw InputError(what_ + ": key " + json_excerpt(parsed) +
                           " appears twice in one object (refused: readers disagree on which one counts)");
        break;
      case json::parse_event_t::value: break;
    }
    return true;
  }

 private:
  std::string what_;
  std::vector<bool> open_;  // true: an object
  std::vector<std::set<std::string>> keys_;
};

// nlohmann's message without its "[json.exception.parse_error.101] " tag, and quoting at most a
// short prefix of the token it stopped at.
std::string syntax_error(const json::exception& e) {
  std::string msg = first_line(e.what());
  if (msg.rfind("[json.exception.", 0) == 0) {
    const size_t end = msg.find("] ");
    if (end != std::string::npos) msg.erase(0, end + 2);
  }
  return excerpt(msg, 160);
}

}  // namespace

std::optional<json> parse_json_or_null(const std::string& text, const std::string& what) {
  Limits limits(what);
  try {
    return json::parse(text, std::ref(limits));
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

json parse_json(const std::string& text, const std::string& what) {
  Limits limits(what);
  try {
    return json::parse(text, std::ref(limits));
  } catch (const json::exception& e) {  // syntax errors, and numbers out of range (1e400)
    throw InputError(what + ": invalid JSON (" + syntax_error(e) + ")");
  }
}

json read_json_file(const std::string& path) {
  const ReadableFile file = open_for_reading(path, budget::kJsonFileBytes, "a JSON file");
  return parse_json(read_whole(file, path), path);
}

json read_json_in(const std::string& folder, const std::string& name) {
  const Folder dir = Folder::open(folder);
  const std::optional<std::string> text = dir.read(name, budget::kJsonFileBytes);
  if (!text) throw InputError(dir.file(name) + ": no such file");
  return parse_json(*text, dir.file(name));
}

// ---- typed reads ------------------------------------------------------------------------------

std::string json_excerpt(const json& value) {
  return excerpt(value.dump(-1, ' ', false, json::error_handler_t::replace), budget::kQuoteBytes);
}

const json& json_member(const json& object, const std::string& key, const std::string& where) {
  if (!object.is_object()) throw InputError(where + ": expected a JSON object, got " + json_excerpt(object));
  const auto it = object.find(key);
  if (it == object.end()) throw InputError(where + ": " + printable(key) + ": missing");
  return *it;
}

int64_t json_int(const json& value, const std::string& where) {
  if (value.is_number_integer() && (value.is_number_unsigned() ? value.get<uint64_t>() <= uint64_t(INT64_MAX) : true))
    return value.get<int64_t>();
  throw InputError(where + ": expected an integer, got " + json_excerpt(value));
}

double json_number(const json& value, const std::string& where) {
  if (value.is_number()) return value.get<double>();
  throw InputError(where + ": expected a number, got " + json_excerpt(value));
}

std::string json_string(const json& value, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  throw InputError(where + ": expected a string, got " + json_excerpt(value));
}

bool json_bool(const json& value, const std::string& where) {
  if (value.is_boolean()) return value.get<bool>();
  throw InputError(where + ": expected true or false, got " + json_excerpt(value));
}

}  // namespace resnet
