// decode_image(): format sniffing, file reading, EXIF orientation, BMP, and the
// conversion of internal errors into Status at the public boundary.
#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "image/decoders.h"
#include "io/read_file.h"

namespace damoyolo {

using image_internal::throw_decode_error;

ImageFormat sniff_image_format(const uint8_t* d, size_t n) {
  auto starts = [&](const char* magic, size_t len, size_t at = 0) {
    return n >= at + len && std::memcmp(d + at, magic, len) == 0;
  };
  if (!d) return ImageFormat::kUnknown;
  if (starts("\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts("\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (starts("BM", 2) && n >= 26) return ImageFormat::kBmp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::kGif;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return ImageFormat::kWebp;
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return ImageFormat::kTiff;
  return ImageFormat::kUnknown;
}

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kUnknown: return "unknown";
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kTiff: return "TIFF";
  }
  return "?";
}

namespace image_internal {

void throw_decode_error(ErrorCode code, const std::string& name, const std::string& reason) {
  throw Error(code, name + ": " + reason);
}

void check_pixel_budget(int64_t width, int64_t height, const DecodeOptions& options,
                        const std::string& name) {
  if (width <= 0 || height <= 0)
    throw_decode_error(ErrorCode::kParseError, name,
                       "invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  // Also keeps every later int computation (width * 3, stride * height) in range.
  if (width > (1 << 28) || height > (1 << 28) || width * height > options.max_pixels)
    throw_decode_error(ErrorCode::kOutOfRange, name,
                       "image of " + std::to_string(width) + "x" + std::to_string(height) +
                           " pixels exceeds the limit of " + std::to_string(options.max_pixels) +
                           " pixels (DecodeOptions::max_pixels)");
}

int64_t image_bytes(int64_t width, int64_t height) { return (width * 3 + 63) / 64 * 64 * height; }

int64_t exif_copy_bytes(int64_t width, int64_t height, int orientation, const DecodeOptions& options) {
  if (!options.exif_rotate || orientation < 2 || orientation > 8) return 0;
  return orientation >= 5 ? image_bytes(height, width) : image_bytes(width, height);
}

void check_decode_budget(int64_t bytes, const DecodeOptions& options, const std::string& name,
                         const std::string& what) {
  if (bytes <= options.max_decode_bytes) return;
  auto mib = [](int64_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB"; };
  throw_decode_error(ErrorCode::kOutOfRange, name,
                     "decoding this " + what + " needs about " + mib(bytes) + " of memory (estimated from its header), "
                     "more than the limit of " + std::to_string(options.max_decode_bytes) + " bytes (" +
                         mib(options.max_decode_bytes) + ", DecodeOptions::max_decode_bytes)");
}

int exif_orientation_from_tiff(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool little;
  if (t[0] == 'I' && t[1] == 'I') little = true;
  else if (t[0] == 'M' && t[1] == 'M') little = false;
  else return 1;
  auto u16 = [&](size_t at) -> unsigned {
    return little ? t[at] | (t[at + 1] << 8) : (t[at] << 8) | t[at + 1];
  };
  auto u32 = [&](size_t at) -> uint32_t {
    return little ? uint32_t(u16(at)) | (uint32_t(u16(at + 2)) << 16)
                  : (uint32_t(u16(at)) << 16) | uint32_t(u16(at + 2));
  };
  if (u16(2) != 42) return 1;
  const uint32_t ifd = u32(4);
  if (ifd > n || n - ifd < 2) return 1;
  const unsigned count = u16(ifd);
  for (unsigned i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + size_t{i} * 12;
    if (e + 12 > n) return 1;
    if (u16(e) != 0x0112) continue;
    if (u16(e + 2) != 3 || u32(e + 4) != 1) return 1;  // SHORT, one value
    const unsigned v = u16(e + 8);
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

Image apply_exif_orientation(const Image& src, int orientation) {
  if (orientation < 2 || orientation > 8) return src;
  const int w = src.width(), h = src.height();
  const bool swap = orientation >= 5;  // transpose, rotations by 90, transverse
  Image dst(swap ? h : w, swap ? w : h);
  for (int y = 0; y < dst.height(); ++y) {
    uint8_t* out = dst.row(y);
    for (int x = 0; x < dst.width(); ++x) {
      int sx = x, sy = y;
      switch (orientation) {  // PIL ImageOps.exif_transpose
        case 2: sx = w - 1 - x; break;                       // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;       // ROTATE_180
        case 4: sy = h - 1 - y; break;                       // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                       // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break;               // ROTATE_270 (90 clockwise)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;       // TRANSVERSE
        case 8: sx = w - 1 - y; sy = x; break;               // ROTATE_90 (counter-clockwise)
      }
      const uint8_t* in = src.row(sy) + 3 * sx;
      out[3 * x] = in[0];
      out[3 * x + 1] = in[1];
      out[3 * x + 2] = in[2];
    }
  }
  return dst;
}

// Uncompressed BMP (what PIL reads as BGR / BGRX / palette raw modes).
Image decode_bmp(const uint8_t* d, size_t n, const DecodeOptions& options, const std::string& name,
                 DecodeInfo& info) {
  auto u16 = [&](size_t at) -> uint32_t { return d[at] | (d[at + 1] << 8); };
  auto u32 = [&](size_t at) -> uint32_t { return u16(at) | (u16(at + 2) << 16); };
  if (n < 26) throw_decode_error(ErrorCode::kParseError, name, "BMP header is truncated");
  const uint32_t pixel_offset = u32(10);
  const uint32_t header_size = u32(14);
  int64_t width, height;
  uint32_t bpp, compression = 0, colors_used = 0;
  size_t palette_entry = 4;
  if (header_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = u16(18);
    height = static_cast<int16_t>(u16(20));
    bpp = u16(24);
    palette_entry = 3;
  } else if (header_size >= 40 && n >= 54) {
    width = static_cast<int32_t>(u32(18));
    height = static_cast<int32_t>(u32(22));
    bpp = u16(28);
    compression = u32(30);
    colors_used = u32(46);
  } else {
    throw_decode_error(ErrorCode::kParseError, name, "BMP header is truncated or unknown");
  }
  const bool top_down = height < 0;
  if (top_down) height = -height;
  check_pixel_budget(width, height, options, name);

  // BI_BITFIELDS with the standard 8-8-8 masks is laid out exactly like BI_RGB.
  bool plain = compression == 0;
  if (compression == 3 && bpp == 32 && n >= 66)
    plain = u32(54) == 0x00FF0000u && u32(58) == 0x0000FF00u && u32(62) == 0x000000FFu;
  if (!plain || (bpp != 8 && bpp != 24 && bpp != 32))
    throw_decode_error(ErrorCode::kUnsupported, name,
                       "BMP with " + std::to_string(bpp) + " bits per pixel and compression " +
                           std::to_string(compression) + " is not supported");

  uint8_t palette[256][3] = {};
  if (bpp == 8) {
    const size_t count = colors_used ? std::min<uint32_t>(colors_used, 256) : 256;
    const size_t at = 14 + size_t{header_size};
    if (at + count * palette_entry > n) throw_decode_error(ErrorCode::kParseError, name, "BMP palette is truncated");
    for (size_t i = 0; i < count; ++i)
      for (int c = 0; c < 3; ++c) palette[i][c] = d[at + i * palette_entry + 2 - c];
  }
  const size_t row_bytes = (static_cast<size_t>(width) * bpp + 31) / 32 * 4;
  if (pixel_offset > n || (n - pixel_offset) / row_bytes < static_cast<size_t>(height))
    throw_decode_error(ErrorCode::kParseError, name, "image file is truncated (BMP pixel data)");

  // The pixels are read straight from the caller's bytes: the Image is all.
  check_decode_budget(image_bytes(width, height), options, name,
                      std::to_string(width) + "x" + std::to_string(height) + " BMP");
  info.bit_depth = 8;  // 8 bits per channel (24/32-bit) or 8-bit palette indices
  Image image(static_cast<int>(width), static_cast<int>(height));
  const size_t step = bpp / 8;
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* in = d + pixel_offset + row_bytes * static_cast<size_t>(top_down ? y : height - 1 - y);
    uint8_t* out = image.row(static_cast<int>(y));
    for (int64_t x = 0; x < width; ++x, in += step, out += 3) {
      if (bpp == 8) {
        std::memcpy(out, palette[*in], 3);
      } else {
        out[0] = in[2];
        out[1] = in[1];
        out[2] = in[0];
      }
    }
  }
  return image;
}

}  // namespace image_internal

Result<Image> decode_image(const uint8_t* data, size_t size, const DecodeOptions& options,
                           const std::string& name, DecodeInfo* info_out) {
  DecodeInfo local;
  DecodeInfo& info = info_out ? *info_out : local;
  info = DecodeInfo{};
  try {
    if (options.max_pixels <= 0)
      throw_decode_error(ErrorCode::kInvalidArgument, name, "DecodeOptions::max_pixels must be positive");
    if (options.max_decode_bytes <= 0)
      throw_decode_error(ErrorCode::kInvalidArgument, name, "DecodeOptions::max_decode_bytes must be positive");
    if (options.high_bit_depth != HighBitDepth::kScale && options.high_bit_depth != HighBitDepth::kPilCompatible)
      throw_decode_error(ErrorCode::kInvalidArgument, name, "DecodeOptions::high_bit_depth is not a HighBitDepth");
    if (size == 0) throw_decode_error(ErrorCode::kParseError, name, "file is empty");
    if (!data) throw_decode_error(ErrorCode::kInvalidArgument, name, "null data pointer");
    const ImageFormat format = sniff_image_format(data, size);
    info.format = format;
    Image image;
    switch (format) {
      case ImageFormat::kJpeg:
        image = image_internal::decode_jpeg(data, size, options, name, info);
        break;
      case ImageFormat::kPng:
        image = image_internal::decode_png(data, size, options, name, info);
        break;
      case ImageFormat::kBmp:
        image = image_internal::decode_bmp(data, size, options, name, info);
        break;
      case ImageFormat::kUnknown:
        throw_decode_error(ErrorCode::kUnsupported, name,
                           "unrecognised image format (not JPEG, PNG or BMP by its first bytes)");
      default:
        throw_decode_error(ErrorCode::kUnsupported, name,
                           std::string(image_format_name(format)) + " images are not supported (JPEG, PNG, BMP only)");
    }
    if (options.exif_rotate && info.exif_orientation != 1) {
      image = image_internal::apply_exif_orientation(image, info.exif_orientation);
      info.orientation_applied = true;
    }
    return image;
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, name + ": out of memory while decoding");
  }
}

Result<Image> decode_image_file(const std::string& path, const DecodeOptions& options, DecodeInfo* info) {
  if (info) *info = DecodeInfo{};
  if (options.max_file_bytes <= 0)
    return Status(ErrorCode::kInvalidArgument, path + ": DecodeOptions::max_file_bytes must be positive");
  auto bytes = io::read_file_bounded(path, static_cast<uint64_t>(options.max_file_bytes), {},
                                     "DecodeOptions::max_file_bytes");
  if (!bytes.ok()) return bytes.status();
  return decode_image(bytes->data(), bytes->size(), options, path, info);
}

}  // namespace damoyolo
