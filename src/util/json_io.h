#pragma once
// Small file helpers shared by every writer: a file is either the old one or the complete
// new one, never half of each, also across a crash or a power cut: write a temp file in the same
// folder, fsync it, check every result, rename it over the old one, fsync the folder. The temp
// file is created new (O_EXCL | O_NOFOLLOW, a stale one removed first), never through a symlink.
//
// And the one JSON reader of user text: parse_json() bounds the nesting (budget::kJsonDepth) and
// refuses a key that appears twice in one object (Python's json and PyTorch keep the last, other
// readers the first: a file that means two things is refused, as pickles and safetensors headers
// are; docs/safety.md). Values are then read through the typed helpers below, whose errors name
// the file and the key and quote at most a short prefix of the value.
#include <nlohmann/json.hpp>
#include <cstddef>
#include <optional>
#include <string>

#include "util/budgets.h"
#include "util/folder.h"

namespace resnet {

// A file written in pieces and published whole: `name`.tmp until commit(). A write error
// (disk full, quota, file size limit, read-only folder) throws std::runtime_error naming the file
// and leaves the old one untouched; a destroyed, uncommitted AtomicFile removes its temp file.
class AtomicFile {
 public:
  // In the folder that holds `path` (opened as the path names it).
  explicit AtomicFile(const std::string& path);
  // `name` inside `folder`, relative to its descriptor.
  AtomicFile(const Folder& folder, std::string name);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  // fsync + close (both checked), rename over the file, fsync the folder.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, int error);
  Folder folder_;
  std::string name_, tmp_;
  Fd fd_;
  bool done_ = false;
};

// Writes `content` to `path` atomically (AtomicFile). Throws std::runtime_error on I/O failure.
void write_file_atomic(const std::string& path, const std::string& content);

// Appends `content` to `path` (created if missing; never through a symlink, and only to a
// regular file without other hard links: Folder::append) and fsyncs it. std::runtime_error naming
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

// Parses JSON text from a file or a file's field; `what` names it in errors. InputError for a
// syntax error, a nesting deeper than budget::kJsonDepth, or a key twice in one object.
nlohmann::json parse_json(const std::string& text, const std::string& what);
// The same, but nullopt for text that is not JSON (a torn line); still InputError for too deep
// a nesting or a duplicate key (text that is JSON, but not JSON we read).
std::optional<nlohmann::json> parse_json_or_null(const std::string& text, const std::string& what);

// Reads a JSON file (a regular file of at most budget::kJsonFileBytes; parse_json).
nlohmann::json read_json_file(const std::string& path);
// The same for the file `name` in the run (or other) folder `folder`, opened relative to it
// without following a symlink (Folder::open_to_read).
nlohmann::json read_json_in(const std::string& folder, const std::string& name);

// Reads a whole file as bytes: a regular file (symlinks followed: the user named it) of at most
// `max_bytes`. InputError naming the file otherwise.
std::string read_text_file(const std::string& path, uint64_t max_bytes = budget::kWeightsFileBytes);

// ---- typed reads of JSON from files -----------------------------------------------------------
// `value` as an error may quote it: compact, control characters escaped, at most
// budget::kQuoteBytes of it.
std::string json_excerpt(const nlohmann::json& value);
// The member `key` of `object` (which must be an object); InputError "<where>: <key>: missing".
const nlohmann::json& json_member(const nlohmann::json& object, const std::string& key, const std::string& where);
// `value` as a type; InputError "<where>: expected an integer, got <excerpt>".
int64_t json_int(const nlohmann::json& value, const std::string& where);
double json_number(const nlohmann::json& value, const std::string& where);
std::string json_string(const nlohmann::json& value, const std::string& where);
bool json_bool(const nlohmann::json& value, const std::string& where);

}  // namespace resnet
