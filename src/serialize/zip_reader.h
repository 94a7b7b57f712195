#pragma once
// PyTorch's zip files (torch.save since 1.6, TorchScript archives), read through libzip with
// every size bounded before anything is allocated.
//
// PyTorch keeps each record in one folder named after the archive ("archive/data.pkl",
// "resnet56/data/0"); the reader strips that folder, so names() are "data.pkl", "data/0", ...
// Refused (InputError, without the file's name: the caller adds it):
//   - what libzip cannot open or finds inconsistent (central directory vs local headers),
//   - records outside one common folder, duplicate names, methods other than stored/deflated,
//   - a record whose uncompressed size exceeds what its reader asks for (each read names its
//     budget: a pickle budget::kPickleBytes, a small record budget::kZipSmallRecordBytes, a storage
//     exactly the bytes its tensors declare, and only when a tensor the caller wants needs it), or
//     the archive's budget (kMaxZipBytes in all), or, deflated, more than deflate can produce
//     from its compressed size (1032:1): all checked before inflation, so a small file cannot
//     make the reader inflate more than its tensors honestly need,
//   - a record that does not inflate to exactly its size, or whose CRC-32 does not match.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/budgets.h"

namespace resnet {

// The most bytes one archive may unpack, all records together: 16 GiB, far above any network
// here (ResNet-152 with momentum is 0.5 GB) and a bound on what a lying file can cost.
constexpr uint64_t kMaxZipBytes = uint64_t{16} << 30;

class ZipReader {
 public:
  // `bytes` must outlive the reader.
  explicit ZipReader(const std::string& bytes);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  // Record names without the archive folder, in the archive's order.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& folder() const { return folder_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // The uncompressed size of a record (InputError if there is none).
  uint64_t size(const std::string& name) const;
  // The record's bytes, checked as above; a record of more than `max_bytes` is refused before it
  // is inflated. Each read counts against the archive's budget. (The readers in src/ name their
  // bound; the default is the largest record read whole, a pickle's.)
  std::string read(const std::string& name, uint64_t max_bytes = budget::kPickleBytes);
  // Reads the record, which must hold exactly `size` bytes, into `out`.
  void read_into(const std::string& name, void* out, uint64_t size);

 private:
  struct Entry {
    uint64_t index, size, compressed;
    uint16_t method;
  };
  const Entry& entry(const std::string& name) const;

  struct Archive;
  std::unique_ptr<Archive> zip_;
  std::string folder_;
  std::vector<std::string> names_;
  std::map<std::string, Entry> index_;
  uint64_t budget_ = kMaxZipBytes;
};

}  // namespace resnet
