#include "config/config.h"

#include <filesystem>

#include "config/fields.h"
#include "config/keys.h"
#include "models/family.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

using nlohmann::json;
using When = KeyCheck::When;

json::json_pointer pointer(const std::string& dotted) {
  std::string p = "/" + dotted;
  for (char& ch : p)
    if (ch == '.') ch = '/';
  return json::json_pointer(p);
}

bool is_section(const std::string& name) {
  for (const auto& k : config_keys())
    if (k.name.rfind(name + ".", 0) == 0) return true;
  return false;
}

// Every key of `user` (an object at `path`: "" or a section) is a config key with a value of
// its type, or a section holding such keys.
void check_user(const json& user, const std::string& path) {
  if (!user.is_object()) throw InputError((path.empty() ? "config" : path) + fields::expected("an object", user));
  for (const auto& [key, value] : user.items()) {
    const std::string name = path.empty() ? key : path + "." + key;
    const std::string shown = path.empty() ? excerpt(key) : path + "." + excerpt(key);
    if (const ConfigKey* k = find_key(name)) {
      const std::string error = k->type_error(value);
      if (!error.empty()) throw InputError(shown + error);
    } else if (is_section(name)) {
      check_user(value, name);
    } else {
      throw InputError(shown + ": unknown key");
    }
  }
}

bool in_model(const ConfigKey& k) { return k.name.rfind("model.", 0) == 0; }

// Runs `k`'s checks that `pick` selects; the first that fails is an InputError naming the key.
template <class Pick>
void run_checks(const ConfigKey& k, const ExperimentConfig& c, Pick pick) {
  for (const auto& check : k.checks) {
    if (!pick(check.when)) continue;
    const std::string why = check.fails(c);
    if (!why.empty()) throw InputError(k.name + ": " + why);
  }
}

}  // namespace

json to_json(const ExperimentConfig& c) {
  json j = json::object();
  for (const auto& k : config_keys()) j[pointer(k.name)] = k.get(c);
  return j;
}

ExperimentConfig config_from_json(const json& user) {
  check_user(user, "");
  ExperimentConfig c;
  for (const auto& k : config_keys()) {
    const auto p = pointer(k.name);
    if (user.contains(p)) k.set(c, user.at(p));
  }
  validate(c);
  return c;
}

void validate_model(ModelConfig& m) {
  ExperimentConfig c;
  c.model = m;
  for (const auto& k : config_keys()) {
    if (!in_model(k)) continue;
    if (k.canonical) k.canonical(c);
    run_checks(k, c, [](When w) { return w == When::kValue; });
  }
  family_of(c.model).resolve(c.model);
  for (const auto& k : config_keys())
    if (in_model(k)) run_checks(k, c, [](When w) { return w == When::kResolved; });
  m = c.model;
}

void validate(ExperimentConfig& c) {
  validate_model(c.model);
  // The model's experiment-only checks first (CIFAR-10 has 10 classes), then every other key's.
  for (const auto& k : config_keys()) {
    if (in_model(k)) {
      run_checks(k, c, [](When w) { return w == When::kExperiment; });
      continue;
    }
    if (k.canonical) k.canonical(c);
    run_checks(k, c, [](When) { return true; });
  }
}

ExperimentConfig load_config(const std::string& path) {
  json user = read_json_file(path);
  if (!user.is_object()) throw InputError(path + ": expected a JSON object");
  if (!user.contains("name")) user["name"] = std::filesystem::path(path).stem().string();
  try {
    return config_from_json(user);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
}

void apply_override(json& user, const std::string& assignment) {
  // JSON text is UTF-8. The parser checks the values it parses, but keys and bare words go in as
  // they are, and other bytes would make every later dump() of the config throw (error
  // messages, config.json, the checkpoint).
  try {
    (void)json(assignment).dump();
  } catch (const json::exception&) {
    throw InputError("--set " + excerpt(json(assignment).dump(-1, ' ', false, json::error_handler_t::replace)) +
                     ": not valid UTF-8");
  }
  const std::string shown = "--set " + excerpt(assignment);  // how messages name it
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw InputError(shown + ": expected key=value");
  if (!user.is_object() && !user.is_null()) throw InputError(shown + ": the config is not a JSON object");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;  // bare words are strings: --set model.shortcut=B (and 1e400 gets "expected a number")
  }
  json* node = &user;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw InputError(shown + ": empty key segment");
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    json& child = (*node)[part];
    if (child.is_null()) child = json::object();
    if (!child.is_object()) throw InputError(shown + ": " + excerpt(key.substr(0, dot)) + " is not an object");
    node = &child;
    start = dot + 1;
  }
}

}  // namespace resnet
