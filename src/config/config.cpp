#include "config/config.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

using nlohmann::json;

// Keys whose value is true, false or "auto" (decided later from the device).
const std::set<std::string> kTriState = {"runtime.channels_last", "runtime.cuda_graph",
                                         "runtime.cudnn_benchmark"};
// Arrays of strings, and of numbers (every other array holds integers).
const std::set<std::string> kStringArrays = {"model.init_skip"};
const std::set<std::string> kNumberArrays = {"data.mean", "data.std"};

json tri(const std::optional<bool>& v) { return v ? json(*v) : json("auto"); }
std::optional<bool> tri(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  return std::nullopt;
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}


// JSON integers above INT64_MAX arrive as unsigned, and get<int64_t>() would wrap them.
bool fits_int64(const json& v) {
  return !v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

// Checks that `user` has only keys of `schema`, each of the schema's type.
void check_schema(const json& schema, const json& user, const std::string& path) {
  auto fail = [&](const std::string& want) {
    throw InputError(path + ": expected " + want + ", got " + type_name(user) + " (" +
                     user.dump() + ")");
  };
  if (kTriState.count(path)) {
    if (!user.is_boolean() && user != json("auto")) fail("true, false or \"auto\"");
    return;
  }
  if (schema.is_object()) {
    if (!user.is_object()) fail("an object");
    for (const auto& [key, value] : user.items()) {
      const std::string sub = path.empty() ? printable(key) : path + "." + printable(key);
      if (!schema.contains(key)) throw InputError(sub + ": unknown key");
      check_schema(schema.at(key), value, sub);
    }
  } else if (schema.is_number_integer()) {
    if (!user.is_number_integer() || !fits_int64(user)) fail("an integer");
  } else if (schema.is_number()) {
    if (!user.is_number()) fail("a number");
  } else if (schema.is_boolean()) {
    if (!user.is_boolean()) fail("a boolean (true or false)");
  } else if (schema.is_string()) {
    if (!user.is_string()) fail("a string");
  } else if (schema.is_array()) {
    if (!user.is_array()) fail("an array");
    const bool strings = kStringArrays.count(path) > 0, numbers = kNumberArrays.count(path) > 0;
    for (size_t i = 0; i < user.size(); ++i) {
      if (strings || numbers) {
        if (strings ? !user[i].is_string() : !user[i].is_number())
          throw InputError(path + "[" + std::to_string(i) + "]: expected " + (strings ? "a string" : "a number") +
                           ", got " + user[i].dump());
        continue;
      }
      if (!user[i].is_number_integer() || !fits_int64(user[i]))
        throw InputError(path + "[" + std::to_string(i) + "]: expected an integer, got " +
                         user[i].dump());
    }
  }
}

void merge_into(json& base, const json& over) {
  for (const auto& [key, value] : over.items()) {
    if (value.is_object() && base.contains(key) && base[key].is_object())
      merge_into(base[key], value);
    else
      base[key] = value;
  }
}

constexpr int64_t kMaxEpochs = 1000000;

// The few fields that are `int`: get<int>() would truncate 4294967316 to 20.
int to_int(const json& v, const std::string& key) {
  const auto x = v.get<int64_t>();
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    throw InputError(key + ": " + v.dump() + " is out of range");
  return static_cast<int>(x);
}

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw InputError(key + ": " + why);
}

void one_of(const std::string& key, const std::string& value,
            std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += list.empty() ? a : std::string("|") + a;
  }
  bad(key, "'" + printable(value) + "' is not one of " + list);
}

// One of data.mean / data.std: R, G, B on the 0-1 scale (a std of 0 would divide by zero).
void check_channel_values(const char* key, const std::vector<double>& v, bool is_std) {
  const std::string example = " (ImageNet's: data.mean [0.485, 0.456, 0.406], data.std [0.229, 0.224, 0.225])";
  if (v.size() != 3) bad(key, "expected 3 values (R, G, B), got " + std::to_string(v.size()) + example);
  for (double x : v)
    if (x < 0 || x > 1 || (is_std && x == 0))
      bad(key, json(x).dump() + " is not " + (is_std ? "a std" : "a mean") + " on the 0-1 scale of images / 255" + example);
}

// data.mean / data.std: both or neither, per channel.
void validate_normaliser(const DataConfig& d) {
  if (d.mean.empty() && !d.std.empty()) bad("data.std", "needs data.mean too (an explicit normaliser is both)");
  if (!d.mean.empty() && d.std.empty()) bad("data.mean", "needs data.std too (an explicit normaliser is both)");
  if (d.mean.empty()) return;
  if (d.normalize != "channel")
    bad("data.mean", "an explicit normaliser is per channel, and data.normalize is '" + d.normalize + "'");
  check_channel_values("data.mean", d.mean, false);
  check_channel_values("data.std", d.std, true);
}

}  // namespace

json to_json(const ExperimentConfig& c) {
  const auto& m = c.model;
  const auto& d = c.data;
  const auto& t = c.train;
  const auto& s = t.lr_schedule;
  const auto& r = c.runtime;
  return json{
      {"name", c.name},
      {"model",
       {{"family", m.family}, {"depth", m.depth}, {"residual", m.residual},
        {"shortcut", m.shortcut}, {"option_a_padding", m.option_a_padding}, {"block", m.block},
        {"preact", m.preact}, {"stem", m.stem},
        {"num_classes", m.num_classes}, {"zero_init_residual", m.zero_init_residual},
        {"init_from", m.init_from}, {"init_skip", m.init_skip}, {"init_sha256", m.init_sha256}}},
      {"data",
       {{"dir", d.dir}, {"val_size", d.val_size}, {"val_seed", d.val_seed},
        {"train_limit", d.train_limit}, {"test_limit", d.test_limit},
        {"normalize", d.normalize}, {"mean", d.mean}, {"std", d.std}, {"augment", d.augment}}},
      {"train",
       {{"batch_size", t.batch_size}, {"iterations", t.iterations}, {"epochs", t.epochs},
        {"lr", t.lr}, {"momentum", t.momentum}, {"nesterov", t.nesterov},
        {"weight_decay", t.weight_decay}, {"eval_every", t.eval_every},
        {"checkpoint_every", t.checkpoint_every}, {"log_every", t.log_every},
        {"eval_batch_size", t.eval_batch_size},
        {"lr_schedule",
         {{"type", s.type}, {"milestones", s.milestones}, {"gamma", s.gamma},
          {"warmup", s.warmup}, {"warmup_steps", s.warmup_steps}, {"warmup_lr", s.warmup_lr},
          {"min_lr", s.min_lr}}}}},
      {"runtime",
       {{"device", r.device}, {"threads", r.threads}, {"seed", r.seed},
        {"precision", r.precision}, {"channels_last", tri(r.channels_last)},
        {"cuda_graph", tri(r.cuda_graph)}, {"cudnn_benchmark", tri(r.cudnn_benchmark)},
        {"dist_backend", r.dist_backend}, {"dist_timeout_s", r.dist_timeout_s},
        {"tensorboard", r.tensorboard}}},
  };
}

ExperimentConfig config_from_json(const json& user) {
  const json schema = to_json(ExperimentConfig{});
  check_schema(schema, user, "");
  json j = schema;
  merge_into(j, user);

  ExperimentConfig c;
  c.name = j["name"];
  const json& m = j["model"];
  c.model.family = m["family"];
  c.model.depth = to_int(m["depth"], "model.depth");
  c.model.residual = m["residual"];
  c.model.shortcut = m["shortcut"];
  c.model.option_a_padding = m["option_a_padding"];
  c.model.block = m["block"];
  c.model.preact = m["preact"];
  c.model.stem = m["stem"];
  c.model.num_classes = to_int(m["num_classes"], "model.num_classes");
  c.model.zero_init_residual = m["zero_init_residual"];
  c.model.init_from = m["init_from"];
  c.model.init_skip = m["init_skip"].get<std::vector<std::string>>();
  c.model.init_sha256 = m["init_sha256"];
  const json& d = j["data"];
  c.data.dir = d["dir"];
  c.data.val_size = d["val_size"];
  c.data.val_seed = d["val_seed"];
  c.data.train_limit = d["train_limit"];
  c.data.test_limit = d["test_limit"];
  c.data.normalize = d["normalize"];
  c.data.mean = d["mean"].get<std::vector<double>>();
  c.data.std = d["std"].get<std::vector<double>>();
  c.data.augment = d["augment"];
  const json& t = j["train"];
  const json& s = t["lr_schedule"];
  c.train.batch_size = t["batch_size"];
  c.train.iterations = t["iterations"];
  c.train.epochs = t["epochs"];
  c.train.lr = t["lr"];
  c.train.momentum = t["momentum"];
  c.train.nesterov = t["nesterov"];
  c.train.weight_decay = t["weight_decay"];
  c.train.eval_every = t["eval_every"];
  c.train.checkpoint_every = t["checkpoint_every"];
  c.train.log_every = t["log_every"];
  c.train.eval_batch_size = t["eval_batch_size"];
  c.train.lr_schedule = {s["type"], s["milestones"].get<std::vector<int64_t>>(), s["gamma"],
                         s["warmup"], s["warmup_steps"], s["warmup_lr"], s["min_lr"]};
  const json& r = j["runtime"];
  c.runtime = {r["device"], r["threads"], r["seed"], r["precision"],
               tri(r["channels_last"]), tri(r["cuda_graph"]), tri(r["cudnn_benchmark"]),
               r["dist_backend"], r["dist_timeout_s"], r["tensorboard"]};
  validate(c);
  return c;
}

void validate_model(ModelConfig& m) {
  one_of("model.family", m.family, {"cifar", "imagenet"});
  std::transform(m.shortcut.begin(), m.shortcut.end(), m.shortcut.begin(), ::toupper);
  if (m.shortcut == "AUTO") m.shortcut = "auto";
  one_of("model.shortcut", m.shortcut, {"auto", "A", "B", "C"});
  one_of("model.block", m.block, {"auto", "basic", "bottleneck"});
  one_of("model.stem", m.stem, {"auto", "cifar", "imagenet"});
  if (m.num_classes < 1) bad("model.num_classes", "must be at least 1");
  if (!m.init_skip.empty() && m.init_from.empty()) bad("model.init_skip", "needs model.init_from");
  for (const auto& prefix : m.init_skip)
    if (prefix.empty() || prefix.front() == '.' || prefix.back() == '.')
      bad("model.init_skip", "'" + printable(prefix) + "' is not a layer name such as \"fc\" or \"layer4.1\"");
  if (!m.init_sha256.empty()) {
    if (m.init_from.empty()) bad("model.init_sha256", "needs model.init_from");
    if (m.init_sha256.size() != 64 || m.init_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
      bad("model.init_sha256", "'" + printable(m.init_sha256) + "' is not 64 lowercase hex digits");
  }

  if (m.family == "cifar") {
    if (m.block == "auto") m.block = "basic";
    // Basic: 3 stages x n blocks x 2 layers + stem + fc = 6n+2. Bottleneck: 3 layers a block.
    const int per_block = m.block == "basic" ? 6 : 9;
    if (m.depth < per_block + 2 || (m.depth - 2) % per_block != 0)
      bad("model.depth", std::to_string(m.depth) + " is not a CIFAR depth for " + m.block +
                             " blocks (" + std::to_string(per_block) + "n+2: " +
                             (m.block == "basic" ? "20, 32, 44, 56, 110, 1202, ..."
                                                 : "164, 1001, ...") + ")");
    if (m.stem == "auto") m.stem = "cifar";
    if (m.stem != "cifar") bad("model.stem", "the cifar family has only the cifar stem");
  } else {
    const bool basic_depth = m.depth == 18 || m.depth == 34;
    if (!basic_depth && m.depth != 50 && m.depth != 101 && m.depth != 152)
      bad("model.depth", std::to_string(m.depth) +
                             " is not an ImageNet-family depth (18, 34, 50, 101, 152)");
    const std::string natural = basic_depth ? "basic" : "bottleneck";
    if (m.block == "auto") m.block = natural;
    if (m.block != natural)
      bad("model.block", "ResNet-" + std::to_string(m.depth) + " uses " + natural + " blocks");
    if (m.stem == "auto") m.stem = "imagenet";
  }
  // Option A (parameter-free identity + zero padding) is the paper's CIFAR choice; the
  // ImageNet models (and torchvision's counts) use B.
  if (m.shortcut == "auto") m.shortcut = (m.family == "cifar" && m.block == "basic") ? "A" : "B";
  one_of("model.option_a_padding", m.option_a_padding, {"after", "split"});
  if (m.option_a_padding != "after" && m.shortcut != "A")
    bad("model.option_a_padding",
        "'" + m.option_a_padding + "' places option A's zero channels; this model uses shortcut " + m.shortcut);
}

void validate(ExperimentConfig& c) {
  validate_model(c.model);
  // An experiment trains or evaluates on CIFAR-10, whose labels are 0-9: fewer outputs cannot be
  // trained (more are allowed: ImageNet-sized heads, unused logits).
  if (c.model.num_classes < 10)
    bad("model.num_classes", std::to_string(c.model.num_classes) + " is fewer than CIFAR-10's 10 classes");

  auto& d = c.data;
  if (d.val_size < 0) bad("data.val_size", "must be >= 0");
  if (d.train_limit < 0) bad("data.train_limit", "must be >= 0");
  if (d.test_limit < 0) bad("data.test_limit", "must be >= 0");
  one_of("data.normalize", d.normalize, {"channel", "pixel"});
  validate_normaliser(d);

  auto& t = c.train;
  if (t.batch_size < 1) bad("train.batch_size", "must be >= 1");
  if (t.epochs < 0) bad("train.epochs", "must be >= 0");
  // The run's length in steps, ceil(epochs * steps per epoch), must fit an int64 for any batch.
  if (t.epochs > kMaxEpochs) bad("train.epochs", "must be at most " + std::to_string(kMaxEpochs));
  if (t.epochs == 0 && t.iterations < 1) bad("train.iterations", "must be >= 1 (or set train.epochs)");
  if (!(t.lr > 0)) bad("train.lr", "must be > 0");
  if (t.momentum < 0 || t.momentum >= 1) bad("train.momentum", "must be in [0, 1)");
  if (t.nesterov && t.momentum == 0) bad("train.nesterov", "needs train.momentum > 0");
  if (t.weight_decay < 0) bad("train.weight_decay", "must be >= 0");
  if (t.eval_every < 0) bad("train.eval_every", "must be >= 0");
  if (t.checkpoint_every < 0) bad("train.checkpoint_every", "must be >= 0");
  if (t.log_every < 1) bad("train.log_every", "must be >= 1");
  if (t.eval_batch_size < 1) bad("train.eval_batch_size", "must be >= 1");
  auto& s = t.lr_schedule;
  one_of("train.lr_schedule.type", s.type, {"multistep", "cosine", "constant"});
  for (size_t i = 0; i < s.milestones.size(); ++i) {
    if (s.milestones[i] < 1 || (i > 0 && s.milestones[i] < s.milestones[i - 1]))
      bad("train.lr_schedule.milestones", "must be positive and non-decreasing");
  }
  if (!(s.gamma > 0)) bad("train.lr_schedule.gamma", "must be > 0");
  one_of("train.lr_schedule.warmup", s.warmup, {"none", "linear", "constant"});
  if (s.warmup_steps < 0) bad("train.lr_schedule.warmup_steps", "must be >= 0");
  if (s.warmup != "none" && s.warmup_steps == 0)
    bad("train.lr_schedule.warmup_steps", "must be > 0 when warmup is " + s.warmup);
  if (s.warmup_lr < 0) bad("train.lr_schedule.warmup_lr", "must be >= 0");
  if (s.min_lr < 0) bad("train.lr_schedule.min_lr", "must be >= 0");
  if (s.min_lr > t.lr) bad("train.lr_schedule.min_lr", "must not exceed train.lr");

  auto& r = c.runtime;
  one_of("runtime.device", r.device, {"auto", "cpu", "cuda"});
  if (r.threads < 0) bad("runtime.threads", "must be >= 0");
  one_of("runtime.precision", r.precision, {"auto", "fp32", "bf16"});
  one_of("runtime.dist_backend", r.dist_backend, {"auto", "gloo", "nccl"});
  if (r.dist_timeout_s < 1 || r.dist_timeout_s > 86400) bad("runtime.dist_timeout_s", "must be in 1..86400 seconds");
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
    throw InputError("--set " + json(assignment).dump(-1, ' ', false, json::error_handler_t::replace) +
                     ": not valid UTF-8");
  }
  const std::string shown = "--set " + printable(assignment);  // how messages name it
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
    if (!child.is_object())
      throw InputError(shown + ": " + printable(key.substr(0, dot)) + " is not an object");
    node = &child;
    start = dot + 1;
  }
}

}  // namespace resnet
