#pragma once
// SHA-256 (FIPS 180-4) of a byte string, as 64 lowercase hex digits: how weight files are named
// in a run's config (model.init_sha256), the digest `sha256sum` prints for the same file.
#include <string>

namespace resnet {

std::string sha256_hex(const std::string& bytes);

}  // namespace resnet
