#pragma once
// How a config field of each C++ type meets JSON: its type's name (docs), the check of a user's
// value (the message after the key), and the conversions both ways. config/keys.cpp builds its
// rows with these; nothing else includes this file.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "util/errors.h"

namespace resnet::fields {

using nlohmann::json;

inline std::string kind(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// ": expected <want>, got a string (\"twenty\")": the value quoted as a short prefix.
inline std::string expected(const std::string& want, const json& v) {
  return ": expected " + want + ", got " + kind(v) + " (" + excerpt(v.dump()) + ")";
}

// JSON integers above INT64_MAX arrive as unsigned, and get<int64_t>() would wrap them.
inline bool is_int64(const json& v) {
  return v.is_number_integer() &&
         (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

template <class T>
struct Codec;

template <>
struct Codec<bool> {
  static constexpr const char* kType = "boolean";
  static std::string error(const json& v) { return v.is_boolean() ? "" : expected("a boolean (true or false)", v); }
  static bool read(const json& v) { return v.get<bool>(); }
  static json write(bool x) { return x; }
};

template <>
struct Codec<int64_t> {
  static constexpr const char* kType = "integer";
  static std::string error(const json& v) { return is_int64(v) ? "" : expected("an integer", v); }
  static int64_t read(const json& v) { return v.get<int64_t>(); }
  static json write(int64_t x) { return x; }
};

// The few fields that are `int`: get<int>() would truncate 4294967316 to 20.
template <>
struct Codec<int> {
  static constexpr const char* kType = "integer";
  static std::string error(const json& v) {
    if (!is_int64(v)) return expected("an integer", v);
    const int64_t x = v.get<int64_t>();
    if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
      return ": " + excerpt(v.dump()) + " is out of range";
    return "";
  }
  static int read(const json& v) { return static_cast<int>(v.get<int64_t>()); }
  static json write(int x) { return x; }
};

template <>
struct Codec<double> {
  static constexpr const char* kType = "number";
  static std::string error(const json& v) { return v.is_number() ? "" : expected("a number", v); }
  static double read(const json& v) { return v.get<double>(); }
  static json write(double x) { return x; }
};

template <>
struct Codec<std::string> {
  static constexpr const char* kType = "string";
  static std::string error(const json& v) { return v.is_string() ? "" : expected("a string", v); }
  static std::string read(const json& v) { return v.get<std::string>(); }
  static json write(const std::string& x) { return x; }
};

// true, false, or "auto" (unset: decided later, from the device or the model's family).
template <>
struct Codec<std::optional<bool>> {
  static constexpr const char* kType = "true/false/auto";
  static std::string error(const json& v) {
    return v.is_boolean() || v == json("auto") ? "" : expected("true, false or \"auto\"", v);
  }
  static std::optional<bool> read(const json& v) {
    return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt;
  }
  static json write(const std::optional<bool>& x) { return x ? json(*x) : json("auto"); }
};

// Arrays: each element with its element's codec; errors name the element ("key[1]: ...").
template <class E>
struct Codec<std::vector<E>> {
  static inline const std::string kType = std::string("[") + Codec<E>::kType + "]";
  static std::string error(const json& v) {
    if (!v.is_array()) return expected("an array", v);
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string e = Codec<E>::error(v[i]);
      if (!e.empty()) return "[" + std::to_string(i) + "]" + e;
    }
    return "";
  }
  static std::vector<E> read(const json& v) {
    std::vector<E> out;
    for (const auto& x : v) out.push_back(Codec<E>::read(x));
    return out;
  }
  static json write(const std::vector<E>& x) {
    json out = json::array();
    for (const auto& e : x) out.push_back(Codec<E>::write(e));
    return out;
  }
};

}  // namespace resnet::fields
