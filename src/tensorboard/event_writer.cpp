#include "tensorboard/event_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "event.pb.h"  // generated from event.proto into the build folder
#include "util/budgets.h"
#include "util/folder.h"
#include "util/json_io.h"

namespace resnet::tensorboard {
namespace {

constexpr const char* kPrefix = "events.out.tfevents.";

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// length, CRC(length), data, CRC(data)
std::string frame(const std::string& data) {
  std::string out;
  put_u64(out, data.size());
  put_u32(out, masked_crc32c(out.data(), 8));
  out += data;
  put_u32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  // CRC-32C (Castagnoli): polynomial 0x1EDC6F41, reflected input and output, init and final
  // xor all ones.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::vector<std::string> event_files(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code ec;
  // Every entry so named, whatever it is: one that is not a regular file is refused by name
  // when it is opened (util/folder.h), never followed.
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec))
    if (entry.path().filename().string().rfind(kPrefix, 0) == 0) out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

EventWriter::EventWriter(const std::string& folder) {
  const Folder dir = Folder::open(folder);
  const auto existing = event_files(folder);
  const bool fresh = existing.empty();
  const std::string name = fresh ? kPrefix + std::to_string(static_cast<int64_t>(now_seconds())) + "." + host_name() +
                                       "." + std::to_string(::getpid())
                                 : std::filesystem::path(existing.back()).filename().string();
  path_ = dir.file(name);
  fd_ = dir.open_to_append(name).release();
  if (fresh) {
    Event e;
    e.set_wall_time(now_seconds());
    e.set_file_version("brain.Event:2");
    write_record(e.SerializeAsString());
    dir.sync();
  }
}

EventWriter::~EventWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void EventWriter::scalars(int64_t step, const std::map<std::string, double>& values, double wall_time) {
  Event e;
  e.set_wall_time(wall_time >= 0 ? wall_time : now_seconds());
  e.set_step(step);
  Summary* summary = e.mutable_summary();
  for (const auto& [tag, value] : values) {
    Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_record(e.SerializeAsString());
}

void EventWriter::write_record(const std::string& bytes) {
  const std::string record = frame(bytes);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(path_ + ": write failed (" + std::strerror(errno) + ")");
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) throw std::runtime_error(path_ + ": write failed (" + std::strerror(errno) + ")");
}

void trim_events(const std::string& folder, int64_t step) {
  const Folder dir = Folder::open(folder);
  for (const auto& path : event_files(folder)) {
    const std::string name = std::filesystem::path(path).filename().string();
    const std::string bytes = dir.read(name, budget::kEventsFileBytes).value_or("");
    std::string kept;
    bool changed = false;
    size_t at = 0;
    while (at < bytes.size()) {
      // A record that is short or fails its CRCs ends the file (a torn write): dropped.
      if (bytes.size() - at < 12) {
        changed = true;
        break;
      }
      const uint64_t len = get_le(bytes, at, 8);
      if (bytes.size() - at < 16 ||
          static_cast<uint32_t>(get_le(bytes, at + 8, 4)) != masked_crc32c(bytes.data() + at, 8) ||
          len > bytes.size() - at - 16) {
        changed = true;
        break;
      }
      const std::string data = bytes.substr(at + 12, len);
      if (static_cast<uint32_t>(get_le(bytes, at + 12 + len, 4)) != masked_crc32c(data.data(), data.size())) {
        changed = true;
        break;
      }
      Event e;
      if (e.ParseFromString(data) && e.step() > step) {
        changed = true;
      } else {
        kept += bytes.substr(at, 16 + len);
      }
      at += 16 + len;
    }
    if (changed) dir.write_atomic(name, kept);
  }
}

}  // namespace resnet::tensorboard
