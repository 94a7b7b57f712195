#pragma once
// The config keys, each declared once (config/keys.cpp): its dotted name, the field it fills
// (by name, through an accessor: never by position), a one-line description, its checks,
// whether a resume may change it, and an example value other than the default (the test that
// sets every key reads each one back). From these rows come to_json / config_from_json,
// validate's messages, resumable_keys(), `resnet-train --help-config` and docs/config.md.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

// A check of one key: `fails` returns "" when the config passes, else why not (the message
// after "key: "). `text` is what docs/config.md says about it.
struct KeyCheck {
  enum class When {
    kValue,       // the value alone (or with keys already checked): before the family resolves "auto"
    kResolved,    // after the family resolved the model (model.* keys) / after the model (others)
    kExperiment,  // only for a whole experiment (validate), not for a bare model (validate_model)
  };
  std::string text;
  std::function<std::string(const ExperimentConfig&)> fails;
  When when = When::kValue;
};

struct ConfigKey {
  std::string name;         // dotted: "train.lr_schedule.milestones"
  std::string type;         // integer | number | boolean | string | true/false/auto | [integer] | [number] | [string]
  std::string description;  // one line
  bool resumable = false;   // a resume may change it without --allow-change
  std::vector<KeyCheck> checks;
  nlohmann::json example;  // a valid value other than the default

  std::function<nlohmann::json(const ExperimentConfig&)> get;
  // "" when `value` has the key's type, else the message ("expected an integer, got ...");
  // `set` then converts it into the field.
  std::function<std::string(const nlohmann::json& value)> type_error;
  std::function<void(ExperimentConfig&, const nlohmann::json&)> set;
  // Canonical spelling before the checks (model.shortcut: "b" -> "B"); may be empty.
  std::function<void(ExperimentConfig&)> canonical;

  nlohmann::json default_value() const { return get(ExperimentConfig{}); }
  std::string section() const;  // "train.lr_schedule" for "train.lr_schedule.gamma", "" for "name"
};

// Every key, in the order of the JSON document (and of docs/config.md).
const std::vector<ConfigKey>& config_keys();
// The key named `name`, or null.
const ConfigKey* find_key(const std::string& name);

// Every key with its type, default, checks, resumability and description: `markdown` is
// docs/config.md (a table per section), else plain text for `resnet-train --help-config`.
std::string config_reference(bool markdown);

}  // namespace resnet
