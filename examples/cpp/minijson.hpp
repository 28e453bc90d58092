// minijson.hpp: a small, strict JSON reader (RFC 8259) for the C++ example and tests: enough to
// read JSONL data files ("text"/"label" fields) and the JSON reports tandem returns.
//
// - Strings are decoded to UTF-8: \" \\ \/ \b \f \n \r \t and \uXXXX, with surrogate pairs
//   combined into one code point; a lone surrogate becomes U+FFFD (it has no UTF-8 form).
// - Raw control characters in strings, trailing commas, comments, leading zeros and trailing
//   content are errors (minijson::ParseError, with the byte offset).
// - Numbers are doubles; objects keep their members in document order.
#ifndef TANDEM_EXAMPLES_MINIJSON_HPP
#define TANDEM_EXAMPLES_MINIJSON_HPP

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace minijson {

/// A malformed document.
class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& what, std::size_t offset)
      : std::runtime_error("JSON: " + what + " at byte " + std::to_string(offset)),
        offset_(offset) {}
  /// Byte offset of the error in the input.
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

/// A JSON value.
class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::Null; }
  bool is_bool() const noexcept { return type_ == Type::Bool; }
  bool is_number() const noexcept { return type_ == Type::Number; }
  bool is_string() const noexcept { return type_ == Type::String; }
  bool is_array() const noexcept { return type_ == Type::Array; }
  bool is_object() const noexcept { return type_ == Type::Object; }

  /// The boolean; throws std::logic_error for another type.
  bool boolean() const {
    expect(Type::Bool);
    return bool_;
  }
  /// The number; throws std::logic_error for another type.
  double number() const {
    expect(Type::Number);
    return number_;
  }
  /// The string (UTF-8); throws std::logic_error for another type.
  const std::string& string() const {
    expect(Type::String);
    return string_;
  }
  /// Array elements or object member values, in document order.
  const std::vector<Value>& items() const {
    if (type_ != Type::Array && type_ != Type::Object) throw std::logic_error("JSON: not a container");
    return items_;
  }
  /// Object member names, parallel to items().
  const std::vector<std::string>& keys() const {
    expect(Type::Object);
    return keys_;
  }
  /// Elements or members.
  std::size_t size() const noexcept { return items_.size(); }

  /// The member named `key` (the last one if repeated), or nullptr; nullptr for a non-object.
  const Value* find(std::string_view key) const noexcept {
    if (type_ != Type::Object) return nullptr;
    for (std::size_t i = keys_.size(); i-- > 0;) {
      if (keys_[i] == key) return &items_[i];
    }
    return nullptr;
  }
  /// The member named `key`; throws std::out_of_range if absent.
  const Value& operator[](std::string_view key) const {
    const Value* v = find(key);
    if (v == nullptr) throw std::out_of_range("JSON: no member `" + std::string(key) + "`");
    return *v;
  }
  /// Element `i` of an array; throws std::out_of_range.
  const Value& operator[](std::size_t i) const { return items().at(i); }

 private:
  friend class Parser;
  void expect(Type t) const {
    if (type_ != t) throw std::logic_error("JSON: value has another type");
  }
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<std::string> keys_;
  std::vector<Value> items_;
};

/// Appends code point `cp` to `out` as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// The recursive-descent parser behind parse().
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (i_ != s_.size()) fail("trailing content");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 256;

  [[noreturn]] void fail(const std::string& what) const { throw ParseError(what, i_); }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  char peek() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end of input");
    return s_[i_];
  }

  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) fail("invalid literal");
    i_ += word.size();
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    Value v;
    switch (peek()) {
      case '{': {
        v.type_ = Value::Type::Object;
        ++i_;
        if (peek() == '}') {
          ++i_;
          return v;
        }
        for (;;) {
          if (peek() != '"') fail("expected a member name");
          v.keys_.push_back(string());
          if (peek() != ':') fail("expected ':'");
          ++i_;
          v.items_.push_back(value(depth + 1));
          const char c = peek();
          ++i_;
          if (c == '}') return v;
          if (c != ',') fail("expected ',' or '}'");
        }
      }
      case '[': {
        v.type_ = Value::Type::Array;
        ++i_;
        if (peek() == ']') {
          ++i_;
          return v;
        }
        for (;;) {
          v.items_.push_back(value(depth + 1));
          const char c = peek();
          ++i_;
          if (c == ']') return v;
          if (c != ',') fail("expected ',' or ']'");
        }
      }
      case '"':
        v.type_ = Value::Type::String;
        v.string_ = string();
        return v;
      case 't':
        literal("true");
        v.type_ = Value::Type::Bool;
        v.bool_ = true;
        return v;
      case 'f':
        literal("false");
        v.type_ = Value::Type::Bool;
        return v;
      case 'n':
        literal("null");
        return v;
      default:
        v.type_ = Value::Type::Number;
        v.number_ = number();
        return v;
    }
  }

  bool digit_at(std::size_t j) const { return j < s_.size() && s_[j] >= '0' && s_[j] <= '9'; }

  double number() {
    const std::size_t start = i_;
    std::size_t j = i_;
    if (j < s_.size() && s_[j] == '-') ++j;
    if (!digit_at(j)) fail("invalid value");
    if (s_[j] == '0') {
      ++j;
      if (digit_at(j)) fail("leading zero");
    } else {
      while (digit_at(j)) ++j;
    }
    if (j < s_.size() && s_[j] == '.') {
      ++j;
      if (!digit_at(j)) fail("digits expected after '.'");
      while (digit_at(j)) ++j;
    }
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      ++j;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (!digit_at(j)) fail("digits expected in exponent");
      while (digit_at(j)) ++j;
    }
    i_ = j;
    const std::string text(s_.substr(start, j - start));  // NUL-terminated for strtod
    return std::strtod(text.c_str(), nullptr);
  }

  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail("invalid hex digit in \\u escape");
    }
    return v;
  }

  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate: combine with a following \uDC00-\uDFFF, else it is lone.
            if (i_ + 6 <= s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
              const std::size_t save = i_;
              i_ += 2;
              const std::uint32_t lo = hex4();
              if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                i_ = save;  // not a pair: decode the next escape on its own
                cp = 0xFFFD;
              }
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;  // lone low surrogate
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --i_;
          fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

/// Parses one JSON document; throws ParseError.
inline Value parse(std::string_view text) { return Parser(text).document(); }

}  // namespace minijson

#endif  // TANDEM_EXAMPLES_MINIJSON_HPP
