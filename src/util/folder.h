#pragma once
// Files opened, not trusted (docs/safety.md, "Run folders").
//
// A folder the tools write in (a run folder, an --out folder) is opened once; every file in it is
// then opened relative to that descriptor with O_NOFOLLOW: a symlink planted where a file or a
// subfolder should be is refused by name, never followed out of the folder. Files created there
// are created new (temporaries with O_EXCL, renamed into place); a file appended to or locked
// must be a regular file with no other hard link (which would be a way to write elsewhere).
// Every file read, in a folder or named by the user, must be a regular file of a bounded size: a
// FIFO, a device, a socket or a folder is refused (opened with O_NONBLOCK, so a FIFO cannot hang
// the open), and a file larger than the reader's budget (util/budgets.h) is refused before any
// of it is read.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace resnet {

// An open file descriptor, closed when it goes.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // close() with its result: NFS and quotas report late write errors there. Returns 0 or errno.
  int close();

 private:
  int fd_ = -1;
};

// A regular file open for reading and its size at open time.
struct ReadableFile {
  Fd fd;
  uint64_t size = 0;
};

// Opens a file the user named (symlinks followed: the user chose them) for reading. InputError
// naming `path` if it is missing, not a regular file, or larger than `max_bytes` (`what`: what
// the budget is for, e.g. "a weights file").
ReadableFile open_for_reading(const std::string& path, uint64_t max_bytes, const char* what);
// Reads exactly the file's size from offset 0 (a file that changes meanwhile is an InputError).
std::string read_whole(const ReadableFile& file, const std::string& path);
// Reads exactly `size` bytes at `offset` into `out`; false at a short read or an error.
bool read_exactly(int fd, void* out, uint64_t size, uint64_t offset);

// What a folder entry is, without following it.
enum class EntryKind { kMissing, kFile, kFolder, kSymlink, kOther };

class Folder {
 public:
  // An existing folder (symlinks in `path` itself are followed: the user named it). InputError
  // naming it if it is missing or not a folder.
  static Folder open(const std::string& path);
  // The same, creating it (and its parents) first if missing.
  static Folder create(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const;
  // `name` as messages show it: path()/name.
  std::string file(const std::string& name) const;

  // A folder inside this one, opened without following a symlink; created if missing and
  // `create` (and this folder synced, so that its entry survives a power cut).
  Folder sub(const std::string& name, bool create) const;
  // nullopt if `name` does not exist; InputError if it is something else than a folder.
  std::optional<Folder> sub_if_exists(const std::string& name) const;
  EntryKind kind(const std::string& name) const;

  // A regular file in this folder, without following a symlink, of at most `max_bytes`;
  // nullopt if it does not exist. InputError naming it for anything else.
  std::optional<ReadableFile> open_to_read(const std::string& name, uint64_t max_bytes) const;
  std::optional<std::string> read(const std::string& name, uint64_t max_bytes) const;

  // A regular file opened for appending (created if missing, 0644), refused if it is a symlink,
  // not a regular file, or has another hard link. With `read_write`, opened O_RDWR without
  // O_APPEND (the lock).
  Fd open_to_append(const std::string& name, bool read_write = false) const;
  // Appends and fsyncs. std::runtime_error naming the file on a write error.
  void append(const std::string& name, const std::string& content) const;
  // A new temporary `name` (a stale one, a symlink included, is removed first: never followed),
  // created with O_EXCL | O_NOFOLLOW.
  Fd create_new(const std::string& name) const;
  // rename(from, to) within this folder, then fsync of the folder.
  void rename(const std::string& from, const std::string& to) const;
  // Removes a file or a symlink (not what it points to); missing is fine.
  void remove(const std::string& name) const;
  // Replaces `name` atomically with `content` (AtomicFile in util/json_io.h).
  void write_atomic(const std::string& name, const std::string& content) const;
  void sync() const;

 private:
  Folder(std::shared_ptr<Fd> fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  std::shared_ptr<Fd> fd_;
  std::string path_;
};

// "a symlink", "a FIFO", ... for messages; kind of the entry `name` of `dirfd`, not followed.
std::string describe_entry(int dirfd, const std::string& name);

}  // namespace resnet
