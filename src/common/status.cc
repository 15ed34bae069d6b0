#include "damoyolo/status.h"

namespace damoyolo {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kIOError: return "IOError";
    case ErrorCode::kParseError: return "ParseError";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kOutOfRange: return "OutOfRange";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(error_code_name(code_)) + ": " + message_;
}

}  // namespace damoyolo
