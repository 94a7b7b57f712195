#include "util/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace resnet {

// OpenSSL's libcrypto (Debian: libssl-dev) rather than our own rounds: a well-kept, audited
// implementation that uses the CPU's SHA extensions where it has them.
std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1 || size != 32)
    throw std::runtime_error("SHA-256: OpenSSL's EVP_Digest failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (unsigned int i = 0; i < size; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace resnet
