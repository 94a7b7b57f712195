// Fuzz target: a config file plus --set overrides, read the way resnet-train reads them.
//
// Input: text. Lines that start with "--set " are overrides (in order); all other lines are the
// config file. Example (tests/fuzz/corpus/config/):
//   {"model": {"depth": 56}}
//   --set train.lr=0.05
//
// Checks, beyond "only InputError": a config that is accepted
//   - keeps every integer the user wrote (no silent narrowing: depth 4294967316 is not 20),
//   - can be written (to_json().dump(): what config.json and the checkpoint hold) and read back
//     to the same config (resume and resnet-eval re-read the stored one),
//   - gives a defined step count and learning rate for every step the trainer asks about.
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/common.h"
#include "config/config.h"
#include "fuzz_support.h"
#include "models/resnet.h"
#include "train/lr_schedule.h"

using nlohmann::json;
using resnet::fuzz::finding;

namespace {

// Every integer leaf of `user` must appear unchanged at the same place in `resolved` (compared as
// text too: nlohmann finds 18446744073709551615 equal to -1).
void check_integers_kept(const json& user, const json& resolved, const std::string& path) {
  if (user.is_object()) {
    for (const auto& [key, value] : user.items())
      if (resolved.is_object() && resolved.contains(key))
        check_integers_kept(value, resolved.at(key), path + "." + key);
  } else if (user.is_array()) {
    for (size_t i = 0; i < user.size() && resolved.is_array() && i < resolved.size(); ++i)
      check_integers_kept(user[i], resolved[i], path + "[" + std::to_string(i) + "]");
  } else if (user.is_number_integer() &&
             (user != resolved || (resolved.is_number_integer() && user.dump() != resolved.dump()))) {
    finding("accepted " + path + " = " + user.dump() + " but resolved it to " + resolved.dump());
  }
}

void check_accepted(const resnet::ExperimentConfig& c, const json& user) {
  const json resolved = resnet::to_json(c);
  check_integers_kept(user, resolved, "");
  // Written as config.json and into every checkpoint: must not throw (e.g. invalid UTF-8).
  const std::string text = resolved.dump(2);
  resnet::ExperimentConfig again;
  if (!resnet::fuzz::expect_only_input_errors([&] { again = resnet::config_from_json(json::parse(text)); }))
    finding("the resolved config does not validate again: " + text);
  if (resnet::to_json(again) != resolved) finding("the resolved config changes when read again: " + text);

  // What the trainer derives from the config, with the extremes of steps_per_epoch (50,000
  // images at batch 1, one image at any batch).
  resnet::network_spec(c.model);
  for (int64_t steps_per_epoch : {int64_t{1}, int64_t{390}, int64_t{50000}}) {
    const int64_t total = resnet::total_steps(c.train, steps_per_epoch);
    if (total < 1) finding("total_steps " + std::to_string(total) + " for " + text);
    std::vector<int64_t> steps = {0, total - 1, c.train.lr_schedule.warmup_steps};
    for (int64_t m : c.train.lr_schedule.milestones) steps.push_back(m);
    for (int64_t step : steps) {
      if (step < 0 || step >= total) continue;
      const double lr = resnet::learning_rate(c.train, step, total);
      if (!std::isfinite(lr) || lr < 0)
        finding("learning rate " + std::to_string(lr) + " at step " + std::to_string(step) + " for " + text);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string file_text, line;
  std::vector<std::string> sets;
  while (std::getline(in, line)) {
    if (line.rfind("--set ", 0) == 0) sets.push_back(line.substr(6));
    else file_text += line + "\n";
  }
  const std::string path = resnet::fuzz::scratch().file("config.json");
  resnet::fuzz::write_bytes(path, file_text.data(), file_text.size());

  // resnet-train --config PATH --set ...: errors name the file, or the --set.
  resnet::ExperimentConfig c;
  const bool ok = resnet::fuzz::expect_only_input_errors([&] { c = resnet::cli::resolve_config(path, sets); });
  // resnet-train --config PATH (no overrides) goes through load_config in the library's API.
  resnet::fuzz::expect_only_input_errors([&] { resnet::load_config(path); }, path);
  if (ok) {
    json user = json::parse(file_text);  // it parsed once, so it parses again
    for (const auto& s : sets) resnet::apply_override(user, s);
    check_accepted(c, user);
  }
  return 0;
}
