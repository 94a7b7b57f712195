// Every config key, declared once. A row: KEY(dotted.name) names the key and the field it fills
// (the same text, so they cannot drift apart), then its description, whether a resume may change
// it, an example value other than the default, and its checks. Type and default come from the
// field in config/config.h.
#include "config/keys.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "config/fields.h"
#include "models/family.h"
#include "models/layout.h"
#include "util/errors.h"

namespace resnet {
namespace {

using nlohmann::json;
using When = KeyCheck::When;

// Past these the config says how to go on (model.allow_large), instead of allocating for
// minutes first: ResNet-1202 and WRN-28-10 are well inside them.
constexpr int kMaxDepth = 2000;
constexpr int kMaxWidth = 64;
constexpr int kMaxClasses = 100000;
constexpr int64_t kMaxParameters = 1000000000;
constexpr double kMaxActivationBytes = 256.0 * (1 << 30);  // one training batch
const char* const kAllowLarge = " (set model.allow_large=true to build it anyway)";

// A row under construction: KEY(path) gives the name and an accessor that works on a const
// and a mutable config alike.
// clang-format off
#define KEY(path) #path, [](auto& c) -> auto& { return c.path; }
// clang-format on

template <class Field>
class Row {
 public:
  using T = std::remove_reference_t<decltype(std::declval<Field>()(std::declval<ExperimentConfig&>()))>;
  using Codec = fields::Codec<T>;

  Row(const char* name, Field field, const char* description) : field_(field) {
    key_.name = name;
    key_.description = description;
    key_.type = Codec::kType;
    key_.get = [field](const ExperimentConfig& c) { return Codec::write(field(c)); };
    key_.type_error = [](const json& v) { return Codec::error(v); };
    key_.set = [field](ExperimentConfig& c, const json& v) { field(c) = Codec::read(v); };
  }

  Row& resumable() { return key_.resumable = true, *this; }
  Row& example(json value) { return key_.example = std::move(value), *this; }

  // A check of the value alone: `fails(value)` returns "" or why not.
  template <class Fn>
  Row& check(std::string text, Fn fails, When when = When::kValue) {
    const Field field = field_;
    key_.checks.push_back(
        {std::move(text), [field, fails](const ExperimentConfig& c) { return fails(field(c)); }, when});
    return *this;
  }
  // A check of the value with other keys: `fails(config)` returns "" or why not.
  template <class Fn>
  Row& rule(std::string text, Fn fails, When when = When::kValue) {
    key_.checks.push_back({std::move(text), fails, when});
    return *this;
  }

  Row& at_least(double lo) {
    const std::string bound = fmt::format("{}", lo);
    return check(">= " + bound, [lo, bound](const T& v) { return v >= lo ? "" : "must be >= " + bound; });
  }
  Row& above(double lo) {
    const std::string bound = fmt::format("{}", lo);
    return check("> " + bound, [lo, bound](const T& v) { return v > lo ? "" : "must be > " + bound; });
  }
  // At most `hi` unless model.allow_large says a larger value is meant.
  Row& bounded(int64_t hi) {
    return rule(fmt::format("<= {} unless model.allow_large", hi), [f = field_, hi](const ExperimentConfig& c) {
      const auto v = f(c);
      return v <= hi || c.model.allow_large ? std::string()
                                            : fmt::format("{} is above the bound of {}{}", v, hi, kAllowLarge);
    });
  }
  Row& one_of(std::vector<std::string> allowed) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
    return check("one of " + list, [allowed, list](const std::string& v) {
      return std::find(allowed.begin(), allowed.end(), v) != allowed.end()
                 ? std::string()
                 : "'" + excerpt(v) + "' is not one of " + list;
    });
  }
  Row& canonical(void (*fn)(T&)) {
    const Field field = field_;
    key_.canonical = [field, fn](ExperimentConfig& c) { fn(field(c)); };
    return *this;
  }

  operator ConfigKey() const { return key_; }

 private:
  Field field_;
  ConfigKey key_;
};

template <class Field>
Row<Field> key(const char* name, Field field, const char* description) {
  return Row<Field>(name, field, description);
}

// Milestones: positive and non-decreasing.
std::string milestones_fail(const std::vector<int64_t>& m) {
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i] < 1 || (i > 0 && m[i] < m[i - 1])) return "must be positive and non-decreasing";
  return "";
}

// data.mean / data.std: R, G, B on the 0-1 scale (a std of 0 would divide by zero).
std::string channel_values_fail(const std::vector<double>& v, bool is_std) {
  const std::string example = " (ImageNet's: data.mean [0.485, 0.456, 0.406], data.std [0.229, 0.224, 0.225])";
  if (v.empty()) return "";
  if (v.size() != 3) return "expected 3 values (R, G, B), got " + std::to_string(v.size()) + example;
  for (double x : v)
    if (x < 0 || x > 1 || (is_std && x == 0))
      return json(x).dump() + " is not " + (is_std ? "a std" : "a mean") + " on the 0-1 scale of images / 255" +
             example;
  return "";
}

std::string gib(double bytes) { return fmt::format("{:.1f} GiB", bytes / (1 << 30)); }

void upper_case(std::string& s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  if (s == "AUTO") s = "auto";
}

std::vector<std::string> family_list() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->name());
  return names;
}

std::vector<ConfigKey> model_keys() {
  return {
      key(KEY(model.family), "the network family (models/family.h); see the families below")
          .one_of(family_list())
          .example("wide"),
      key(KEY(model.depth), "layers with weights, by the family's depth rule (ResNet-56: 56)")
          .bounded(kMaxDepth)
          .example(16),
      key(KEY(model.residual), "false: the plain twin, the same layers without the additions").example(false),
      key(KEY(model.shortcut),
          "A (zero-padded identity), B (projections where the shape changes), C (everywhere); "
          "auto: the family's")
          .canonical(upper_case)
          .one_of({"auto", "A", "B", "C"})
          .example("A"),
      key(KEY(model.block), "basic (two 3x3) or bottleneck (1x1, 3x3, 1x1); auto: the family's for the depth")
          .one_of({"auto", "basic", "bottleneck"})
          .example("basic"),
      key(KEY(model.preact), "pre-activation blocks (He et al. 2016); auto: the family's (wide: true, else false)")
          .example(true),
      key(KEY(model.stem), "cifar (3x3/1 conv) or imagenet (7x7/2 conv + 3x3/2 max-pool); auto: the family's")
          .one_of({"auto", "cifar", "imagenet"})
          .example("cifar"),
      key(KEY(model.num_classes), "outputs of the classifier (CIFAR-10 needs 10; more leave logits unused)")
          .at_least(1)
          .bounded(kMaxClasses)
          .rule(
              ">= 10 for an experiment on CIFAR-10",
              [](const ExperimentConfig& c) {
                return c.model.num_classes >= 10
                           ? std::string()
                           : std::to_string(c.model.num_classes) + " is fewer than CIFAR-10's 10 classes";
              },
              When::kExperiment)
          .example(100),
      key(KEY(model.zero_init_residual), "the last BN of each residual branch starts at gamma = 0").example(true),
      key(KEY(model.init_from), "a new run starts from this .pt/.safetensors file's weights (any known naming)")
          .example("weights.pt"),
      key(KEY(model.init_skip), "layer prefixes (\"fc\", \"layer4.1\") that keep their random start; needs init_from")
          .rule("needs model.init_from; layer names",
                [](const ExperimentConfig& c) {
                  const auto& m = c.model;
                  if (!m.init_skip.empty() && m.init_from.empty()) return std::string("needs model.init_from");
                  for (const auto& p : m.init_skip)
                    if (p.empty() || p.front() == '.' || p.back() == '.')
                      return "'" + excerpt(p) + "' is not a layer name such as \"fc\" or \"layer4.1\"";
                  return std::string();
                })
          .example(json::array({"fc"})),
      key(KEY(model.init_sha256), "init_from's SHA-256 (\"\": any; a run fills it in), else it must match")
          .rule("needs model.init_from; 64 lowercase hex digits",
                [](const ExperimentConfig& c) {
                  const std::string& h = c.model.init_sha256;
                  if (h.empty()) return std::string();
                  if (c.model.init_from.empty()) return std::string("needs model.init_from");
                  if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
                    return "'" + excerpt(h) + "' is not 64 lowercase hex digits";
                  return std::string();
                })
          .example(std::string(64, 'a')),
      key(KEY(model.option_a_padding),
          "where option A's zero channels go: after x (ours) or split around it "
          "(akamaster/pytorch_resnet_cifar10)")
          .one_of({"after", "split"})
          .rule(
              "split only with shortcut A",
              [](const ExperimentConfig& c) {
                const auto& m = c.model;
                if (m.option_a_padding == "after" || m.shortcut == "A") return std::string();
                return "'" + m.option_a_padding + "' places option A's zero channels; this model uses shortcut " +
                       m.shortcut;
              },
              When::kResolved)
          .example("split"),
      key(KEY(model.width), "the wide family's k (WRN-d-k: stage widths 16k, 32k, 64k); 1 in the others")
          .at_least(1)
          .bounded(kMaxWidth)
          .example(2),
      key(KEY(model.allow_large), "build nets past the bounds on depth, width, classes, parameters and activations")
          .resumable()
          .rule(
              fmt::format("parameters <= {} unless set", kMaxParameters),
              [](const ExperimentConfig& c) {
                const int64_t n = network_size(c.model).parameters;
                if (n <= kMaxParameters || c.model.allow_large) return std::string();
                return fmt::format("false, and {} has {} parameters, above the bound of {}; set it to true to build it",
                                   family_of(c.model).model_name(c.model), n, kMaxParameters);
              },
              When::kResolved)
          .example(true),
  };
}

std::vector<ConfigKey> data_keys() {
  return {
      key(KEY(data.dir), "CIFAR-10 binary folder; \"\": --data-dir, else $CIFAR10_DIR, else data/cifar-10-batches-bin")
          .resumable()
          .example("/data/cifar-10-batches-bin"),
      key(KEY(data.val_size), "training images held out for validation (the paper: 5000)").at_least(0).example(5000),
      key(KEY(data.val_seed), "seed of the rule that picks them").example(3),
      key(KEY(data.train_limit), "train on the first N training images only (0: all)").at_least(0).example(1000),
      key(KEY(data.test_limit), "evaluate on the first N test images only (0: all)").at_least(0).example(500),
      key(KEY(data.normalize), "channel (mean/std per channel) or pixel (the paper's per-pixel mean)")
          .one_of({"channel", "pixel"})
          .example("pixel"),
      key(KEY(data.augment), "4-pixel pad + random 32x32 crop + horizontal flip").example(false),
      key(KEY(data.mean), "an explicit normaliser's R, G, B means on the 0-1 scale ([]: fitted); with data.std")
          .rule("3 values in [0, 1], with data.std, per channel",
                [](const ExperimentConfig& c) {
                  const auto& d = c.data;
                  if (d.mean.empty()) return std::string();
                  if (d.std.empty()) return std::string("needs data.std too (an explicit normaliser is both)");
                  if (d.normalize != "channel")
                    return "an explicit normaliser is per channel, and data.normalize is '" + d.normalize + "'";
                  return channel_values_fail(d.mean, false);
                })
          .example(json::array({0.485, 0.456, 0.406})),
      key(KEY(data.std), "its standard deviations ([]: fitted); with data.mean")
          .rule("3 values in (0, 1], with data.mean",
                [](const ExperimentConfig& c) {
                  if (!c.data.std.empty() && c.data.mean.empty())
                    return std::string("needs data.mean too (an explicit normaliser is both)");
                  return channel_values_fail(c.data.std, true);
                })
          .example(json::array({0.229, 0.224, 0.225})),
  };
}

std::vector<ConfigKey> train_keys() {
  return {
      key(KEY(train.batch_size), "images per step (over all ranks)")
          .at_least(1)
          .rule(
              "activations of a batch within 256 GiB unless model.allow_large",
              [](const ExperimentConfig& c) {
                const double bytes = 4.0 * static_cast<double>(network_size(c.model).activation_values_per_image) *
                                     static_cast<double>(c.train.batch_size);
                if (bytes <= kMaxActivationBytes || c.model.allow_large) return std::string();
                return fmt::format(
                    "{} images of {} keep about {} of activations for backward, above the bound of {}; "
                    "lower it{}",
                    c.train.batch_size, family_of(c.model).model_name(c.model), gib(bytes), gib(kMaxActivationBytes),
                    kAllowLarge);
              },
              When::kExperiment)
          .example(64),
      key(KEY(train.iterations), "length in steps (when train.epochs is 0)")
          .resumable()
          .rule(">= 1 unless train.epochs is set",
                [](const ExperimentConfig& c) {
                  return c.train.epochs == 0 && c.train.iterations < 1 ? "must be >= 1 (or set train.epochs)" : "";
                })
          .example(1000),
      key(KEY(train.epochs), "length in epochs; overrides train.iterations when > 0")
          .resumable()
          .at_least(0)
          .check("<= 1000000", [](double v) { return v <= 1e6 ? "" : "must be at most 1000000"; })
          .example(2.5),
      key(KEY(train.lr), "the learning rate (before the schedule)").resumable().above(0).example(0.05),
      key(KEY(train.momentum), "SGD momentum")
          .check("in [0, 1)", [](double v) { return v >= 0 && v < 1 ? "" : "must be in [0, 1)"; })
          .example(0.8),
      key(KEY(train.nesterov), "Nesterov momentum")
          .rule("needs train.momentum > 0",
                [](const ExperimentConfig& c) {
                  return c.train.nesterov && c.train.momentum == 0 ? "needs train.momentum > 0" : "";
                })
          .example(true),
      key(KEY(train.weight_decay), "L2 penalty on every parameter").at_least(0).example(5e-4),
      key(KEY(train.eval_every), "steps between evaluations (0: once per epoch)").resumable().at_least(0).example(100),
      key(KEY(train.checkpoint_every), "steps between checkpoints (0: at every evaluation)")
          .resumable()
          .at_least(0)
          .example(200),
      key(KEY(train.log_every), "steps between progress lines").resumable().at_least(1).example(10),
      key(KEY(train.eval_batch_size), "images per evaluation batch").resumable().at_least(1).example(128),
  };
}

std::vector<ConfigKey> schedule_keys() {
  return {
      key(KEY(train.lr_schedule.type), "multistep (x gamma at each milestone), cosine (to min_lr) or constant")
          .resumable()
          .one_of({"multistep", "cosine", "constant"})
          .example("cosine"),
      key(KEY(train.lr_schedule.milestones), "multistep: the steps at which lr is multiplied by gamma")
          .resumable()
          .check("positive, non-decreasing", milestones_fail)
          .example(json::array({100, 200})),
      key(KEY(train.lr_schedule.gamma), "multistep: the factor at each milestone").resumable().above(0).example(0.2),
      key(KEY(train.lr_schedule.warmup), "none, linear (0 -> lr) or constant (warmup_lr: the paper's ResNet-110/1202)")
          .resumable()
          .one_of({"none", "linear", "constant"})
          .example("linear"),
      key(KEY(train.lr_schedule.warmup_steps), "steps of warm-up")
          .resumable()
          .at_least(0)
          .rule("> 0 when there is a warm-up",
                [](const ExperimentConfig& c) {
                  const auto& s = c.train.lr_schedule;
                  return s.warmup != "none" && s.warmup_steps == 0 ? "must be > 0 when warmup is " + s.warmup
                                                                   : std::string();
                })
          .example(50),
      key(KEY(train.lr_schedule.warmup_lr), "the constant warm-up's learning rate")
          .resumable()
          .at_least(0)
          .example(0.02),
      key(KEY(train.lr_schedule.min_lr), "cosine: the floor")
          .resumable()
          .at_least(0)
          .rule("<= train.lr",
                [](const ExperimentConfig& c) {
                  return c.train.lr_schedule.min_lr > c.train.lr ? "must not exceed train.lr" : "";
                })
          .example(0.001),
  };
}

std::vector<ConfigKey> runtime_keys() {
  return {
      key(KEY(runtime.device), "auto (cuda where there is one), cpu or cuda")
          .resumable()
          .one_of({"auto", "cpu", "cuda"})
          .example("cpu"),
      key(KEY(runtime.threads), "CPU threads (0: the cores this process may use)").resumable().at_least(0).example(2),
      key(KEY(runtime.seed), "initialisation, data order, crops and flips").example(7),
      key(KEY(runtime.precision), "auto (bf16 autocast on CUDA, fp32 on the CPU), fp32 or bf16")
          .resumable()
          .one_of({"auto", "fp32", "bf16"})
          .example("fp32"),
      key(KEY(runtime.channels_last), "NHWC weights and batches (auto: on)").resumable().example(false),
      key(KEY(runtime.cuda_graph), "capture the whole step in one CUDA graph (auto: on CUDA)")
          .resumable()
          .example(false),
      key(KEY(runtime.cudnn_benchmark), "let cuDNN time its algorithms (auto: on CUDA)").resumable().example(true),
      key(KEY(runtime.dist_backend), "under torchrun/srun: auto (NCCL on CUDA where built, else Gloo), gloo or nccl")
          .resumable()
          .one_of({"auto", "gloo", "nccl"})
          .example("gloo"),
      key(KEY(runtime.dist_timeout_s), "a rank that dies or hangs stops the others within this")
          .resumable()
          .check("in 1..86400", [](int64_t v) { return v >= 1 && v <= 86400 ? "" : "must be in 1..86400 seconds"; })
          .example(60),
      key(KEY(runtime.tensorboard), "also write TensorBoard event files into the run folder")
          .resumable()
          .example(false),
  };
}

std::vector<ConfigKey> all_keys() {
  std::vector<ConfigKey> keys = {key(KEY(name), "names the default run folder runs/<name>").resumable().example("x")};
  for (auto part : {model_keys(), data_keys(), train_keys(), schedule_keys(), runtime_keys()})
    keys.insert(keys.end(), part.begin(), part.end());
  return keys;
}

#undef KEY

}  // namespace

std::string ConfigKey::section() const {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = all_keys();
  return keys;
}

const ConfigKey* find_key(const std::string& name) {
  for (const auto& k : config_keys())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace resnet
