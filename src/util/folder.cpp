#include "util/folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

std::string why(int error) { return std::strerror(error); }

std::string describe_mode(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// A file opened for reading is a regular file of at most `max_bytes`; InputError naming `shown`.
ReadableFile checked_for_reading(Fd fd, const std::string& shown, uint64_t max_bytes, const char* what) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw InputError(shown + ": cannot read (" + why(errno) + ")");
  if (S_ISDIR(st.st_mode)) throw InputError(shown + ": is a folder, not a file");
  if (!S_ISREG(st.st_mode)) throw InputError(shown + ": is " + describe_mode(st.st_mode) + ", not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    throw InputError(shown + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) +
                     " bytes " + what + " may have");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return ReadableFile{std::move(fd), size};
}

// The message for an openat() of `name` in `dirfd` that failed with `error`, when an entry that
// is not what it should be is the reason (a symlink: ELOOP; a FIFO without a writer: ENXIO...).
[[noreturn]] void refuse_entry(int dirfd, const std::string& name, const std::string& shown, int error,
                               const char* wanted) {
  const std::string kind = describe_entry(dirfd, name);
  if (kind == "a symlink")
    throw InputError(shown + ": is a symlink, where " + wanted +
                     " should be (refused: nothing in this folder is "
                     "followed out of it)");
  if (kind != "a regular file" && kind != "a folder" && kind != "nothing")
    throw InputError(shown + ": is " + kind + ", where " + wanted + " should be");
  if (kind == "a folder" && std::string(wanted) != "a folder")
    throw InputError(shown + ": is a folder, where " + wanted + " should be");
  throw InputError(shown + ": cannot open (" + why(error) + ")");
}

}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

int Fd::close() {
  if (fd_ < 0) return 0;
  const int rc = ::close(release());
  return rc == 0 ? 0 : errno;
}

std::string describe_entry(int dirfd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return "nothing";
  return describe_mode(st.st_mode);
}

ReadableFile open_for_reading(const std::string& path, uint64_t max_bytes, const char* what) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a folder, not a file");
    throw InputError(path + ": cannot open (" + why(errno) + ")");
  }
  return checked_for_reading(std::move(fd), path, max_bytes, what);
}

bool read_exactly(int fd, void* out, uint64_t size, uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t got = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got, size -= static_cast<uint64_t>(got), offset += static_cast<uint64_t>(got);
  }
  return true;
}

std::string read_whole(const ReadableFile& file, const std::string& path) {
  std::string out(file.size, '\0');
  if (!read_exactly(file.fd.get(), out.data(), file.size, 0))
    throw InputError(path + ": read failed (" +
                     (errno ? why(errno) : std::string("the file changed while it was read")) + ")");
  return out;
}

Folder Folder::open(const std::string& path) {
  auto fd = std::make_shared<Fd>(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd->get() < 0) {
    const int e = errno;
    if (e == ENOENT) throw InputError(path + ": no such folder");
    if (e == ENOTDIR) throw InputError(path + ": exists and is not a folder");
    throw InputError(path + ": cannot open the folder (" + why(e) + ")");
  }
  return Folder(std::move(fd), path);
}

Folder Folder::create(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec && !std::filesystem::is_directory(path))
    throw InputError(path + ": cannot create the folder (" + ec.message() + ")");
  return open(path);
}

int Folder::fd() const { return fd_->get(); }

std::string Folder::file(const std::string& name) const {
  if (path_.empty() || path_ == ".") return name;
  return path_ + (path_.back() == '/' ? "" : "/") + name;
}

EntryKind Folder::kind(const std::string& name) const {
  struct stat st {};
  if (::fstatat(fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return EntryKind::kMissing;
  if (S_ISREG(st.st_mode)) return EntryKind::kFile;
  if (S_ISDIR(st.st_mode)) return EntryKind::kFolder;
  if (S_ISLNK(st.st_mode)) return EntryKind::kSymlink;
  return EntryKind::kOther;
}

std::optional<Folder> Folder::sub_if_exists(const std::string& name) const {
  auto fd = std::make_shared<Fd>(::openat(this->fd(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd->get() >= 0) return Folder(std::move(fd), file(name));
  if (errno == ENOENT) return std::nullopt;
  refuse_entry(this->fd(), name, file(name), errno, "a folder");
}

Folder Folder::sub(const std::string& name, bool create) const {
  if (auto folder = sub_if_exists(name)) return *folder;
  if (!create) throw InputError(file(name) + ": no such folder");
  if (::mkdirat(fd(), name.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error(file(name) + ": cannot create the folder (" + why(errno) + ")");
  sync();  // the new folder's entry survives a power cut
  if (auto folder = sub_if_exists(name)) return *folder;
  throw InputError(file(name) + ": no such folder");
}

std::optional<ReadableFile> Folder::open_to_read(const std::string& name, uint64_t max_bytes) const {
  Fd f(::openat(fd(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (f.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    refuse_entry(fd(), name, file(name), errno, "a regular file");
  }
  return checked_for_reading(std::move(f), file(name), max_bytes, "this file");
}

std::optional<std::string> Folder::read(const std::string& name, uint64_t max_bytes) const {
  std::optional<ReadableFile> f = open_to_read(name, max_bytes);
  if (!f) return std::nullopt;
  return read_whole(*f, file(name));
}

Fd Folder::open_to_append(const std::string& name, bool read_write) const {
  const int mode = read_write ? O_RDWR : O_WRONLY | O_APPEND;
  Fd f(::openat(fd(), name.c_str(), mode | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644));
  if (f.get() < 0) refuse_entry(fd(), name, file(name), errno, "a regular file");
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) throw std::runtime_error(file(name) + ": cannot write (" + why(errno) + ")");
  if (!S_ISREG(st.st_mode))
    throw InputError(file(name) + ": is " + describe_mode(st.st_mode) + ", where a regular file should be");
  if (st.st_nlink != 1)
    throw InputError(file(name) + ": has " + std::to_string(st.st_nlink) +
                     " hard links (refused: writing it would change a file outside this folder)");
  const int flags = ::fcntl(f.get(), F_GETFL);
  if (flags >= 0) ::fcntl(f.get(), F_SETFL, flags & ~O_NONBLOCK);
  return f;
}

void Folder::append(const std::string& name, const std::string& content) const {
  Fd f = open_to_append(name);
  const char* p = content.data();
  size_t left = content.size();
  int e = 0;
  while (left > 0 && e == 0) {
    const ssize_t n = ::write(f.get(), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) e = errno;
    if (n > 0) p += n, left -= static_cast<size_t>(n);
  }
  if (e == 0 && ::fsync(f.get()) != 0) e = errno;
  const int closed = f.close();
  if (e == 0) e = closed;
  if (e) throw std::runtime_error(file(name) + ": append failed (" + why(e) + ")");
}

Fd Folder::create_new(const std::string& name) const {
  // A stale temporary (a crash), or whatever was planted there: the entry goes, never its target.
  if (::unlinkat(fd(), name.c_str(), 0) != 0 && errno != ENOENT && errno != EISDIR && errno != EPERM)
    throw std::runtime_error(file(name) + ": cannot remove the stale temporary file (" + why(errno) + ")");
  Fd f(::openat(fd(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (f.get() < 0) {
    if (errno == EEXIST) refuse_entry(fd(), name, file(name), errno, "a temporary file");
    throw std::runtime_error(file(name) + ": cannot write (" + why(errno) + ")");
  }
  return f;
}

void Folder::rename(const std::string& from, const std::string& to) const {
  if (::renameat(fd(), from.c_str(), fd(), to.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(fd(), from.c_str(), 0);
    if (e == EISDIR || e == ENOTEMPTY || e == EEXIST)
      throw InputError(file(to) + ": is a folder, where a file should be");
    throw std::runtime_error(file(to) + ": cannot rename the temp file (" + why(e) + ")");
  }
  sync();
}

void Folder::remove(const std::string& name) const {
  if (::unlinkat(fd(), name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno == EISDIR || errno == EPERM) throw InputError(file(name) + ": is a folder, where a file should be");
  throw std::runtime_error(file(name) + ": cannot remove (" + why(errno) + ")");
}

void Folder::write_atomic(const std::string& name, const std::string& content) const {
  AtomicFile f(*this, name);
  f.write(content.data(), content.size());
  f.commit();
}

void Folder::sync() const {
  // Some file systems cannot fsync a folder (EINVAL): nothing more can be done there.
  if (::fsync(fd()) != 0 && errno != EINVAL)
    throw std::runtime_error(path_ + ": folder fsync failed (" + why(errno) + ")");
}

}  // namespace resnet
