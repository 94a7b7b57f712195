// The config is the schema: defaults are the paper's models, and every mistake names its key.
#include <gtest/gtest.h>

#include "config/config.h"
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
  expect_error_naming({{"train", {{"lr_schedule", {{"milestones", {1, "x"}}}}}}},
                      "train.lr_schedule.milestones[1]");
  expect_error_naming({{"runtime", {{"cuda_graph", "yes"}}}}, "runtime.cuda_graph");
}

TEST(Config, InvalidValuesAreErrors) {
  expect_error_naming({{"model", {{"depth", 21}}}}, "model.depth");
  expect_error_naming({{"model", {{"family", "imagenet"}, {"depth", 20}}}}, "model.depth");
  expect_error_naming({{"model", {{"shortcut", "D"}}}}, "model.shortcut");
  expect_error_naming({{"train", {{"batch_size", 0}}}}, "train.batch_size");
  expect_error_naming({{"train", {{"momentum", 1.5}}}}, "train.momentum");
  expect_error_naming({{"train", {{"lr_schedule", {{"milestones", {48000, 32000}}}}}}},
                      "train.lr_schedule.milestones");
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
  expect_error_naming({{"data", {{"mean", {125.3, 123.0, 113.9}}, {"std", {0.5, 0.5, 0.5}}}}}, "data.mean: 125.3 is not");
  expect_error_naming({{"data", {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, 0, 0.5}}}}}, "data.std: 0.0 is not");
  expect_error_naming({{"data", {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, "x", 0.5}}}}}, "data.std[1]: expected a number");
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

