#pragma once
// Small file helpers shared by every writer: a file is either the old one or the complete
// new one, never half of each (write to a temp file in the same folder, fsync, rename).
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace resnet {

// Writes `content` to `path` atomically. Throws std::runtime_error on I/O failure.
void write_file_atomic(const std::string& path, const std::string& content);

// Checks, before any work, that `path` can be written as a file: not a folder, and its folder
// exists. InputError naming the path otherwise.
void check_output_file(const std::string& path);

// Creates a folder (and its parents); InputError naming it if that is not possible.
void make_output_folder(const std::string& path);

// Reads a JSON file; a missing file or a parse error is an InputError naming the file.
nlohmann::json read_json_file(const std::string& path);

// Reads a whole file as bytes; InputError naming the file if it cannot be opened.
std::string read_text_file(const std::string& path);

}  // namespace resnet
