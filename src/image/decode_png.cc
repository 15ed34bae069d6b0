// PNG decoding with libpng, reduced to RGB8 the way PIL's convert('RGB') does,
// except that by default 16-bit samples are scaled (HighBitDepth::kScale).
//
// libpng reports errors through a callback that must not return; ours
// longjmps. As in decode_jpeg.cc, each setjmp sits in a "guarded_*" function
// whose frame holds only plain data, and all C++ ownership (Image, buffers,
// png_destroy_read_struct) lives in the caller, never crossed by the jump.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <png.h>

#include "image/decoders.h"

namespace damoyolo::image_internal {
namespace {

struct PngState {
  png_structp png;
  png_infop info;
  std::jmp_buf jump;
  char message[256];
  const uint8_t* data;
  size_t size;
  size_t pos;
  // Header, after transforms.
  png_uint_32 width, height;
  int bit_depth, color_type, interlace, passes;
  int out_channels, out_depth;
  size_t out_rowbytes;
  bool pil_16;  // HighBitDepth::kPilCompatible
  // eXIf chunk (before IDAT), owned by libpng; null when absent.
  png_bytep exif;
  png_uint_32 exif_size;
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof(s->message), "%s", msg ? msg : "unknown libpng error");
  std::longjmp(s->jump, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // PIL ignores them too

void read_from_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "image file is truncated");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

bool guarded_read_info(PngState* s) {
  if (setjmp(s->jump)) return false;
  s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, on_png_error, on_png_warning);
  if (!s->png) return false;
  s->info = png_create_info_struct(s->png);
  if (!s->info) return false;
  png_set_read_fn(s->png, s, read_from_memory);
  // PIL does not limit sizes itself beyond its decompression-bomb check; we do
  // that with max_pixels, so lift libpng's 1M-pixels-per-side default only up
  // to what a PNG can declare.
  png_set_user_limits(s->png, 0x7fffffff, 0x7fffffff);
#ifdef PNG_HANDLE_AS_UNKNOWN_SUPPORTED
  // Chunks that cannot change the pixels here are skipped unread: libpng
  // would otherwise keep up to 1000 text chunks of up to 8 MB each, and
  // zTXt/iTXt/iCCP are compressed (a small file could ask for gigabytes).
  static const png_byte kSkipped[] = "iCCP\0iTXt\0sPLT\0tEXt\0zTXt";
  png_set_keep_unknown_chunks(s->png, PNG_HANDLE_CHUNK_NEVER, kSkipped, 5);
#endif
  png_read_info(s->png, s->info);
  png_get_IHDR(s->png, s->info, &s->width, &s->height, &s->bit_depth, &s->color_type, &s->interlace,
               nullptr, nullptr);
#ifdef PNG_eXIf_SUPPORTED
  if (png_get_valid(s->png, s->info, PNG_INFO_eXIf) && !png_get_eXIf_1(s->png, s->info, &s->exif_size, &s->exif))
    s->exif = nullptr;
#endif
  return true;
}

// Transforms that bring every PNG to 8-bit gray / gray+alpha / RGB / RGBA, or
// the same layouts with 16-bit samples, which png_row_to_rgb reduces itself
// (scaled, or PIL's high byte / clipping).
bool guarded_setup_transforms(PngState* s) {
  if (setjmp(s->jump)) return false;
  if (s->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
  if (s->color_type == PNG_COLOR_TYPE_GRAY && s->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  s->passes = png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  s->out_channels = png_get_channels(s->png, s->info);
  s->out_depth = png_get_bit_depth(s->png, s->info);
  s->out_rowbytes = png_get_rowbytes(s->png, s->info);
  return true;
}

// round(v * 255 / 65535) = round(v / 257); exact in integers because v / 257
// is never exactly halfway (257 is odd).
inline uint8_t scale16(unsigned v) { return static_cast<uint8_t>((v + 128) / 257); }

// One row of 16-bit samples (big-endian, `channels` per pixel) to RGB8.
void png_row16_to_rgb(const uint8_t* in, uint8_t* out, png_uint_32 width, int channels, bool pil) {
  auto sample = [in](size_t i) { return (unsigned{in[2 * i]} << 8) | in[2 * i + 1]; };
  const size_t step = static_cast<size_t>(channels);
  if (pil && channels == 1) {  // PIL opens 16-bit gray as "I"; I -> RGB clips at 255
    for (png_uint_32 x = 0; x < width; ++x, out += 3) {
      const unsigned v = sample(x);
      out[0] = out[1] = out[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
    return;
  }
  // PIL's "RGB;16B" / "RGBA;16B" / "LA;16B" raw modes keep the high byte.
  auto reduce = [&](size_t i) { return pil ? in[2 * i] : scale16(sample(i)); };
  for (png_uint_32 x = 0; x < width; ++x, out += 3) {
    const size_t i = x * step;
    if (channels <= 2) {  // gray (+ alpha, dropped)
      out[0] = out[1] = out[2] = reduce(i);
    } else {  // RGB (+ alpha, dropped)
      out[0] = reduce(i);
      out[1] = reduce(i + 1);
      out[2] = reduce(i + 2);
    }
  }
}

// One row of libpng output (after transforms) to RGB8.
void png_row_to_rgb(const uint8_t* in, uint8_t* out, png_uint_32 width, int channels, int depth, bool pil_16) {
  if (depth == 16) {
    png_row16_to_rgb(in, out, width, channels, pil_16);
    return;
  }
  switch (channels) {
    case 1:
      for (png_uint_32 x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
      break;
    case 2:  // gray + alpha: alpha dropped
      for (png_uint_32 x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[2 * x];
      break;
    case 3:
      std::memcpy(out, in, static_cast<size_t>(width) * 3);
      break;
    default:  // RGBA: alpha dropped
      for (png_uint_32 x = 0; x < width; ++x) {
        out[3 * x] = in[4 * x];
        out[3 * x + 1] = in[4 * x + 1];
        out[3 * x + 2] = in[4 * x + 2];
      }
      break;
  }
}

// Non-interlaced: one row at a time, straight into the image or through one
// scratch row when the layout needs converting.
bool guarded_read_rows(PngState* s, uint8_t* base, ptrdiff_t stride, uint8_t* scratch) {
  if (setjmp(s->jump)) return false;
  for (png_uint_32 y = 0; y < s->height; ++y) {
    uint8_t* out = base + static_cast<ptrdiff_t>(y) * stride;
    png_read_row(s->png, scratch ? scratch : out, nullptr);
    if (scratch) png_row_to_rgb(scratch, out, s->width, s->out_channels, s->out_depth, s->pil_16);
  }
  return true;
}

// Interlaced: libpng needs the whole image to combine the passes.
bool guarded_read_image(PngState* s, png_bytepp rows) {
  if (setjmp(s->jump)) return false;
  png_read_image(s->png, rows);
  return true;
}

struct PngDestroyer {
  PngState* s;
  ~PngDestroyer() {
    if (s->png) png_destroy_read_struct(&s->png, s->info ? &s->info : nullptr, nullptr);
  }
};

}  // namespace

Image decode_png(const uint8_t* data, size_t size, const DecodeOptions& options,
                 const std::string& name, DecodeInfo& info) {
  PngState state{};
  state.data = data;
  state.size = size;
  state.pil_16 = options.high_bit_depth == HighBitDepth::kPilCompatible;
  PngDestroyer destroyer{&state};
  auto fail = [&](const char* stage) {
    throw_decode_error(ErrorCode::kParseError, name,
                       std::string("invalid PNG while ") + stage + ": " + state.message);
  };

  if (!guarded_read_info(&state)) fail("reading the header");
  check_pixel_budget(state.width, state.height, options, name);
  info.bit_depth = state.bit_depth;
  if (state.exif) info.exif_orientation = exif_orientation_from_tiff(state.exif, state.exif_size);

  // Memory, from the header, before libpng allocates its row buffers
  // (png_read_update_info does): the Image (and its EXIF-rotated copy);
  // libpng's current and previous row at the widest pixel after transforms
  // (palette with tRNS becomes RGBA; 16-bit samples stay 16-bit); our scratch
  // row, or for an interlaced file that needs converting a whole image of
  // decoded rows, plus the row pointers; zlib and libpng state; ancillary
  // chunks it keeps (eXIf), never more than the file.
  {
    const int64_t w = state.width, h = state.height;
    int channels = 1;
    switch (state.color_type) {
      case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
      case PNG_COLOR_TYPE_RGB: channels = 3; break;
      case PNG_COLOR_TYPE_RGB_ALPHA: case PNG_COLOR_TYPE_PALETTE: channels = 4; break;
      default: break;
    }
    const int64_t row = w * channels * (state.bit_depth == 16 ? 2 : 1);
    const bool interlaced = state.interlace != PNG_INTERLACE_NONE;
    const bool rgb8 = state.color_type == PNG_COLOR_TYPE_RGB && state.bit_depth == 8;
    const int64_t ours = interlaced ? (rgb8 ? 0 : row * h) + h * static_cast<int64_t>(sizeof(png_bytep)) : row;
    constexpr int64_t kFixed = 1 << 20;  // zlib's window and state, libpng's structs
    const int64_t estimate = image_bytes(w, h) + exif_copy_bytes(w, h, info.exif_orientation, options) +
                             2 * (row + 64) + ours + kFixed + static_cast<int64_t>(std::min<size_t>(size, 8 << 20));
    check_decode_budget(estimate, options, name,
                        std::to_string(w) + "x" + std::to_string(h) + (interlaced ? " interlaced" : "") + " " +
                            std::to_string(state.bit_depth) + "-bit PNG");
  }
  if (!guarded_setup_transforms(&state)) fail("setting up transforms");
  info.scaled_from_16bit = state.out_depth == 16 && !state.pil_16;

  Image image(static_cast<int>(state.width), static_cast<int>(state.height));
  const bool direct = state.out_channels == 3 && state.out_depth == 8;
  if (state.passes <= 1) {
    std::vector<uint8_t> scratch(direct ? 0 : state.out_rowbytes);
    if (!guarded_read_rows(&state, image.data(), image.stride(), direct ? nullptr : scratch.data()))
      fail("decoding rows");
  } else {
    const size_t rowbytes = direct ? static_cast<size_t>(image.stride()) : state.out_rowbytes;
    std::vector<uint8_t> full(direct ? 0 : rowbytes * state.height);
    std::vector<png_bytep> rows(state.height);
    for (png_uint_32 y = 0; y < state.height; ++y)
      rows[y] = direct ? image.row(static_cast<int>(y)) : full.data() + y * rowbytes;
    if (!guarded_read_image(&state, rows.data())) fail("decoding interlaced rows");
    if (!direct)
      for (png_uint_32 y = 0; y < state.height; ++y)
        png_row_to_rgb(rows[y], image.row(static_cast<int>(y)), state.width, state.out_channels,
                       state.out_depth, state.pil_16);
  }
  // No png_read_end: trailing chunks (text, time) do not change pixels, and
  // PIL does not require them either.
  return image;
}

}  // namespace damoyolo::image_internal
