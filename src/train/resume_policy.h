#pragma once
// What a resumed run may change, and how a run folder's stored config becomes the config a
// resume trains with: the policy, apart from the loop that applies it.
//
// A resume continues a run only if the result stays one run: keys that leave it one run (its
// length, the lr schedule, the cadence, the runtime; the data folder's path when its files are the
// same) are declared resumable in config/keys.cpp; the others (batch, seed, data, the model,
// momentum, ...) change only with --allow-change KEY. Every change is recorded
// ({step, key, from, to, forced}) in the checkpoint and in config.json's resume_changes.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

class CheckpointReader;

// Keys that `resume --set` may change without --allow-change: those declared resumable
// (config/keys.cpp).
const std::vector<std::string>& resumable_keys();

// True if `key` is one of `allow` or inside one of them (a section: "data", "train.lr_schedule").
bool allowed_by(const std::vector<std::string>& allow, const std::string& key);

// What a resume will train with.
struct ResumePlan {
  ExperimentConfig config;  // the stored config with the --set values applied
  nlohmann::json changes;   // the run's earlier changes, then this resume's
  int64_t step = 0;         // where it continues (0: stopped before its first checkpoint)
  std::string origin;       // the file the stored config came from (for errors)
};

// The plan for resuming the run in `run_dir`, from its checkpoint (`reader`, or null when it was
// stopped before its first one: then from its config.json). InputError naming the key for a
// change the policy refuses, or naming the file for a stored config that does not validate.
ResumePlan plan_resume(const std::string& run_dir, const CheckpointReader* reader, const std::vector<std::string>& sets,
                       const std::vector<std::string>& allow);

// The data folder a resumed run reads (`data_dir` as given, `data_path` absolute), as a change of
// the run: a new path is recorded, and files other than the ones it trained on (another
// fingerprint) are refused unless --allow-change data.dir. `changes` gets the entries.
void check_data_change(const CheckpointReader& reader, const std::string& data_dir, const std::string& data_path,
                       const std::string& fingerprint, const std::vector<std::string>& allow, nlohmann::json& changes);

// Under torchrun, after a restart (TORCHELASTIC_RESTART_COUNT > 0): true when `out_dir` holds the
// run this command started, i.e. its stored config is `config` (the data folder aside), so the
// command should resume it. A different run that happens to be there is never resumed.
bool restarted_run(const std::string& out_dir, const ExperimentConfig& config);

}  // namespace resnet
