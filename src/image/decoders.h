// Per-format decoders behind decode_image(). Each throws damoyolo::Error with a
// message that starts with the file name; decode_image() turns it into a Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "damoyolo/image.h"
#include "damoyolo/status.h"

namespace damoyolo::image_internal {

// Each fills info.bit_depth, info.exif_orientation (the tag found, 1 when
// none) and info.scaled_from_16bit; decode_image() sets format and applies
// the orientation.
Image decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                  const std::string& name, DecodeInfo& info);
Image decode_png(const uint8_t* data, size_t size, const DecodeOptions& options,
                 const std::string& name, DecodeInfo& info);
Image decode_bmp(const uint8_t* data, size_t size, const DecodeOptions& options,
                 const std::string& name, DecodeInfo& info);

// Orientation tag from a TIFF-structured EXIF block (the JPEG APP1 payload
// after "Exif\0\0", or a PNG eXIf chunk). Returns 1 when absent or malformed.
int exif_orientation_from_tiff(const uint8_t* tiff, size_t size);
// PIL ImageOps.exif_transpose for orientation 2..8; 1 returns a copy.
Image apply_exif_orientation(const Image& src, int orientation);

// Throws kOutOfRange when width * height exceeds options.max_pixels.
void check_pixel_budget(int64_t width, int64_t height, const DecodeOptions& options,
                        const std::string& name);

// Bytes an Image of width x height holds (rows padded to 64 bytes).
int64_t image_bytes(int64_t width, int64_t height);
// The Image decode_image allocates for the EXIF rotation of a width x height
// decode (0 when no rotation will be applied).
int64_t exif_copy_bytes(int64_t width, int64_t height, int orientation, const DecodeOptions& options);
// Throws kOutOfRange when `bytes`, the memory a decode will take as estimated
// from the header, exceeds options.max_decode_bytes. `what` describes the
// image for the message ("8000x8000 progressive JPEG").
void check_decode_budget(int64_t bytes, const DecodeOptions& options, const std::string& name,
                         const std::string& what);

[[noreturn]] void throw_decode_error(ErrorCode code, const std::string& name, const std::string& reason);

}  // namespace damoyolo::image_internal
