#pragma once
// Small file helpers shared by every writer: a file is either the old one or the complete
// new one, never half of each, also across a crash or a power cut: write a temp file in the same
// folder, fsync it, check every result, rename it over the old one, fsync the folder.
#include <nlohmann/json_fwd.hpp>
#include <cstddef>
#include <string>

namespace resnet {

// A file written in pieces and published whole: `path`.tmp until commit(). A write error
// (disk full, quota, file size limit, read-only folder) throws std::runtime_error naming `path`
// and leaves the old `path` untouched; a destroyed, uncommitted AtomicFile removes its temp file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  // fsync + close (both checked), rename over `path`, fsync the folder.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, int error);
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
};

// Writes `content` to `path` atomically (AtomicFile). Throws std::runtime_error on I/O failure.
void write_file_atomic(const std::string& path, const std::string& content);

// Appends `content` to `path` (created if missing) and fsyncs it. std::runtime_error naming
// `path` on failure; a crash can leave at most a torn last line, which readers skip.
void append_file(const std::string& path, const std::string& content);

// fsyncs a folder, so that renames and new files in it survive a power cut.
void sync_folder(const std::string& path);

// The folder that holds `path` (a file or a folder, trailing '/' or not), absolute.
std::string parent_folder(const std::string& path);

// Checks, before any work, that `path` can be written as a file: not a folder, and its folder
// exists. InputError naming the path otherwise.
void check_output_file(const std::string& path);

// Creates a folder (and its parents); InputError naming it if that is not possible.
void make_output_folder(const std::string& path);

// Reads a JSON file; a missing file or a parse error is an InputError naming the file.
nlohmann::json read_json_file(const std::string& path);

// Reads a whole file as bytes; InputError naming the file if it cannot be opened.
std::string read_text_file(const std::string& path);

}  // namespace resnet
