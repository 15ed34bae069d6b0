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

[[noreturn]] void throw_decode_error(ErrorCode code, const std::string& name, const std::string& reason);

}  // namespace damoyolo::image_internal
