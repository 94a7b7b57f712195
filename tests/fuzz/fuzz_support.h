#pragma once
// What every fuzz target shares: the rule for exceptions and a scratch folder for readers that
// take paths.
//
// The rule (README "Fuzzing and sanitizers"): a reader of user input may fail only with
// resnet::InputError, whose message is one non-empty line naming the file or key (the CLI turns
// it into exit 2). Anything else that escapes (c10::Error, std::out_of_range, nlohmann's
// exceptions, std::bad_alloc from a lying size, ...) would reach the user as exit 1 and a
// LibTorch backtrace: the target aborts, so libFuzzer reports it as a crash with its input.
#include <cxxabi.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "util/errors.h"

namespace resnet::fuzz {

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\n==== FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string type_of(const std::exception& e) {
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : typeid(e).name();
  std::free(name);
  return out;
}

// Runs `body`; returns true if it finished, false if it threw an acceptable InputError. The
// message must be one line and mention `must_name` (the file or folder), when given.
template <typename F>
bool expect_only_input_errors(F&& body, const std::string& must_name = "") {
  try {
    body();
    return true;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    if (msg.empty()) finding("empty InputError message");
    if (msg.find('\n') != std::string::npos) finding("InputError message is not one line: " + msg);
    if (!must_name.empty() && msg.find(must_name) == std::string::npos)
      finding("InputError message does not name " + must_name + ": " + msg);
    return false;
  } catch (const std::exception& e) {
    finding("escaped " + type_of(e) + ": " + first_line(e.what()));
  } catch (...) {
    finding("escaped an exception that is not a std::exception");
  }
}

// A private folder for this process (under $TMPDIR, /dev/shm when it exists: no disk writes per
// execution), removed at exit. libFuzzer leaves by _Exit after a finding, a timeout or a single
// replayed input, which skips that, so each start also removes the folders of processes that are
// gone (they are named by process id).
class ScratchDir {
 public:
  ScratchDir() {
    namespace fs = std::filesystem;
    const char* env = std::getenv("TMPDIR");
    const fs::path base = env && *env                    ? fs::path(env)
                          : fs::is_directory("/dev/shm") ? fs::path("/dev/shm")
                                                         : fs::temp_directory_path();
    const std::string prefix = "resnet-fuzz-";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(base, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      const std::string pid = name.substr(prefix.size());
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
    }
    path_ = (base / (prefix + std::to_string(::getpid()))).string();
    fs::remove_all(path_, ec);
    if (!fs::create_directory(path_, ec)) finding("cannot create the scratch folder " + path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One scratch folder per process, alive for all executions.
inline const ScratchDir& scratch() {
  static ScratchDir dir;
  return dir;
}

inline void write_bytes(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) finding("cannot write " + path);
}

}  // namespace resnet::fuzz
