// Row kernels of the fused preprocessor, in scalar, AVX2 and AVX-512 flavours
// that compute identical bits (picked at run time: common/cpu_features.h). The data flow for one output row is
//
//   source row (any PixelFormat) --hresize--> int16 planar [3][dst_w_padded]
//                                            (per source row, cached)
//   two hresized rows --vresize--> uint8 planar [3][dst_w_padded]
//   uint8 planar --store--> float NCHW / uint8 NCHW / float NHWC
//
// The integer arithmetic is OpenCV's uint8 INTER_LINEAR (11-bit coefficients):
//   horizontal  h = (S[x0]*a0 + S[x1]*a1) >> 4      (OpenCV keeps the sum as int
//                                                     and shifts by 4 in the
//                                                     vertical pass; same bits)
//   vertical    out = ((b0*h0 >> 16) + (b1*h1 >> 16) + 2) >> 2
// and for its exact-2x "area fast" path:
//   horizontal  h = S[2x] + S[2x+1];   vertical  out = (h0 + h1 + 2) >> 2
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/cpu_features.h"
#include "damoyolo/image.h"

namespace damoyolo::image_internal {

// Every per-row buffer is padded to a multiple of this many elements so the
// vector kernels never need a scalar tail on their own buffers.
inline constexpr int kRowPad = 32;
inline int pad_row(int n) { return (n + kRowPad - 1) / kRowPad * kRowPad; }

// Coefficient tables for one (source size, destination size, pixel format).
// Per destination column, all padded to a multiple of kRowPad with copies of
// the last valid entry.
struct ResizeTables {
  bool area2 = false;  // OpenCV's exact-2x INTER_AREA shortcut
  int hshift = 4;      // 4 for linear, 0 for area2
  PixelFormat format = PixelFormat::kRGB8;
  // The two source pixel indices and the packed int16 weights (a0 | a1 << 16).
  // When the right tap is clamped to the last pixel its weight is 0.
  const int32_t* xofs0 = nullptr;
  const int32_t* xofs1 = nullptr;
  const int32_t* alpha = nullptr;
  // For the vector kernel: one 8-byte load per column covers both taps (the
  // right one `bpp` bytes after the left one). byte_ofs is where that load
  // starts; near the row end it starts earlier so it never reads past the
  // row, and byte_shift (bits) moves the wanted bytes back into place.
  const int32_t* byte_ofs = nullptr;
  const int64_t* byte_shift = nullptr;
};

// Which byte of a pixel holds R, G, B for each format (gray: byte 0 thrice).
void channel_bytes(PixelFormat format, int out[3]);

// Scalar kernels (reference and fallback). The vector kernels equal them on
// the inputs the horizontal pass can produce: h ≥ 0 for vresize_linear
// (b0, b1 in [0, 2048]), h0 + h1 ≤ 1020 for vresize_area2.
void unpack_row_scalar(const uint8_t* src, PixelFormat format, int width, uint32_t* out);
void hresize_row_scalar(const uint32_t* px, const ResizeTables& t, int dst_w, int stride,
                        int16_t* out);
void vresize_linear_scalar(const int16_t* h0, const int16_t* h1, int b0, int b1, int n,
                           uint8_t* out);
void vresize_area2_scalar(const int16_t* h0, const int16_t* h1, int n, uint8_t* out);
void u8_to_f32_scalar(const uint8_t* in, int n, float* out);

// One SIMD level's row kernels (common/cpu_features.h), each computing the
// same bits as its scalar counterpart above.
struct RowKernels {
  cpu::IsaLevel level;
  // Reads the source row directly (no unpacking); `row` must hold at least 8
  // bytes (callers copy tinier rows into a padded buffer). `next_row` (may be
  // null) is prefetched along the way: the gathers defeat the hardware
  // prefetcher, and the next source row is almost always needed next.
  // Writes planar int16 [3][stride] like hresize_row_scalar.
  // Null at the scalar level: unpack_row_scalar + hresize_row_scalar instead.
  void (*hresize_row)(const uint8_t* row, const uint8_t* next_row, const ResizeTables& t, int dst_w,
                      int stride, int16_t* out);
  void (*vresize_linear)(const int16_t* h0, const int16_t* h1, int b0, int b1, int n, uint8_t* out);
  void (*vresize_area2)(const int16_t* h0, const int16_t* h1, int n, uint8_t* out);
  void (*u8_to_f32)(const uint8_t* in, int n, float* out);
};

// The kernels of `level` (scalar where a level has no kernels in this build:
// off x86-64). Call only with a level the CPU supports.
const RowKernels& row_kernels(cpu::IsaLevel level);

}  // namespace damoyolo::image_internal
