#pragma once
// What every resnet-* binary does the same way: process tuning, config resolution, and turning
// exceptions into one clear line and the contract's exit codes.
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"

namespace CLI {
class App;
}

namespace resnet::cli {

// glibc returns large blocks to the OS after every step, which made LibTorch 10-20% slower than
// Python on the CPU (measured on the 2-core test machine; C++/Python = 0.95-1.02 with these
// settings). Call first thing in main().
void tune_malloc();

// Loads `path`, applies `--set` overrides in order, validates. Errors name file and key.
ExperimentConfig resolve_config(const std::string& path, const std::vector<std::string>& sets);
// Same, starting from an already-resolved config (e.g. the one inside a checkpoint).
ExperimentConfig resolve_config(const nlohmann::json& base, const std::vector<std::string>& sets,
                                const std::string& origin);

// Parses flags. Returns -1 to go on, else the exit code: 0 after --help, 2 for a usage error
// (reported as one line, like every other input error).
int parse_flags(CLI::App& app, int argc, char** argv);

// Runs `body`; InputError -> "<tool>: error: <msg>" exit 2, any other exception -> exit 1.
int run_main(const char* tool, const std::function<int()>& body);

}  // namespace resnet::cli
