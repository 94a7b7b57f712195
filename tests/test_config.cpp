// The config is the schema: defaults are the paper's models, and every mistake names its key.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <tuple>

#include "config/config.h"
#include "config/keys.h"
#include "test_support.h"
#include "train/resume_policy.h"
#include "util/errors.h"

using namespace resnet;
using nlohmann::json;

namespace {

// Expects config_from_json(user) to fail with a message that names `key`.
void expect_error_naming(const json& user, const std::string& key) {
  try {
    config_from_json(user);
    FAIL() << "accepted " << user.dump();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(key, 0), 0u) << "message: " << e.what();
  }
}

}  // namespace

TEST(Config, DefaultsAreThePapersResNet20Recipe) {
  ExperimentConfig c = config_from_json(json::object());
  EXPECT_EQ(c.model.family, "cifar");
  EXPECT_EQ(c.model.depth, 20);
  EXPECT_EQ(c.model.shortcut, "A");  // resolved from auto
  EXPECT_EQ(c.model.block, "basic");
  EXPECT_EQ(c.model.stem, "cifar");
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.train.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 1e-4);
  EXPECT_EQ(c.train.iterations, 64000);
  EXPECT_EQ(c.train.lr_schedule.milestones, (std::vector<int64_t>{32000, 48000}));
}

TEST(Config, ImageNetFamilyResolvesBlockStemAndShortcut) {
  ExperimentConfig c = config_from_json({{"model", {{"family", "imagenet"}, {"depth", 50}}}});
  EXPECT_EQ(c.model.block, "bottleneck");
  EXPECT_EQ(c.model.stem, "imagenet");
  EXPECT_EQ(c.model.shortcut, "B");
}

TEST(Config, RoundTripsThroughJson) {
  json user = {{"model", {{"depth", 56}, {"residual", false}}},
               {"runtime", {{"channels_last", true}, {"threads", 2}}},
               {"train", {{"lr_schedule", {{"warmup", "constant"}, {"warmup_steps", 400}}}}}};
  ExperimentConfig a = config_from_json(user);
  ExperimentConfig b = config_from_json(to_json(a));
  EXPECT_EQ(to_json(a), to_json(b));
  EXPECT_EQ(b.model.depth, 56);
  EXPECT_FALSE(b.model.residual);
  EXPECT_EQ(b.runtime.channels_last, std::optional<bool>(true));
  EXPECT_FALSE(b.runtime.cuda_graph.has_value());
  EXPECT_EQ(b.train.lr_schedule.warmup_steps, 400);
}

TEST(Config, UnknownKeysAreErrors) {
  expect_error_naming({{"model", {{"dept", 20}}}}, "model.dept");
  expect_error_naming({{"trian", json::object()}}, "trian");
  expect_error_naming({{"train", {{"lr_schedule", {{"gama", 0.1}}}}}}, "train.lr_schedule.gama");
}

TEST(Config, WrongTypesAreErrors) {
  expect_error_naming({{"model", {{"depth", "56"}}}}, "model.depth");
  expect_error_naming({{"model", {{"depth", 56.5}}}}, "model.depth");
  expect_error_naming({{"model", {{"residual", 1}}}}, "model.residual");
  expect_error_naming({{"train", {{"lr", "fast"}}}}, "train.lr");
  expect_error_naming({{"model", 3}}, "model");
  expect_error_naming({{"train", {{"lr_schedule", {{"milestones", {1, "x"}}}}}}}, "train.lr_schedule.milestones[1]");
  expect_error_naming({{"runtime", {{"cuda_graph", "yes"}}}}, "runtime.cuda_graph");
}

TEST(Config, InvalidValuesAreErrors) {
  expect_error_naming({{"model", {{"depth", 21}}}}, "model.depth");
  expect_error_naming({{"model", {{"family", "imagenet"}, {"depth", 20}}}}, "model.depth");
  expect_error_naming({{"model", {{"shortcut", "D"}}}}, "model.shortcut");
  expect_error_naming({{"train", {{"batch_size", 0}}}}, "train.batch_size");
  expect_error_naming({{"train", {{"momentum", 1.5}}}}, "train.momentum");
  expect_error_naming({{"train", {{"lr_schedule", {{"milestones", {48000, 32000}}}}}}}, "train.lr_schedule.milestones");
  expect_error_naming({{"runtime", {{"device", "tpu"}}}}, "runtime.device");
  expect_error_naming({{"model", {{"num_classes", 5}}}}, "model.num_classes");  // labels go to 9
  expect_error_naming({{"train", {{"lr", 0.1}, {"lr_schedule", {{"type", "cosine"}, {"min_lr", 1}}}}}},
                      "train.lr_schedule.min_lr");
}

TEST(Config, OptionAPaddingIsAfterOrSplitAndOnlyForShortcutA) {
  EXPECT_EQ(config_from_json(json::object()).model.option_a_padding, "after");
  ExperimentConfig c = config_from_json({{"model", {{"option_a_padding", "split"}}}});
  EXPECT_EQ(c.model.option_a_padding, "split");
  EXPECT_EQ(to_json(c)["model"]["option_a_padding"], "split");  // config.json, checkpoints, exports
  EXPECT_EQ(config_from_json(to_json(c)).model.option_a_padding, "split");
  expect_error_naming({{"model", {{"option_a_padding", "middle"}}}}, "model.option_a_padding");
  expect_error_naming({{"model", {{"option_a_padding", "split"}, {"shortcut", "B"}}}}, "model.option_a_padding");
  expect_error_naming({{"model", {{"option_a_padding", "split"}, {"family", "imagenet"}, {"depth", 18}}}},
                      "model.option_a_padding");
}

TEST(Config, ExplicitNormaliserIsThreeValuesEachOnTheZeroOneScale) {
  const json imagenet = {{"mean", {0.485, 0.456, 0.406}}, {"std", {0.229, 0.224, 0.225}}};
  ExperimentConfig c = config_from_json({{"data", imagenet}});
  EXPECT_EQ(c.data.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(c.data.std, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_EQ(config_from_json(to_json(c)).data.std, c.data.std);
  EXPECT_TRUE(config_from_json(json::object()).data.mean.empty());  // default: fitted
  EXPECT_EQ(config_from_json({{"data", {{"mean", {0, 1, 0}}, {"std", {1, 1, 1}}}}}).data.mean[1], 1.0);
  expect_error_naming({{"data", {{"mean", {0.5, 0.5, 0.5}}}}}, "data.mean: needs data.std");
  expect_error_naming({{"data", {{"std", {0.5, 0.5, 0.5}}}}}, "data.std: needs data.mean");
  expect_error_naming({{"data", {{"mean", {0.5, 0.5}}, {"std", {0.5, 0.5, 0.5}}}}}, "data.mean: expected 3 values");
  expect_error_naming({{"data", {{"mean", {125.3, 123.0, 113.9}}, {"std", {0.5, 0.5, 0.5}}}}},
                      "data.mean: 125.3 is not");
  expect_error_naming({{"data", {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, 0, 0.5}}}}}, "data.std: 0.0 is not");
  expect_error_naming({{"data", {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, "x", 0.5}}}}},
                      "data.std[1]: expected a number");
  expect_error_naming({{"data", {{"normalize", "pixel"}, {"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, 0.5, 0.5}}}}},
                      "data.mean: an explicit normaliser is per channel");
  // From the command line, as the README writes it.
  json user = json::object();
  apply_override(user, "data.mean=[0.4914,0.4822,0.4465]");
  apply_override(user, "data.std=[0.2023,0.1994,0.2010]");
  EXPECT_EQ(config_from_json(user).data.mean[0], 0.4914);
}

TEST(Config, IntegersAreAcceptedWhereNumbersAreExpected) {
  ExperimentConfig c = config_from_json({{"train", {{"lr", 1}}}});
  EXPECT_DOUBLE_EQ(c.train.lr, 1.0);
}

TEST(Overrides, DottedKeysTakeJsonValuesOrBareStrings) {
  json user = json::object();
  apply_override(user, "model.depth=110");
  apply_override(user, "model.shortcut=B");
  apply_override(user, "train.lr=0.05");
  apply_override(user, "train.lr_schedule.milestones=[100,200]");
  apply_override(user, "model.residual=false");
  ExperimentConfig c = config_from_json(user);
  EXPECT_EQ(c.model.depth, 110);
  EXPECT_EQ(c.model.shortcut, "B");
  EXPECT_DOUBLE_EQ(c.train.lr, 0.05);
  EXPECT_EQ(c.train.lr_schedule.milestones, (std::vector<int64_t>{100, 200}));
  EXPECT_FALSE(c.model.residual);
}

TEST(Overrides, MalformedAssignmentsAreErrors) {
  json user = json::object();
  EXPECT_THROW(apply_override(user, "model.depth"), InputError);
  EXPECT_THROW(apply_override(user, "=3"), InputError);
  apply_override(user, "model.typo=3");
  expect_error_naming(user, "model.typo");
  // A key below a number names the --set; a number JSON cannot hold becomes a string, a type error.
  json depth = {{"model", {{"depth", 20}}}};
  try {
    apply_override(depth, "model.depth.x=3");
    FAIL() << "set a key below a number";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--set model.depth.x=3: model.depth", 0), 0u) << e.what();
  }
  apply_override(depth, "model.depth=1e400");
  expect_error_naming(depth, "model.depth");
}

// ---- Every key declared once (config/keys.cpp) ----------------------------------------------

namespace {

// The value of a dotted key in a JSON document.
json at_key(const json& j, const std::string& name) {
  std::string p = "/" + name;
  for (char& ch : p) ch = ch == '.' ? '/' : ch;
  return j.at(json::json_pointer(p));
}

void put(json& j, const std::string& name, const json& value) {
  std::string p = "/" + name;
  for (char& ch : p) ch = ch == '.' ? '/' : ch;
  j[json::json_pointer(p)] = value;
}

// An explicit normaliser is per channel, so data.mean/data.std's examples cannot share a
// document with data.normalize's ("pixel"): they go into a second one.
bool in_second_document(const std::string& name) { return name == "data.mean" || name == "data.std"; }

}  // namespace

// Each key set to its declared example (never its default) and read back by its name, from the
// struct and from to_json: a field filled from the wrong key, or a struct filled by position
// after a field moved, reads another key's value here.
TEST(ConfigKeys, EveryKeySetToANonDefaultValueReadsBackByName) {
  json first = json::object(), second = json::object();
  for (const auto& k : config_keys()) {
    ASSERT_FALSE(k.example.is_null()) << k.name << " has no example";
    ASSERT_NE(k.example, k.default_value()) << k.name << ": the example is the default";
    put(in_second_document(k.name) ? second : first, k.name, k.example);
  }
  for (const bool is_second : {false, true}) {
    const ExperimentConfig c = config_from_json(is_second ? second : first);
    const json written = to_json(c);
    for (const auto& k : config_keys()) {
      const json want = in_second_document(k.name) == is_second ? k.example : k.default_value();
      if (want == "auto") continue;  // resolved (by the family, or the device later)
      EXPECT_EQ(k.get(c), want) << k.name;
      EXPECT_EQ(at_key(written, k.name), want) << k.name << " in to_json";
    }
  }
  // Spot checks through the struct's own fields (not through the key table).
  const ExperimentConfig c = config_from_json(first);
  EXPECT_EQ(c.model.family, "wide");
  EXPECT_EQ(c.model.width, 2);
  EXPECT_EQ(c.model.num_classes, 100);
  EXPECT_DOUBLE_EQ(c.train.lr_schedule.warmup_lr, 0.02);
  EXPECT_DOUBLE_EQ(c.train.lr_schedule.min_lr, 0.001);
  EXPECT_EQ(c.runtime.cudnn_benchmark, std::optional<bool>(true));
  EXPECT_EQ(c.runtime.dist_timeout_s, 60);
  EXPECT_EQ(config_from_json(second).data.std, (std::vector<double>{0.229, 0.224, 0.225}));
}

TEST(ConfigKeys, TheSchemaIsTheTableAndEveryKeyHasADescriptionAndAType) {
  const json defaults = to_json(ExperimentConfig{});
  size_t leaves = 0;
  std::function<void(const json&)> count = [&](const json& j) {
    for (const auto& [key, value] : j.items()) value.is_object() ? count(value) : void(++leaves);
  };
  count(defaults);
  EXPECT_EQ(leaves, config_keys().size());
  for (const auto& k : config_keys()) {
    EXPECT_FALSE(k.description.empty()) << k.name;
    EXPECT_FALSE(k.type.empty()) << k.name;
    EXPECT_EQ(find_key(k.name), &k);
  }
}

// The keys a resume may change are the ones declared so, and nothing else.
TEST(ConfigKeys, ResumableKeysAreTheDeclaredOnes) {
  std::vector<std::string> declared;
  for (const auto& k : config_keys())
    if (k.resumable) declared.push_back(k.name);
  EXPECT_EQ(resumable_keys(), declared);
  for (const char* fixed : {"model.depth", "train.batch_size", "runtime.seed", "data.val_size", "train.momentum"})
    EXPECT_FALSE(allowed_by(resumable_keys(), fixed)) << fixed;
  for (const char* free : {"train.lr_schedule.milestones", "train.iterations", "runtime.threads", "data.dir"})
    EXPECT_TRUE(allowed_by(resumable_keys(), free)) << free;
}

// docs/config.md is `resnet-train --help-config markdown`: regenerate it when a key changes.
TEST(ConfigDocs, DocsConfigMdIsTheGeneratedReference) {
  const std::string path = std::string(RESNET_SOURCE_DIR) + "/docs/config.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is missing: resnet-train --help-config markdown > docs/config.md";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, config_reference(true))
      << path << " is stale: regenerate it with build/resnet-train --help-config markdown > docs/config.md";
  for (const auto& k : config_keys()) EXPECT_NE(text.find("| `" + k.name + "` |"), std::string::npos) << k.name;
}

TEST(ConfigDocs, HelpConfigListsEveryKeyWithTypeAndDefault) {
  resnet::testing::TempDir tmp;
  const std::string out = tmp / "help.txt";
  ASSERT_EQ(std::system((std::string(RESNET_TRAIN_BIN) + " --help-config > " + out).c_str()), 0);
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& k : config_keys())
    EXPECT_NE(text.find("  " + k.name + "  " + k.type + " = " + k.default_value().dump()), std::string::npos) << k.name;
  EXPECT_EQ(std::system((std::string(RESNET_TRAIN_BIN) + " --help-config yaml > /dev/null 2>&1").c_str()) >> 8, 2);
}

// ---- Sizes before allocations (models/layout.h) --------------------------------------------

// resnet-train --dry-run sizes a net from its declaration: the wide family's WRN-16-4 and
// WRN-28-10 have Zagoruyko & Komodakis's 2.7M and 36.5M parameters; nothing is written.
TEST(ConfigCli, DryRunSizesTheWideResNetsOfThePaper) {
  resnet::testing::TempDir tmp;
  std::ofstream(tmp / "empty.json") << "{}";
  for (const auto& [depth, width, count] : {std::tuple{16, 4, 2748890}, std::tuple{28, 10, 36479194}}) {
    const std::string cmd = std::string(RESNET_TRAIN_BIN) + " --config " + (tmp / "empty.json") +
                            " --set model.family=wide --set model.depth=" + std::to_string(depth) +
                            " --set model.width=" + std::to_string(width) + " --dry-run > " + (tmp / "dry.json");
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::ifstream in(tmp / "dry.json");
    const json dry = json::parse(in);
    EXPECT_EQ(dry["parameters"], count);
    EXPECT_EQ(dry["model"], "wrn-" + std::to_string(depth) + "-" + std::to_string(width));
    EXPECT_EQ(dry["config"]["model"]["preact"], true);
  }
}

TEST(ConfigBounds, DepthWidthClassesAndSizeAreBoundedUnlessAllowLarge) {
  expect_error_naming({{"model", {{"depth", 1200002}}}}, "model.depth: 1200002 is above the bound of 2000");
  expect_error_naming({{"model", {{"num_classes", 20000000}}}}, "model.num_classes: 20000000 is above the bound");
  expect_error_naming({{"model", {{"family", "wide"}, {"depth", 100}, {"width", 32}}}},
                      "model.allow_large: false, and wrn-100-32 has");
  expect_error_naming({{"model", {{"depth", 1202}}}, {"train", {{"batch_size", 4096}}}},
                      "train.batch_size: 4096 images of resnet-1202 keep about");
  try {
    config_from_json({{"model", {{"depth", 1200002}}}});
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("set model.allow_large=true"), std::string::npos) << e.what();
  }
  // Meant: said so.
  ExperimentConfig c = config_from_json({{"model", {{"num_classes", 20000000}, {"allow_large", true}}}});
  EXPECT_EQ(c.model.num_classes, 20000000);
  // The paper's largest nets are inside the bounds.
  EXPECT_NO_THROW(config_from_json({{"model", {{"depth", 1202}}}}));
  EXPECT_NO_THROW(config_from_json({{"model", {{"depth", 1001}, {"block", "bottleneck"}, {"preact", true}}}}));
}
