// Errors as values at the library boundary.
//
// Every public entry point returns a Status or a Result<T>. Inside the library,
// code throws damoyolo::Error (carrying the same code) and the public boundary
// converts it, so deep call chains stay readable while callers never see an
// exception escape the API.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace damoyolo {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // a caller-supplied value is wrong (shape, dtype, option)
  kNotFound,         // a file, tensor name or key does not exist
  kIOError,          // reading or writing failed
  kParseError,       // bytes are not what they claim to be (ONNX, image, JSON)
  kUnsupported,      // valid input the runtime does not implement (op, opset, dtype)
  kOutOfRange,       // a size beyond what the runtime accepts (huge image, ...)
  kInternal,         // a bug in damoyolo
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Unsupported: node 'x' (op Foo) ..." — code name, then the message.
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// The exception used inside the library. Never crosses the public API.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  Status status() const { return {code_, what()}; }

 private:
  ErrorCode code_;
};

// A value or the Status explaining why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
    if (std::get<Status>(v_).ok()) v_ = Status(ErrorCode::kInternal, "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  // Throws damoyolo::Error when there is no value: use only after checking ok(),
  // or in code (tools, tests) that wants the exception.
  T& value() & { check(); return std::get<T>(v_); }
  const T& value() const& { check(); return std::get<T>(v_); }
  T&& value() && { check(); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void check() const {
    if (!ok()) {
      const Status& s = std::get<Status>(v_);
      throw Error(s.code(), s.message());
    }
  }
  std::variant<T, Status> v_;
};

}  // namespace damoyolo
