// Config readers fail only with one-line InputErrors naming the key (exit 2), never with
// nlohmann's exceptions (exit 1 and a backtrace); JSON, files and folders from users are read
// within their budgets (util/budgets.h, docs/safety.md). Each test here is an input that the fuzz
// targets in tests/fuzz/ found to escape in some other way. (Checkpoints: test_checkpoint.cpp;
// the pickle, zip and safetensors readers: test_readers.cpp.)
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "config/config.h"
#include "data/cifar10.h"
#include "test_support.h"
#include "train/run_dir.h"
#include "util/errors.h"
#include "util/folder.h"
#include "util/json_io.h"

using namespace resnet;
using nlohmann::json;
using resnet::testing::expect_input_error;
using resnet::testing::TempDir;

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

// ---- JSON from files: nesting, duplicate keys, typed values -----------------------------------

// nlohmann's parser is iterative but dump(), copies and comparisons recurse: 100,000 levels were a
// stack overflow in the error message of a 400 KB file. The depth is bounded while parsing.
TEST(UntrustedJson, NestingIsBoundedBeforeItIsBuilt) {
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_EQ(parse_json(nested(64), "f.json").dump().size(), 128u);
  expect_input_error([&] { parse_json(nested(65), "f.json"); }, "f.json: JSON nested deeper than 64 levels");
  expect_input_error([&] { parse_json("{\"a\": " + nested(100'000) + "}", "f.json"); }, "f.json: JSON nested deeper");
  // A torn line is no JSON (nullopt), but a deep one is JSON we refuse.
  EXPECT_FALSE(parse_json_or_null("{\"step\": 3, \"lr", "m").has_value());
  expect_input_error([&] { parse_json_or_null(nested(100'000), "m"); }, "m: JSON nested deeper");
  TempDir tmp;
  std::ofstream(tmp / "deep.json") << nested(100'000);
  expect_input_error([&] { read_json_file(tmp / "deep.json"); }, tmp / "deep.json" + ": JSON nested deeper");
}

// A key twice in one object: Python's json and safetensors keep the last, other readers the first.
TEST(UntrustedJson, AKeyTwiceInOneObjectIsRefused) {
  expect_input_error([] { parse_json(R"({"a": 1, "b": 2, "a": 3})", "c.json"); }, "c.json: key \"a\" appears twice");
  expect_input_error([] { parse_json(R"({"x": [{"a": {"k": 1, "k": 2}}]})", "c.json"); },
                     "c.json: key \"k\" appears twice");
  // The same key in different objects is fine.
  const json ok = parse_json(R"({"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]})", "c.json");
  EXPECT_EQ(ok["b"][1]["a"], 3);
}

// A value of the wrong type names the file and the key and quotes a short, printable prefix.
TEST(UntrustedJson, TypedReadsNameTheKeyAndQuoteAShortPrefix) {
  const json row = parse_json(R"({"step": "4", "long": ")" + std::string(100'000, 'x') + "\\u001b[2J\"}", "m");
  expect_input_error([&] { json_int(json_member(row, "step", "m.jsonl"), "m.jsonl: step"); },
                     "m.jsonl: step: expected an integer, got \"4\"");
  expect_input_error([&] { json_member(row, "lr", "m.jsonl"); }, "m.jsonl: lr: missing");
  try {
    json_number(row["long"], "m.jsonl: long");
    FAIL() << "accepted a string as a number";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_LT(msg.size(), 160u) << msg;
    EXPECT_NE(msg.find("... (100011 bytes)"), std::string::npos) << msg;
  }
  EXPECT_EQ(json_excerpt(json("a\x1b[2Jb")), "\"a\\u001b[2Jb\"");  // dump() escapes; excerpt() the rest
}

// ---- files that are not what they claim ------------------------------------------------------

// A file read whole is a regular file within its budget: a FIFO is refused without waiting for a
// writer, a device without reading it, a file over the budget before any of it is read.
TEST(UntrustedFiles, OnlyRegularFilesWithinTheirBudgetAreRead) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo((tmp / "fifo").c_str(), 0644), 0);
  expect_input_error([&] { read_text_file(tmp / "fifo"); }, tmp / "fifo" + ": is a FIFO, not a regular file");
  expect_input_error([] { read_text_file("/dev/zero"); }, "/dev/zero: is a character device, not a regular file");
  std::filesystem::create_directory(tmp / "folder");
  expect_input_error([&] { read_json_file(tmp / "folder"); }, tmp / "folder" + ": is a folder");
  std::filesystem::resize_file((std::ofstream(tmp / "big.json"), tmp / "big.json"), 17 << 20);  // sparse
  expect_input_error([&] { read_json_file(tmp / "big.json"); },
                     tmp / "big.json" + ": 17825792 bytes, more than the 16777216");
}

// In a folder, nothing is followed out of it: reads and appends refuse a symlink, appends a hard
// link; an atomic write removes a symlink planted under its temporary's name and replaces one
// under its own, never writing through either.
TEST(UntrustedFiles, AFolderFollowsNoSymlinkOutOfIt) {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "run");
  std::ofstream(tmp / "victim") << "precious";
  const Folder run = Folder::open(tmp / "run");
  std::filesystem::create_symlink(tmp / "victim", tmp / "run/link");
  expect_input_error([&] { run.read("link", 1 << 20); }, tmp / "run/link" + ": is a symlink");
  expect_input_error([&] { run.append("link", "x"); }, tmp / "run/link" + ": is a symlink");
  expect_input_error([&] { append_file(tmp / "run/link", "x"); }, tmp / "run/link" + ": is a symlink");
  std::filesystem::create_hard_link(tmp / "victim", tmp / "run/hard");
  expect_input_error([&] { run.append("hard", "x"); }, tmp / "run/hard" + ": has 2 hard links");
  std::filesystem::create_symlink(tmp / "victim", tmp / "run/out.json.tmp");
  std::filesystem::create_symlink(tmp / "victim", tmp / "run/out.json");
  write_file_atomic(tmp / "run/out.json", "{}\n");
  EXPECT_EQ(read_text_file(tmp / "victim"), "precious");
  EXPECT_FALSE(std::filesystem::is_symlink(tmp / "run/out.json"));
  EXPECT_EQ(read_text_file(tmp / "run/out.json"), "{}\n");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(tmp / "run/out.json.tmp")));
  EXPECT_FALSE(run.read("missing", 10).has_value());
}

// ---- what a data folder and a run folder hold ------------------------------------------------

// Class names are printed: escape sequences in batches.meta.txt are kept as text, not sent to the
// terminal.
TEST(UntrustedFiles, ClassNamesAreKeptPrintable) {
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 4, 4);
  std::string names;
  for (int i = 0; i < 10; ++i) names += "c\x1b[31m" + std::to_string(i) + "\x07\n";
  std::ofstream(tmp / "data/batches.meta.txt") << names;
  const Cifar10 data = load_cifar10(tmp / "data", false);
  ASSERT_EQ(data.class_names.size(), 10u);
  EXPECT_EQ(data.class_names[3], "c\\x1b[31m3\\x07");
}

// metrics.jsonl rows are checked as they are read: a torn last line is a crash's and is left out;
// a mistyped or deep row is refused naming the file, the line and the key.
TEST(UntrustedFiles, MetricsRowsAreCheckedAsTheyAreRead) {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "run");
  const Folder run = Folder::open(tmp / "run");
  auto rows_of = [&](const std::string& text) {
    std::ofstream(tmp / "run/metrics.jsonl", std::ios::trunc) << text;
    return read_metrics_rows(run);
  };
  EXPECT_EQ(rows_of("{\"step\": 5, \"lr\": 0.1}\n{\"step\": 10, \"lr\"").size(), 1u);
  const std::string file = tmp / "run/metrics.jsonl";
  expect_input_error([&] { rows_of("{\"step\": \"4\"}\n"); }, file + " line 1: step: expected an integer, got \"4\"");
  expect_input_error([&] { rows_of("{\"step\": 1}\n{\"step\": 2, \"lr\": \"x,y\"}\n"); },
                     file + " line 2: lr: expected a number or null");
  expect_input_error([&] { rows_of("{\"step\": 1}\nnot json\n{\"step\": 2}\n"); }, file + " line 2: not a JSON row");
  expect_input_error([&] { rows_of("{\"step\": 1, \"lr\": " + std::string(1000, '[') + "}\n"); },
                     file + " line 1: JSON nested deeper than 64 levels");
}

// What a tool prints (cli::run_main): one line, control characters escaped, cut at 1024 bytes.
TEST(UntrustedFiles, AToolPrintsOneLineOfBoundedLength) {
  const std::string msg = one_line("f.pt: a\nb\x1b[2J " + std::string(5000, 'x'));
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_EQ(msg.rfind("f.pt: a\\x0ab\\x1b[2J x", 0), 0u) << msg;
  EXPECT_LE(msg.size(), 1024u + 40) << msg;
  EXPECT_NE(msg.find("... (5014 bytes)"), std::string::npos) << msg;
}
