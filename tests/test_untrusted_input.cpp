// Config readers fail only with one-line InputErrors naming the key (exit 2), never with
// nlohmann's exceptions (exit 1 and a backtrace). Each test here is an input that the fuzz
// targets in tests/fuzz/ found to escape in some other way. (Checkpoints: test_checkpoint.cpp;
// the pickle, zip and safetensors readers: test_readers.cpp.)
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <limits>
#include <string>

#include "config/config.h"
#include "test_support.h"
#include "util/errors.h"

using namespace resnet;
using nlohmann::json;
using resnet::testing::TempDir;
using resnet::testing::expect_input_error;


// Keys and bare words are taken as they are, without the JSON parser, which is what checks
// UTF-8; nlohmann's dump() then threw type_error 316 from error messages and config.json.
TEST(UntrustedConfig, OverrideThatIsNotUtf8IsAnInputError) {
  json user = json::object();
  expect_input_error([&] { apply_override(user, "train.lr=\xff\xfe"); }, "--set \"train.lr=");
  expect_input_error([&] { apply_override(user, "name=caf\xe9"); }, "--set \"name=");
  expect_input_error([&] { apply_override(user, "train.lr.mil\xd7=[1]"); }, "--set \"train.lr.mil");
  EXPECT_EQ(user, json::object());
  apply_override(user, "name=caf\xc3\xa9");  // UTF-8 is fine
  EXPECT_EQ(config_from_json(user).name, "caf\xc3\xa9");
}

// A JSON key or string may hold a newline ("a\nb"); echoed raw, the one-line error became two.
TEST(UntrustedConfig, ControlCharactersInKeysAndValuesStayOnOneLine) {
  expect_input_error([] { config_from_json(json::parse(R"({"tra\nin": {}})")); }, "tra\\x0ain: unknown key");
  expect_input_error([] { config_from_json(json::parse(R"({"model": {"family": "a\nb"}})")); }, "model.family");
  json user = json::object();
  expect_input_error([&] { apply_override(user, "a\n.b.c"); }, "--set a\\x0a.b.c: expected key=value");
}

// total_steps() is ceil(epochs * steps per epoch) cast to int64: UB (UBSan: float-cast-overflow)
// for epochs = 1e300, and a nonsense run length in practice.
TEST(UntrustedConfig, EpochsAreBoundedSoTheStepCountFitsAnInt64) {
  expect_input_error([] { config_from_json({{"train", {{"epochs", 1e300}}}}); }, "train.epochs");
  expect_input_error([] { config_from_json({{"train", {{"epochs", 1e6 + 1}}}}); }, "train.epochs");
  EXPECT_DOUBLE_EQ(config_from_json({{"train", {{"epochs", 1e6}}}}).train.epochs, 1e6);
}

// nlohmann's get<int>() truncates and get<int64_t>() wraps: ResNet-20 was trained for
// model.depth 4294967316, and runtime.seed 18446744073709551615 became -1.
TEST(UntrustedConfig, IntegersOutOfRangeAreErrorsNotTruncated) {
  expect_input_error([] { config_from_json({{"model", {{"depth", int64_t{4294967316}}}}}); }, "model.depth");
  expect_input_error([] { config_from_json({{"model", {{"num_classes", int64_t{1} << 40}}}}); }, "model.num_classes");
  expect_input_error([] { config_from_json(json::parse(R"({"runtime": {"seed": 18446744073709551615}})")); },
                     "runtime.seed");
  expect_input_error(
      [] { config_from_json(json::parse(R"({"train": {"lr_schedule": {"milestones": [9223372036854775808]}}})")); },
      "train.lr_schedule.milestones[0]");
  EXPECT_EQ(config_from_json(json::parse(R"({"runtime": {"seed": 9223372036854775807}})")).runtime.seed,
            std::numeric_limits<int64_t>::max());
}
