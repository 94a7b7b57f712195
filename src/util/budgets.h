#pragma once
// Every budget a reader of user files works within, declared once (docs/safety.md lists them with
// what each bounds and the peak memory measured against crafted files). A reader knows the
// bytes, depth and count it may use before it allocates; crossing a budget is an InputError that
// names the file and the budget, never an allocation that fails or a stack that overflows.
#include <cstddef>
#include <cstdint>

namespace resnet::budget {

constexpr uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

// ---- JSON ------------------------------------------------------------------------------------
// Nesting of any JSON document (config files, config.json, summary.json, a metrics row,
// checkpoint and weights metadata, a safetensors header). Ours nest 4 deep; nlohmann's dump(),
// copies and comparisons recurse, so an unbounded depth is a stack overflow.
constexpr int kJsonDepth = 64;
// A JSON file read whole: a config file, config.json, summary.json, a metadata record.
constexpr uint64_t kJsonFileBytes = 16 * kMiB;
// metrics.jsonl: one ~300-byte row per evaluation (64 MiB: 200,000 evaluations).
constexpr uint64_t kMetricsFileBytes = 64 * kMiB;
// A safetensors header (the reference implementation's limit).
constexpr uint64_t kSafetensorsHeaderBytes = 100'000'000;

// ---- whole files -----------------------------------------------------------------------------
// A weights file (.pt, .safetensors) or a version-1 checkpoint, read whole into memory: the
// largest network here with its momentum is 0.5 GB.
constexpr uint64_t kWeightsFileBytes = 4 * kGiB;
// A small text file: batches.meta.txt, a lock's pid.
constexpr uint64_t kSmallTextBytes = 64 * kKiB;
// An events file trimmed on resume (TensorBoard: ~100 bytes an evaluation).
constexpr uint64_t kEventsFileBytes = 256 * kMiB;

// ---- pickles (serialize/unpickler.h) ----------------------------------------------------------
// A pickle's own bytes (data.pkl, inflated): a ResNet-152 state_dict's is ~100 KB.
constexpr uint64_t kPickleBytes = 32 * kMiB;
// What the unpickler allocates for one pickle, counted as it goes: every object it makes, every
// item a container holds, every memo entry and stack slot (ResNet-152: ~20,000 objects, ~4 MB).
constexpr uint64_t kPickleMemoryBytes = 64 * kMiB;
// Dimensions of a tensor.
constexpr size_t kTensorDims = 16;
// Storages declared by one file, in all: a bound on what the sizes may claim (each is checked
// against the bytes the file has before it is read).
constexpr int64_t kTensorBytes = int64_t{16} << 30;

// ---- zip records (serialize/zip_reader.h) -----------------------------------------------------
// A record outside the tensor data: byteorder, version, constants.pkl, a class source.
constexpr uint64_t kZipSmallRecordBytes = 1 * kMiB;
// Deflate cannot turn one byte into more than ~1032: a record that claims more is a lie.
constexpr uint64_t kDeflateMaxRatio = 1032;

// ---- tensors copied out of a file -------------------------------------------------------------
// Only the tensors a caller asks for are copied out, and a storage is read only for them: its
// bytes may exceed those of the tensors that need it by at most this factor plus kStorageSlack
// (tied weights share one storage; a storage many times bigger than what is read of it is refused).
constexpr int64_t kStorageOverread = 2;
constexpr int64_t kStorageSlack = int64_t{1} << 20;

// ---- messages (util/errors.h) -----------------------------------------------------------------
// The most of an offending value an error quotes, and the longest line a tool prints (a cut of
// last resort: messages quote short prefixes, but a model that does not fit lists a few names and
// the options that would build the file's network).
constexpr size_t kQuoteBytes = 60;
constexpr size_t kMessageBytes = 1024;

}  // namespace resnet::budget
