#include "io/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace damoyolo::io {

const char* file_type_name(unsigned mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string mib(uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string((bytes + (1u << 19)) >> 20) + " MiB)";
}

}  // namespace

Result<std::vector<uint8_t>> read_file_bounded(const std::string& path, uint64_t max_bytes, const std::string& what,
                                               const std::string& limit_name) {
  const std::string who = what.empty() ? path : what + " '" + path + "'";
  auto errno_status = [&](ErrorCode code, const char* doing, int err) {
    if (err == ENOENT || err == ENOTDIR) code = ErrorCode::kNotFound;
    return Status(code, who + ": " + doing + " (" + std::strerror(err) + ")");
  };
  auto not_regular = [&](unsigned mode) {
    return Status(ErrorCode::kIOError,
                  who + ": not a regular file (it is " + file_type_name(mode) + ")");
  };
  auto too_large = [&](uint64_t size, const char* how) {
    return Status(ErrorCode::kOutOfRange, who + ": " + how + " " + mib(size) + ", more than the limit of " +
                                              mib(max_bytes) + (limit_name.empty() ? "" : " (" + limit_name + ")"));
  };
  if (path.find('\0') != std::string::npos)
    return Status(ErrorCode::kInvalidArgument, who + ": the path contains a NUL byte");

  // stat() first: a device or FIFO is refused without ever being opened.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status(ErrorCode::kIOError, "cannot open", errno);
  if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large(static_cast<uint64_t>(st.st_size), "the file has");

  // O_NONBLOCK: if the name now points at a FIFO, open() must not wait for a
  // writer; fstat() below then refuses it.
  Fd f;
  do {
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0) return errno_status(ErrorCode::kIOError, "cannot open", errno);
  if (::fstat(f.fd, &st) != 0) return errno_status(ErrorCode::kIOError, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) return too_large(size, "the file has");
  const int flags = ::fcntl(f.fd, F_GETFL);
  if (flags >= 0) ::fcntl(f.fd, F_SETFL, flags & ~O_NONBLOCK);

  std::vector<uint8_t> bytes;
  try {
    // The size fstat() reported, then more only if the file grows meanwhile,
    // never beyond max_bytes + 1 (the one byte that proves it is too large).
    bytes.resize(static_cast<size_t>(size));
    size_t pos = 0;
    for (;;) {
      if (pos == bytes.size()) {
        if (pos > max_bytes) return too_large(pos, "the file grew while being read to at least");
        const uint64_t grow = std::min<uint64_t>(uint64_t{1} << 16, max_bytes + 1 - pos);
        bytes.resize(pos + static_cast<size_t>(grow));
      }
      const ssize_t got = ::read(f.fd, bytes.data() + pos, bytes.size() - pos);
      if (got < 0) {
        if (errno == EINTR) continue;
        return errno_status(ErrorCode::kIOError, "read failed", errno);
      }
      if (got == 0) break;
      pos += static_cast<size_t>(got);
    }
    bytes.resize(pos);
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, who + ": out of memory reading " + mib(size));
  }
  return bytes;
}

}  // namespace damoyolo::io
