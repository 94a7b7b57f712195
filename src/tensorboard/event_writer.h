#pragma once
// TensorBoard event files: scalar summaries in TensorFlow's record format, so that
// `tensorboard --logdir RUNS` shows (and overlays) the runs' curves.
//
// A file is a sequence of records: uint64 length (little-endian), uint32 masked CRC-32C of the
// length bytes, the serialised Event protobuf, uint32 masked CRC-32C of it. The first Event holds
// file_version "brain.Event:2". Events are built with protobuf (event.proto, TensorFlow's field
// numbers) and the CRCs with Boost's CRC template (Castagnoli polynomial).
//
// One file per run (events.out.tfevents.<time>.<host>.<pid>), appended and flushed per event. A
// resumed run keeps its file: trim_events() first drops the events past the checkpoint's step
// (as metrics.jsonl is cut back), so the curves have no duplicated tail. Files are opened
// relative to the folder without following symlinks (util/folder.h): a symlink, FIFO or
// hard-linked file under an events file's name is refused by name.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace resnet::tensorboard {

// CRC-32C (Castagnoli) and TensorFlow's masking of it.
uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

class EventWriter {
 public:
  // Appends to the newest events file in `folder`, or starts one there. Throws std::runtime_error
  // naming the file if it cannot be written.
  explicit EventWriter(const std::string& folder);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // One Event at `step` holding one simple_value per tag, written and flushed.
  void scalars(int64_t step, const std::map<std::string, double>& values, double wall_time = -1);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& bytes);
  std::string path_;
  int fd_ = -1;
};

// The events files in `folder` (sorted by name: oldest first).
std::vector<std::string> event_files(const std::string& folder);

// Rewrites each events file in `folder` without the events whose step is beyond `step` (the
// file_version record stays). A torn last record (a crash mid-write) is dropped too. Atomic
// (temp file + rename); files that need no change are left alone.
void trim_events(const std::string& folder, int64_t step);

}  // namespace resnet::tensorboard
