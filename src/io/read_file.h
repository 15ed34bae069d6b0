// Reading a whole file whose name came from someone else (an image upload, a
// dataset, a command line) without trusting it to be a file of sane size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "damoyolo/status.h"

namespace damoyolo::io {

// Reads the regular file `path` whole. Before reading a byte it
//  - refuses what is not a regular file (/dev/zero, a FIFO, a directory, a
//    socket): stat() first, so no device is even opened, then open() without
//    blocking (a FIFO with no writer would block) and fstat() the descriptor
//    in case the name was swapped in between;
//  - refuses a file larger than max_bytes;
// and while reading it stops at max_bytes + 1 in case the file grows.
// Symbolic links are followed (their target must be a regular file).
// Errors, each naming `what` and the path ("labels file '/x': ..."; the path
// alone when `what` is empty); `limit_name` (e.g. "DecodeOptions::
// max_file_bytes") tells the reader which setting to change:
//  kNotFound        the path does not exist
//  kIOError         not a regular file, cannot be opened or read
//  kOutOfRange      larger than max_bytes (or grew past it while read)
//  kInvalidArgument the path contains a NUL byte
Result<std::vector<uint8_t>> read_file_bounded(const std::string& path, uint64_t max_bytes,
                                               const std::string& what = {}, const std::string& limit_name = {});

// "a directory", "a character device", "a FIFO (named pipe)", ... for a
// st_mode that is not a regular file; "a regular file" otherwise.
const char* file_type_name(unsigned mode);

}  // namespace damoyolo::io
