#pragma once
// CIFAR-10, official binary layout: data_batch_1..5.bin (train), test_batch.bin (test).
// A record is 3073 bytes: one label byte (0-9), then 1024 R, 1024 G, 1024 B bytes, each plane
// row-major 32x32. The whole set is read into one tensor so that batches are index operations.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

constexpr int64_t kCifarRecordBytes = 3073;
constexpr int64_t kCifarClasses = 10;

struct ImageSet {
  at::Tensor images;  // uint8 [N, 3, 32, 32]
  at::Tensor labels;  // int64 [N], values 0..9
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// Reads and concatenates files. Each must be a non-empty whole number of records, with every
// label in 0..9; errors are InputErrors naming the file (and the record for a bad label).
ImageSet read_cifar10_files(const std::vector<std::string>& paths);

// Writes one file in the official layout (tests make small synthetic data sets with it).
void write_cifar10_file(const std::string& path, const ImageSet& set);

struct Cifar10 {
  ImageSet train;                        // 50,000 for the official files
  ImageSet test;                         // 10,000
  std::vector<std::string> class_names;  // batches.meta.txt, else the standard names
};

// Loads the folder. The five training files must hold the same number of records (a file cut
// on a record boundary is still caught). A missing folder or file says how to get the data.
Cifar10 load_cifar10(const std::string& dir, bool with_train = true);

// A 64-bit digest of every image and label (FNV-1a over 8-byte words), as 16 hex digits: a run
// records it so that resuming on other data is caught, wherever the folder has moved.
std::string data_fingerprint(const Cifar10& data);

// --data-dir, else data.dir, else $CIFAR10_DIR, else data/cifar-10-batches-bin.
std::string resolve_data_dir(const std::string& flag, const DataConfig& data);

// The sets a run uses: the first train_limit training images, of which val_size (picked by a
// permutation seeded with val_seed) are held out; the first test_limit test images.
struct Splits {
  ImageSet train, val, test;
};
Splits make_splits(const Cifar10& data, const DataConfig& config);

}  // namespace resnet
