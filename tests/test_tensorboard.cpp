// TensorBoard event files, read back by an independent reader: Debian's python3-protobuf with
// Python code protoc generates from the same event.proto, CRCs checked with python3-crc32c
// (tests/tools/read_tfevents.py), and by TensorBoard's own EventAccumulator (PyPI's tensorboard in
// .venv, tests/tools/read_tensorboard.py). A run's events carry the numbers of its metrics rows; a
// resumed run has no duplicated steps; a torn last record is dropped on resume. The readers are test
// dependencies (scripts/test.sh installs them): a missing one is a failure.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tensorboard/event_writer.h"
#include "run_support.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
using namespace resnet::testing;
namespace fs = std::filesystem;

namespace {

::testing::AssertionResult have_reader() {
  if (std::system("command -v protoc >/dev/null && /usr/bin/python3 -c 'import google.protobuf, crc32c' "
                  ">/dev/null 2>&1") == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "protoc, python3-protobuf or python3-crc32c missing (scripts/install_deps.sh --test)";
}

// event_pb2.py from our event.proto, by protoc, into tmp/gen.
std::string generate_python(const TempDir& tmp) {
  const std::string gen = tmp / "gen";
  fs::create_directories(gen);
  const std::string proto_dir = std::string(RESNET_SOURCE_DIR) + "/src/tensorboard";
  const std::string protoc = "protoc -I " + proto_dir + " --python_out=" + gen + " " + proto_dir + "/event.proto";
  EXPECT_EQ(std::system(protoc.c_str()), 0) << protoc;
  return gen;
}

// The events of `file` as the independent reader sees them (fails the test if it refuses them).
std::vector<nlohmann::json> read_events(const TempDir& tmp, const std::string& file) {
  const std::string gen = generate_python(tmp);
  const std::string cmd = "/usr/bin/python3 " + std::string(RESNET_SOURCE_DIR) + "/tests/tools/read_tfevents.py " +
                          file + " " + gen + " > " + (tmp / "events.jsonl") + " 2> " + (tmp / "reader.err");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << read_all(tmp / "reader.err");
  std::vector<nlohmann::json> out;
  std::ifstream in(tmp / "events.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

ExperimentConfig tiny(const std::string& data, int64_t iterations) {
  ExperimentConfig c;
  c.name = "tb";
  c.model.depth = 8;
  c.data.dir = data;
  c.train.batch_size = 32;
  c.train.iterations = iterations;
  c.train.eval_every = 5;
  c.train.eval_batch_size = 50;
  c.runtime.threads = 1;
  validate(c);
  return c;
}

}  // namespace

TEST(TensorBoard, Crc32cIsTheCastagnoliChecksum) {
  // The check value of CRC-32C ("123456789"), from the CRC catalogue, and RFC 3720's 32 zero bytes.
  EXPECT_EQ(tensorboard::crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(tensorboard::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(TensorBoard, WrittenEventsDecodeWithAnIndependentReader) {
  ASSERT_TRUE(have_reader());
  TempDir tmp;
  {
    tensorboard::EventWriter w(tmp.path());
    w.scalars(5, {{"test/error", 0.25}, {"lr", 0.1}}, 1000.5);
    w.scalars(10, {{"test/error", 0.125}, {"lr", 0.01}}, 1001.5);
  }
  const auto files = tensorboard::event_files(tmp.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(fs::path(files[0]).filename().string().rfind("events.out.tfevents.", 0), 0u);
  const auto events = read_events(tmp, files[0]);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["file_version"], "brain.Event:2");
  EXPECT_EQ(events[1]["step"], 5);
  EXPECT_EQ(events[1]["wall_time"], 1000.5);
  EXPECT_FLOAT_EQ(events[1]["values"]["test/error"].get<double>(), 0.25f);
  EXPECT_FLOAT_EQ(events[2]["values"]["lr"].get<double>(), 0.01f);

  // A second writer on the folder appends to the same file (a resumed run).
  { tensorboard::EventWriter(tmp.path()).scalars(15, {{"lr", 0.001}}); }
  EXPECT_EQ(tensorboard::event_files(tmp.path()).size(), 1u);
  EXPECT_EQ(read_events(tmp, files[0]).size(), 4u);
}

TEST(TensorBoard, TrimDropsLaterStepsAndATornRecord) {
  ASSERT_TRUE(have_reader());
  TempDir tmp;
  {
    tensorboard::EventWriter w(tmp.path());
    for (int64_t step : {5, 10, 15, 20}) w.scalars(step, {{"lr", 0.1}});
  }
  const std::string file = tensorboard::event_files(tmp.path())[0];
  {  // a crash in the middle of a record
    std::ofstream out(file, std::ios::binary | std::ios::app);
    out.write("\x20\0\0\0\0\0\0\0\x01\x02", 10);
  }
  // The reader refuses the torn file...
  EXPECT_NE(std::system(("/usr/bin/python3 " + std::string(RESNET_SOURCE_DIR) + "/tests/tools/read_tfevents.py " +
                         file + " " + generate_python(tmp) + " >/dev/null 2>&1")
                            .c_str()),
            0);
  tensorboard::trim_events(tmp.path(), 10);
  const auto events = read_events(tmp, file);  // ...and accepts the trimmed one
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1]["step"], 5);
  EXPECT_EQ(events[2]["step"], 10);
  const std::string before = read_all(file);
  tensorboard::trim_events(tmp.path(), 10);  // nothing to do: untouched
  EXPECT_EQ(read_all(file), before);
}

// A run's event file holds its metrics rows; a resume continues it without duplicated steps;
// runtime.tensorboard=false writes none.
TEST(TensorBoard, ARunsEventsMatchItsMetricsAcrossAResume) {
  ASSERT_TRUE(have_reader());
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100);
  ASSERT_EQ(train(tiny(tmp / "data", 10), quiet(tmp / "run")), 0);
  ASSERT_EQ(resume(tmp / "run", {"train.iterations=15"}, quiet("")), 0);
  const auto files = tensorboard::event_files(tmp / "run");
  ASSERT_EQ(files.size(), 1u);
  const auto events = read_events(tmp, files[0]);
  std::vector<nlohmann::json> rows;
  std::ifstream in(tmp / "run/metrics.jsonl");
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);                 // steps 5, 10, 15
  ASSERT_EQ(events.size(), rows.size() + 1);  // + file_version
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& e = events[i + 1];
    EXPECT_EQ(e["step"], rows[i]["step"]);
    for (const auto& [column, tag] :
         std::vector<std::pair<std::string, std::string>>{{"train_loss", "train/loss"},
                                                          {"train_error", "train/error"},
                                                          {"test_loss", "test/loss"},
                                                          {"test_error", "test/error"},
                                                          {"lr", "lr"},
                                                          {"images_per_sec", "images_per_sec"}})
      EXPECT_FLOAT_EQ(e["values"][tag].get<double>(), static_cast<float>(rows[i][column].get<double>()))
          << tag << " at step " << rows[i]["step"];
    EXPECT_FALSE(e["values"].contains("val/error"));  // no validation split: no tag
  }

  ExperimentConfig off = tiny(tmp / "data", 5);
  off.runtime.tensorboard = false;
  ASSERT_EQ(train(off, quiet(tmp / "off")), 0);
  EXPECT_TRUE(tensorboard::event_files(tmp / "off").empty());
  // --force starts over: the old run's events go with its other files.
  ASSERT_EQ(train(tiny(tmp / "data", 5),
                  [&] {
                    auto o = quiet(tmp / "run");
                    o.force = true;
                    return o;
                  }()),
            0);
  EXPECT_EQ(read_events(tmp, tensorboard::event_files(tmp / "run").at(0)).size(), 2u);
}

// The Event's wire bytes carry TensorFlow's field numbers (event.proto: wall_time 1 double,
// step 2 varint, file_version 3, summary 5; summary.proto: Value 1, tag 1, simple_value 2): checked
// on the bytes, since the Python reader is generated from our own .proto.
TEST(TensorBoard, EventBytesUseTensorFlowsFieldNumbers) {
  TempDir tmp;
  { tensorboard::EventWriter(tmp.path()).scalars(7, {{"lr", 0.5}}, 2.0); }
  const std::string bytes = read_all(tensorboard::event_files(tmp.path()).at(0));
  auto record = [&](size_t at, size_t& next) {
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[at + i]);
    next = at + 16 + len;
    return bytes.substr(at + 12, len);
  };
  size_t next = 0;
  const std::string first = record(0, next);
  ASSERT_GE(first.size(), 9u);
  EXPECT_EQ(static_cast<unsigned char>(first[0]), 0x09);  // field 1, 64-bit: wall_time
  EXPECT_EQ(static_cast<unsigned char>(first[9]), 0x1a);  // field 3, length-delimited: file_version
  EXPECT_EQ(first.substr(11), "brain.Event:2");
  const std::string second = record(next, next);
  EXPECT_EQ(next, bytes.size());
  // 09 <2.0 as a little-endian double> 10 07 2a <len> 0a <len> 0a 02 "lr" 15 <0.5f>
  const std::string expected = std::string(
      "\x09\x00\x00\x00\x00\x00\x00\x00\x40\x10\x07\x2a\x0b\x0a\x09\x0a\x02lr\x15"
      "\x00\x00\x00\x3f",
      24);
  EXPECT_TRUE(second == expected) << "event bytes differ from TensorFlow's layout";
}

// TensorBoard itself (its EventAccumulator, what its web UI reads with) loads a resumed run's
// folder: every scalar of every metrics row at its step, no step twice.
TEST(TensorBoard, TensorBoardsOwnReaderLoadsAResumedRun) {
  ASSERT_TRUE(python_has("tensorboard"));
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 64, 100);
  ASSERT_EQ(train(tiny(tmp / "data", 10), quiet(tmp / "run")), 0);
  ASSERT_EQ(resume(tmp / "run", {"train.iterations=15"}, quiet("")), 0);
  const std::string cmd = kPython + " " + RESNET_SOURCE_DIR + "/tests/tools/read_tensorboard.py " + (tmp / "run") +
                          " > " + (tmp / "tb.json") + " 2> " + (tmp / "tb.err");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_all(tmp / "tb.err");
  const nlohmann::json scalars = nlohmann::json::parse(read_all(tmp / "tb.json"));
  std::vector<nlohmann::json> rows;
  std::ifstream in(tmp / "run/metrics.jsonl");
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);  // steps 5, 10, 15
  for (const auto& [column, tag] : std::vector<std::pair<std::string, std::string>>{
           {"train_loss", "train/loss"}, {"test_error", "test/error"}, {"lr", "lr"}}) {
    ASSERT_TRUE(scalars.contains(tag)) << tag << " missing from " << scalars.dump();
    ASSERT_EQ(scalars[tag].size(), rows.size()) << tag << ": " << scalars[tag].dump();
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(scalars[tag][i][0], rows[i]["step"]) << tag;
      EXPECT_FLOAT_EQ(scalars[tag][i][1].get<double>(), static_cast<float>(rows[i][column].get<double>())) << tag;
    }
  }
}
