#pragma once
// Error kinds and the exit codes they map to (the command-line contract every tool keeps):
//   0 success, 2 bad usage / config / input files, 1 runtime failure, 130/143 interrupted.
#include <stdexcept>
#include <string>

namespace resnet {

// Bad config, bad flags, missing/corrupt data or checkpoint: the user can fix it. Exit 2.
// The message is one line that names the file or key.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitBadInput = 2,
  kExitSigint = 130,
  kExitSigterm = 143,
};

// Another process of the same job failed (its own message is in its output): this one stops
// too, with that process's exit code.
class PeerFailed : public std::runtime_error {
 public:
  PeerFailed(int exit_code, const std::string& what) : std::runtime_error(what), exit_code(exit_code) {}
  int exit_code;
};

// `text` as it may appear in a one-line message: control characters (a JSON key may hold any)
// are written as \xNN.
std::string printable(const std::string& text);

// At most `max` bytes of `text` for a one-line message, printable(), with "... (N bytes)" when cut:
// an error quotes a short prefix of an offending value, never the whole of it.
std::string excerpt(const std::string& text, size_t max = 60);

// First line of a (possibly multi-line, c10-decorated) error message, for one-line reports.
std::string first_line(const std::string& message);

// A message as a tool prints it: one line whatever it holds (control characters escaped) and at
// most budget::kMessageBytes long (cut with "... (N bytes)").
std::string one_line(const std::string& message);

}  // namespace resnet
