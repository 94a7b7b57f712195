#include "cli/common.h"

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <filesystem>
#include <iostream>

#include "cli/version.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet::cli {

void tune_malloc() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

ExperimentConfig resolve_config(const nlohmann::json& base, const std::vector<std::string>& sets,
                                const std::string& origin) {
  nlohmann::json user = base;
  if (!user.is_object()) throw InputError(origin + ": expected a JSON object");
  for (const auto& s : sets) apply_override(user, s);
  try {
    return config_from_json(user);
  } catch (const InputError& e) {
    throw InputError(origin + ": " + e.what());
  }
}

ExperimentConfig resolve_config(const std::string& path, const std::vector<std::string>& sets) {
  nlohmann::json user = read_json_file(path);
  if (user.is_object() && !user.contains("name")) user["name"] = std::filesystem::path(path).stem().string();
  return resolve_config(user, sets, path);
}

int parse_flags(CLI::App& app, int argc, char** argv) {
  const std::string tool = app.get_name();
  app.set_version_flag(
      "--version", [tool] { return version_text(tool); },
      "print the version, LibTorch's, whether CUDA/cuDNN/NCCL are built in, the devices seen");
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << std::flush;
    return kExitOk;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": error: " << first_line(e.what()) << " (see --help)" << std::endl;
    return kExitBadInput;
  }
}

int run_main(const char* tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::cerr << tool << ": error: " << one_line(e.what()) << std::endl;
    return kExitBadInput;
  } catch (const PeerFailed& e) {
    std::cerr << tool << ": " << one_line(e.what()) << std::endl;
    return e.exit_code;
  } catch (const c10::Error& e) {
    std::cerr << tool << ": failed: " << one_line(first_line(e.what_without_backtrace())) << std::endl;
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << tool << ": failed: " << one_line(first_line(e.what())) << std::endl;
    return kExitFailure;
  }
}

}  // namespace resnet::cli
