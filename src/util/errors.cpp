#include "util/errors.h"

#include "util/budgets.h"

namespace resnet {

std::string first_line(const std::string& message) {
  auto end = message.find('\n');
  return end == std::string::npos ? message : message.substr(0, end);
}

// `text` as it may appear in a one-line message: JSON keys and strings can hold any control
// character ("a\nb" is a valid key), which are written as \xNN.
std::string printable(const std::string& text) {
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out += ch;
    } else {
      const char* hex = "0123456789abcdef";
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
  }
  return out;
}

std::string excerpt(const std::string& text, size_t max) {
  if (text.size() <= max) return printable(text);
  return printable(text.substr(0, max)) + "... (" + std::to_string(text.size()) + " bytes)";
}

std::string one_line(const std::string& message) { return excerpt(message, budget::kMessageBytes); }

}  // namespace resnet
