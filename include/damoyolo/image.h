// Image input: decoding files to RGB8 and fused, bit-exact preprocessing into
// the network input buffer.
//
// The contract reproduced here is DAMO-YOLO's official one (see
// docs/preprocessing.md):
//   1. decode like PIL `Image.open(p).convert('RGB')` (with
//      DecodeOptions::pil_compatible(); the defaults additionally apply the
//      EXIF orientation and scale 16-bit samples);
//   2. resize like OpenCV 4.6 `cv::resize(img, {S, S}, 0, 0, INTER_LINEAR)` on
//      uint8 (fixed point, bit-exact, including its special cases);
//   3. HWC -> CHW, RGB plane order, uint8 -> float32 with values 0..255.
// Preprocessor does 2 and 3 in one pass from any supported pixel layout,
// without intermediate images and, for repeated sizes, without allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "damoyolo/status.h"

namespace damoyolo {

// ---------------------------------------------------------------------------
// Pixels
// ---------------------------------------------------------------------------

// Interleaved 8-bit layouts a caller may hand in. Alpha is ignored (like PIL's
// convert('RGB') from RGBA); gray is replicated to R=G=B.
enum class PixelFormat { kRGB8, kBGR8, kGray8, kRGBA8, kBGRA8 };

// Bytes per pixel of a format (3, 3, 1, 4, 4).
int pixel_format_bytes(PixelFormat format);
const char* pixel_format_name(PixelFormat format);

// A read-only window on caller memory: `height` rows of `width` pixels, row y
// starting at data + y * stride (stride in bytes; it may exceed width * bpp,
// and may be negative for bottom-up buffers). Nothing is copied.
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  ptrdiff_t stride = 0;
  PixelFormat format = PixelFormat::kRGB8;
};

// An owning RGB8 image. Rows start on 64-byte boundaries (stride is width * 3
// rounded up to 64) so row loops can use aligned vector loads. Copying copies
// the pixels; moving is cheap.
class Image {
 public:
  Image() = default;
  // Uninitialised pixels. Throws std::bad_alloc on failure; callers that take
  // sizes from untrusted input check them first (decode does).
  Image(int width, int height);
  Image(const Image& other);
  Image& operator=(const Image& other);
  Image(Image&&) noexcept = default;
  Image& operator=(Image&&) noexcept = default;
  ~Image() = default;

  bool empty() const { return width_ == 0 || height_ == 0; }
  int width() const { return width_; }
  int height() const { return height_; }
  ptrdiff_t stride() const { return stride_; }
  uint8_t* row(int y) { return data_.get() + y * stride_; }
  const uint8_t* row(int y) const { return data_.get() + y * stride_; }
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  // Pixel (x, y), channel c (0 = R).
  uint8_t at(int x, int y, int c) const { return row(y)[x * 3 + c]; }

  ImageView view() const { return {data_.get(), width_, height_, stride_, PixelFormat::kRGB8}; }

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, AlignedFree> data_;
  int width_ = 0;
  int height_ = 0;
  ptrdiff_t stride_ = 0;
};

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

// How 16-bit samples (PNG) become 8-bit ones.
enum class HighBitDepth {
  // round(v * 255 / 65535) for every 16-bit sample, gray or colour: the full
  // range maps onto 0..255 (as OpenCV's imread and image viewers show it).
  kScale,
  // Exactly PIL's Image.open().convert('RGB'): 16-bit RGB / RGBA / gray+alpha
  // keep their high byte (raw modes "RGB;16B" etc.), 16-bit gray is clipped at
  // 255 (mode "I;16" -> "I" -> RGB), so most 16-bit gray images turn white.
  kPilCompatible,
};

struct DecodeOptions {
  // Apply the EXIF orientation tag (0x0112) like PIL's ImageOps.exif_transpose,
  // as OpenCV's imread and photo viewers do: a phone photo held upright comes
  // out upright. Read from JPEG APP1 "Exif" segments and from PNG eXIf chunks
  // placed before the image data. The official pipeline
  // (Image.open().convert('RGB')) ignores the tag: set false, or use
  // pil_compatible(), for its exact pixels.
  bool exif_rotate = true;
  // 16-bit PNG samples: scaled by default; kPilCompatible for PIL's pixels.
  HighBitDepth high_bit_depth = HighBitDepth::kScale;
  // Refuse images with more pixels than this before allocating anything
  // (ErrorCode::kOutOfRange). The check uses the size in the file header.
  int64_t max_pixels = 100'000'000;
  // Refuse a decode whose memory, estimated from the header alone, exceeds
  // this many bytes (ErrorCode::kOutOfRange), before allocating anything. The
  // estimate covers the output Image, the EXIF-rotated copy, the decoder's
  // whole-image buffers (progressive or multi-scan JPEG: 2 bytes per
  // coefficient, about 2 bytes per pixel per component; interlaced PNG that
  // needs converting: a full image of decoded rows) and its row buffers; not
  // the file's own bytes. libjpeg's own allocations are also capped by it.
  // docs/preprocessing.md gives the numbers. The default admits every 8-bit
  // image up to max_pixels except a few progressive 4:4:4 / CMYK JPEGs near
  // it; a service that decodes uploads should set it lower (e.g. 256 MiB).
  int64_t max_decode_bytes = int64_t{1} << 30;
  // decode_image_file only: refuse files larger than this (kOutOfRange)
  // before reading them. The default holds every BMP up to max_pixels.
  int64_t max_file_bytes = int64_t{512} << 20;
  // JPEG only: DCT-domain downscaling by 1, 2, 4 or 8 (libjpeg scale_denom).
  // Much faster for big photos, but the pixels then differ from the official
  // pipeline; 1 (the default) is exact. Ignored for other formats.
  int jpeg_scale_denom = 1;

  // Exactly the official DAMO-YOLO decode, PIL's Image.open(p).convert('RGB'):
  // EXIF orientation ignored and HighBitDepth::kPilCompatible; other fields at
  // their defaults. Use it where outputs must match the official pipeline bit
  // for bit. For 8-bit images without an orientation tag (or with tag 1) it
  // decodes the same pixels as the defaults.
  static DecodeOptions pil_compatible() {
    DecodeOptions o;
    o.exif_rotate = false;
    o.high_bit_depth = HighBitDepth::kPilCompatible;
    return o;
  }
};

// Formats recognised by their magic bytes (never by file extension).
enum class ImageFormat { kUnknown, kJpeg, kPng, kBmp, kGif, kWebp, kTiff };
ImageFormat sniff_image_format(const uint8_t* data, size_t size);
const char* image_format_name(ImageFormat format);

// What a decode found in the file and what it did to the pixels. Written by
// decode_image / decode_image_file when they are given a pointer to one: it is
// reset on entry; on success every field is set; on failure only `format`
// (what the magic bytes said) is meaningful.
struct DecodeInfo {
  // The container, from the magic bytes; kUnknown when not decoded from bytes
  // (e.g. ImageDetections of an in-memory ImageView).
  ImageFormat format = ImageFormat::kUnknown;
  // Bits per sample as stored: JPEG its data precision (8); PNG the IHDR bit
  // depth (1, 2, 4, 8 or 16; for palette images the index size); BMP 8.
  // 0 when nothing was decoded.
  int bit_depth = 0;
  // The EXIF orientation tag found in the file, 1..8 (1 = upright). 1 also
  // when there is none, when it is malformed, and for BMP. Reported whether or
  // not it was applied.
  int exif_orientation = 1;
  // True when the pixels were flipped/rotated for that tag (exif_rotate on and
  // exif_orientation 2..8). The returned width/height are then the upright
  // ones (swapped from the stored ones for orientations 5..8).
  bool orientation_applied = false;
  // True when 16-bit samples were reduced by scaling (HighBitDepth::kScale).
  // False for 8-bit-or-less images and when kPilCompatible reduced them
  // (bit_depth == 16 && !scaled_from_16bit means PIL's high byte / clipping).
  bool scaled_from_16bit = false;
};

// Decodes a JPEG, PNG or BMP to RGB8. With DecodeOptions::pil_compatible()
// the pixels are PIL's convert('RGB') exactly:
//  - JPEG: libjpeg-turbo, JDCT_ISLOW, fancy upsampling (what PIL uses);
//    grayscale replicated; CMYK/YCCK converted like PIL (Adobe-inverted CMYK,
//    then R = 255 - C', ... with PIL's rounding). A truncated file is an error
//    (PIL: "image file is truncated"); other libjpeg warnings are ignored, as
//    in PIL.
//  - PNG: palette expanded, alpha dropped, gray replicated, 1/2/4-bit gray
//    scaled to 0..255, 16-bit RGB/RGBA/gray+alpha reduced to their high byte
//    (PIL's "RGB;16B" unpacking), 16-bit gray clipped to 255 (PIL opens it as
//    mode "I;16"/"I" and convert('RGB') clips values above 255). No gamma.
//  - BMP: uncompressed 24- and 32-bit (BI_RGB), top-down or bottom-up.
// The defaults differ in two places only: the EXIF orientation is applied
// (exif_rotate) and 16-bit samples are scaled (HighBitDepth::kScale).
// `info` (may be null) receives what the decode found and did.
// Errors (every message names the file `name` and the reason):
//  kParseError  empty, corrupt or truncated data
//  kUnsupported a format (or a variant of one) not decoded here
//  kOutOfRange  more than max_pixels, or more than max_decode_bytes of memory
//               (estimated from the header, before any large allocation)
//  kInvalidArgument bad options
Result<Image> decode_image(const uint8_t* data, size_t size, const DecodeOptions& options = {},
                           const std::string& name = "<memory>", DecodeInfo* info = nullptr);
// Reads the file, then decode_image. Only a regular file is read (symbolic
// links to one are followed): a device (/dev/zero), FIFO or directory is
// refused without reading, as is a file over options.max_file_bytes.
//  kNotFound    the file does not exist
//  kIOError     not a regular file, or it cannot be read
//  kOutOfRange  larger than max_file_bytes (checked before reading)
// and decode_image's errors.
Result<Image> decode_image_file(const std::string& path, const DecodeOptions& options = {},
                                DecodeInfo* info = nullptr);

// ---------------------------------------------------------------------------
// Preprocessing
// ---------------------------------------------------------------------------

enum class ResizeMode {
  // Current models: stretch to exactly dst_w x dst_h (no aspect ratio kept).
  kStretch,
  // Legacy models: r = min(dst_w / w, dst_h / h) (double), resized size
  // (int(w*r), int(h*r)) truncated, image at the top-left, zeros elsewhere.
  kLetterbox,
};

// How the output relates to the source. Map a box from network coordinates
// back to the original image with x * scale_x, y * scale_y (no offset, no
// clipping), as the official BoxList.resize does.
struct PreprocessInfo {
  int resized_w = 0;  // size of the resized image inside the output
  int resized_h = 0;
  float scale_x = 1.f;  // original_w / resized_w
  float scale_y = 1.f;  // original_h / resized_h
};

struct PreprocessOptions {
  // Use the SIMD row kernels (AVX-512 or AVX2, picked at run time from the
  // CPU; DAMOYOLO_ISA in the environment can cap the level, docs/performance.md).
  // The scalar path computes the same bits; tests run every level (false is
  // the optimisation's off switch).
  bool use_simd = true;
  // One pass over the source: colour conversion, resize, layout change and
  // cast per output row, while the rows are in cache. false: the classic
  // multi-pass sequence instead — the whole image to RGB, then resized into
  // a planar uint8 image, then cast to float — with the same bytes out (the
  // off switch of DetectorOptimizations::fused_preprocess, for the ablation).
  // Only run() honours it; run_u8 and run_nhwc are always one pass.
  bool fused = true;
};

// Fused resize + colour conversion + layout change + cast, in one pass over
// the source. Output pixel (x, y, c) equals
//   cv::resize(to_rgb(src), {dst_w, dst_h}, 0, 0, cv::INTER_LINEAR)(y, x)[c]
// exactly (OpenCV 4.6 semantics, including its 2x-downscale "area" path and
// the plain copy for equal sizes), where to_rgb is cvtColor to 3-channel RGB.
//
// A Preprocessor caches coefficient tables for the last (source size,
// destination size) pair and owns its row buffers: a repeated call with the
// same sizes allocates nothing. Not thread-safe: use one per thread.
class Preprocessor {
 public:
  explicit Preprocessor(PreprocessOptions options = {});
  ~Preprocessor();
  Preprocessor(Preprocessor&&) noexcept;
  Preprocessor& operator=(Preprocessor&&) noexcept;
  Preprocessor(const Preprocessor&) = delete;
  Preprocessor& operator=(const Preprocessor&) = delete;

  // float32 planar [3, dst_h, dst_w] (R, G, B planes), values 0..255: the
  // network input. `dst` may point into a batch buffer (item b at
  // b * 3 * dst_h * dst_w); exactly 3 * dst_h * dst_w floats are written.
  Status run(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, float* dst,
             PreprocessInfo* info = nullptr);
  // uint8 planar [3, dst_h, dst_w]: the same values before the cast.
  Status run_u8(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, uint8_t* dst,
                PreprocessInfo* info = nullptr);
  // float32 interleaved [dst_h, dst_w, 3] (RGB).
  Status run_nhwc(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, float* dst,
                  PreprocessInfo* info = nullptr);

  // The geometry run() would use, without touching pixels.
  static Result<PreprocessInfo> plan_geometry(int src_w, int src_h, int dst_w, int dst_h,
                                              ResizeMode mode);

  // For tests: bytes currently reserved by the cached tables and row buffers.
  size_t reserved_bytes() const;
  // True when SIMD kernels (AVX2 or AVX-512) were picked at construction:
  // enabled in the options and supported by this CPU (within DAMOYOLO_ISA).
  bool simd_active() const;

  class Impl;

 private:
  Status run_multipass(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, float* dst,
                       PreprocessInfo* info);
  std::unique_ptr<Impl> impl_;
};

}  // namespace damoyolo
