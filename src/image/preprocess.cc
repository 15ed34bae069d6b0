// Preprocessor: fused colour conversion + OpenCV-exact INTER_LINEAR resize +
// layout change + cast, one output row at a time.
//
// Bit-exactness with OpenCV 4.6 cv::resize(uint8, INTER_LINEAR) rests on
// reproducing its table computation exactly (modules/imgproc/src/resize.cpp,
// hal::resize and resizeGeneric_):
//  - scale = 1 / (dst / src) in double (OpenCV derives it from inv_scale);
//  - f = (float)((d + 0.5) * scale - 0.5), s = floor(f), f -= s (float);
//  - horizontally, s < 0 or s >= src-1 clamp s and set f = 0; vertically f is
//    NOT reset, only the two row indices are clipped into the image;
//  - weights saturate_cast<short>((1 - f) * 2048) and (f * 2048), rounded to
//    nearest-even, so a pair need not sum to 2048;
//  - when src = 2 * dst on both axes, INTER_LINEAR becomes INTER_AREA's fast
//    path, a rounded 2x2 mean (x + 2) >> 2;
//  - equal sizes are a plain copy, which the linear tables reproduce exactly
//    (weights 2048/0 give back the input).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "damoyolo/image.h"
#include "image/resize_kernels.h"

namespace damoyolo {

using image_internal::ResizeTables;
using image_internal::pad_row;

namespace {

constexpr int kMaxSide = 1 << 24;  // keeps every index and product in int32

// A value the compiler must materialise, so (d + 0.5) * scale - 0.5 is two
// roundings as in OpenCV's build, never one FMA (-march=native has FMA and
// GCC contracts across statements in C++ by default).
inline double no_contract(double v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm volatile("" : "+x"(v));
  return v;
#else
  volatile double t = v;
  return t;
#endif
}

inline int floor_to_int(float v) {  // cvFloor
  const int i = static_cast<int>(v);
  return i - (static_cast<float>(i) > v);
}

inline int16_t coef(float v) {  // saturate_cast<short>(v * INTER_RESIZE_COEF_SCALE)
  const long r = std::lrint(v * 2048.f);  // round half to even, like cvRound
  return static_cast<int16_t>(std::clamp<long>(r, -32768, 32767));
}

inline int32_t pack_pair(int a0, int a1) {
  return static_cast<int32_t>((static_cast<uint32_t>(a1) << 16) | static_cast<uint16_t>(a0));
}

void validate_view(const ImageView& src) {
  if (!src.data) throw Error(ErrorCode::kInvalidArgument, "preprocess: source image data is null");
  if (src.width <= 0 || src.height <= 0 || src.width > kMaxSide || src.height > kMaxSide)
    throw Error(ErrorCode::kInvalidArgument, "preprocess: invalid source size " + std::to_string(src.width) +
                                                 "x" + std::to_string(src.height));
  const int bpp = pixel_format_bytes(src.format);
  if (bpp == 0) throw Error(ErrorCode::kInvalidArgument, "preprocess: unknown pixel format");
  const ptrdiff_t row_bytes = static_cast<ptrdiff_t>(src.width) * bpp;
  if ((src.stride >= 0 ? src.stride : -src.stride) < row_bytes && src.height > 1)
    throw Error(ErrorCode::kInvalidArgument,
                "preprocess: stride " + std::to_string(src.stride) + " is smaller than a row of " +
                    std::to_string(row_bytes) + " bytes (" + pixel_format_name(src.format) + ")");
}

PreprocessInfo geometry(int sw, int sh, int dw, int dh, ResizeMode mode) {
  if (dw <= 0 || dh <= 0 || dw > kMaxSide || dh > kMaxSide)
    throw Error(ErrorCode::kInvalidArgument,
                "preprocess: invalid destination size " + std::to_string(dw) + "x" + std::to_string(dh));
  PreprocessInfo info;
  if (mode == ResizeMode::kLetterbox) {
    // Legacy DAMO-YOLO: r = min(S / w, S / h) in Python floats, int() truncates.
    const double r = std::min(static_cast<double>(dw) / sw, static_cast<double>(dh) / sh);
    info.resized_w = std::clamp(static_cast<int>(sw * r), 1, dw);
    info.resized_h = std::clamp(static_cast<int>(sh * r), 1, dh);
  } else {
    info.resized_w = dw;
    info.resized_h = dh;
  }
  info.scale_x = static_cast<float>(static_cast<double>(sw) / info.resized_w);
  info.scale_y = static_cast<float>(static_cast<double>(sh) / info.resized_h);
  return info;
}

}  // namespace

class Preprocessor::Impl {
 public:
  // The kernels are picked once, here: the level the CPU supports (or
  // DAMOYOLO_ISA allows), or scalar when the options turn SIMD off.
  explicit Impl(PreprocessOptions o)
      : options(o),
        kernels(&image_internal::row_kernels(o.use_simd ? cpu::isa_level() : cpu::IsaLevel::kScalar)),
        simd(kernels->level != cpu::IsaLevel::kScalar) {}

  // Runs the resize of `src` to rw x rh; calls store(dy, rgb_planes, plane_stride)
  // for every output row.
  template <class Store>
  void execute(const ImageView& src, int rw, int rh, Store&& store);

  size_t reserved_bytes() const {
    return (xofs0.capacity() + xofs1.capacity() + alpha.capacity() + byte_ofs.capacity() +
            yofs0.capacity() + yofs1.capacity() + unpacked.capacity()) * 4 +
           byte_shift.capacity() * 8 + (beta0.capacity() + beta1.capacity() + hrows.capacity()) * 2 +
           vrow.capacity() + tiny_row.capacity();
  }

  PreprocessOptions options;
  const image_internal::RowKernels* kernels;
  bool simd;  // kernels->hresize_row reads source rows directly (no unpacking)

 private:
  void prepare(int sw, int sh, int dw, int dh, PixelFormat format);
  void compute_row(const ImageView& src, int y, int16_t* out);

  int key_sw_ = -1, key_sh_ = -1, key_dw_ = -1, key_dh_ = -1;
  PixelFormat key_format_ = PixelFormat::kRGB8;
  bool tiny_rows_ = false;  // source rows under 8 bytes: copied to tiny_row before the gathers
  int stride_ = 0;  // elements per plane in hrows / vrow
  ResizeTables tables_;
  std::vector<int32_t> xofs0, xofs1, alpha;  // per destination column
  std::vector<int32_t> byte_ofs;             // per destination column, vector kernel
  std::vector<int64_t> byte_shift;
  std::vector<int32_t> yofs0, yofs1;         // per destination row: the two source rows
  std::vector<int16_t> beta0, beta1;         // per destination row: vertical weights
  std::vector<uint32_t> unpacked;            // one source row as RGBX words (scalar path)
  std::vector<uint8_t> tiny_row;             // a zero-padded copy of a < 8-byte row
  std::vector<int16_t> hrows;                // two cached horizontal results, [2][3][stride]
  std::vector<uint8_t> vrow;                 // one output row, [3][stride]

 public:
  // Multi-pass run() (options.fused off): the whole source as RGB, then the
  // resized planar uint8 image. Kept, so a repeated call allocates nothing.
  std::vector<uint8_t> full_rgb, planar_u8;
};

void Preprocessor::Impl::prepare(int sw, int sh, int dw, int dh, PixelFormat format) {
  if (sw == key_sw_ && sh == key_sh_ && dw == key_dw_ && dh == key_dh_ && format == key_format_)
    return;  // the steady state: nothing to compute, nothing to allocate
  key_sw_ = key_sh_ = key_dw_ = key_dh_ = -1;  // invalid until fully rebuilt (bad_alloc safety)

  stride_ = pad_row(dw);
  xofs0.resize(stride_);
  xofs1.resize(stride_);
  alpha.resize(stride_);
  byte_ofs.resize(stride_);
  byte_shift.resize(stride_);
  yofs0.resize(dh);
  yofs1.resize(dh);
  beta0.resize(dh);
  beta1.resize(dh);
  if (!simd) unpacked.resize(static_cast<size_t>(pad_row(sw)) + 16);
  tiny_row.resize(16);
  hrows.assign(static_cast<size_t>(2) * 3 * stride_, 0);
  vrow.resize(static_cast<size_t>(3) * stride_);

  const bool area2 = sw == 2 * dw && sh == 2 * dh;
  tables_.area2 = area2;
  tables_.hshift = area2 ? 0 : 4;
  if (area2) {
    for (int dx = 0; dx < dw; ++dx) {
      xofs0[dx] = 2 * dx;
      xofs1[dx] = 2 * dx + 1;
      alpha[dx] = pack_pair(1, 1);
    }
    for (int dy = 0; dy < dh; ++dy) {
      yofs0[dy] = 2 * dy;
      yofs1[dy] = 2 * dy + 1;
      beta0[dy] = beta1[dy] = 1;  // unused by the area kernel
    }
  } else {
    const double scale_x = 1.0 / (static_cast<double>(dw) / sw);
    const double scale_y = 1.0 / (static_cast<double>(dh) / sh);
    for (int dx = 0; dx < dw; ++dx) {
      float fx = static_cast<float>(no_contract((dx + 0.5) * scale_x) - 0.5);
      int sx = floor_to_int(fx);
      fx -= static_cast<float>(sx);
      if (sx < 0) fx = 0.f, sx = 0;
      if (sx >= sw - 1) fx = 0.f, sx = sw - 1;
      xofs0[dx] = sx;
      xofs1[dx] = std::min(sx + 1, sw - 1);  // weight 0 whenever clamped
      alpha[dx] = pack_pair(coef(1.f - fx), coef(fx));
    }
    for (int dy = 0; dy < dh; ++dy) {
      float fy = static_cast<float>(no_contract((dy + 0.5) * scale_y) - 0.5);
      const int sy = floor_to_int(fy);
      fy -= static_cast<float>(sy);
      yofs0[dy] = std::clamp(sy, 0, sh - 1);
      yofs1[dy] = std::clamp(sy + 1, 0, sh - 1);
      beta0[dy] = coef(1.f - fy);
      beta1[dy] = coef(fy);
    }
  }
  for (int dx = dw; dx < stride_; ++dx) {  // padding: valid indices, never stored
    xofs0[dx] = xofs0[dw - 1];
    xofs1[dx] = xofs1[dw - 1];
    alpha[dx] = alpha[dw - 1];
  }
  // Vector kernel: one 8-byte load at the left tap also covers the right tap
  // (xofs1 == xofs0 + 1 except where the right weight is 0). Loads that would
  // run past the row start earlier and are shifted back.
  const int bpp = pixel_format_bytes(format);
  const int64_t row_bytes = static_cast<int64_t>(sw) * bpp;
  tiny_rows_ = row_bytes < 8;
  for (int dx = 0; dx < stride_; ++dx) {
    const int64_t off = static_cast<int64_t>(xofs0[dx]) * bpp;
    const int64_t back = tiny_rows_ ? 0 : std::max<int64_t>(0, off + 8 - row_bytes);
    byte_ofs[dx] = static_cast<int32_t>(off - back);
    byte_shift[dx] = 8 * back;
  }
  tables_.format = format;
  tables_.byte_ofs = byte_ofs.data();
  tables_.byte_shift = byte_shift.data();
  tables_.xofs0 = xofs0.data();
  tables_.xofs1 = xofs1.data();
  tables_.alpha = alpha.data();
  key_sw_ = sw, key_sh_ = sh, key_dw_ = dw, key_dh_ = dh, key_format_ = format;
}

void Preprocessor::Impl::compute_row(const ImageView& src, int y, int16_t* out) {
  const uint8_t* row = src.data + static_cast<ptrdiff_t>(y) * src.stride;
  if (simd) {
    if (tiny_rows_) {
      std::memset(tiny_row.data(), 0, tiny_row.size());
      std::memcpy(tiny_row.data(), row, static_cast<size_t>(src.width) * pixel_format_bytes(src.format));
      row = tiny_row.data();
    }
    const uint8_t* next =
        (tiny_rows_ || y + 1 >= src.height) ? nullptr : src.data + static_cast<ptrdiff_t>(y + 1) * src.stride;
    kernels->hresize_row(row, next, tables_, key_dw_, stride_, out);
  } else {
    image_internal::unpack_row_scalar(row, src.format, src.width, unpacked.data());
    image_internal::hresize_row_scalar(unpacked.data(), tables_, key_dw_, stride_, out);
  }
}

template <class Store>
void Preprocessor::Impl::execute(const ImageView& src, int rw, int rh, Store&& store) {
  prepare(src.width, src.height, rw, rh, src.format);
  int16_t* slot[2] = {hrows.data(), hrows.data() + 3 * stride_};
  int tag[2] = {-1, -1};  // source row held by each slot
  auto find = [&](int y) { return tag[0] == y ? 0 : tag[1] == y ? 1 : -1; };
  const int n = 3 * stride_;
  for (int dy = 0; dy < rh; ++dy) {
    const int y0 = yofs0[dy], y1 = yofs1[dy];
    // Source rows only move forward, so a row computed for dy is often the
    // upper row of dy + 1: keep it rather than recompute (as OpenCV does).
    int s0 = find(y0);
    if (s0 < 0) {
      const int keep = find(y1);
      s0 = keep >= 0 ? 1 - keep : (tag[0] <= tag[1] ? 0 : 1);
      compute_row(src, y0, slot[s0]);
      tag[s0] = y0;
    }
    int s1 = find(y1);
    if (s1 < 0) {
      s1 = 1 - s0;
      compute_row(src, y1, slot[s1]);
      tag[s1] = y1;
    }
    if (tables_.area2) {
      kernels->vresize_area2(slot[s0], slot[s1], n, vrow.data());
    } else {
      kernels->vresize_linear(slot[s0], slot[s1], beta0[dy], beta1[dy], n, vrow.data());
    }
    store(dy, vrow.data(), stride_);
  }
}

// ---------------------------------------------------------------------------

Preprocessor::Preprocessor(PreprocessOptions options) : impl_(std::make_unique<Impl>(options)) {}
Preprocessor::~Preprocessor() = default;
Preprocessor::Preprocessor(Preprocessor&&) noexcept = default;
Preprocessor& Preprocessor::operator=(Preprocessor&&) noexcept = default;

size_t Preprocessor::reserved_bytes() const { return impl_->reserved_bytes(); }
bool Preprocessor::simd_active() const { return impl_->simd; }

Result<PreprocessInfo> Preprocessor::plan_geometry(int src_w, int src_h, int dst_w, int dst_h,
                                                   ResizeMode mode) {
  try {
    if (src_w <= 0 || src_h <= 0 || src_w > kMaxSide || src_h > kMaxSide)
      throw Error(ErrorCode::kInvalidArgument, "preprocess: invalid source size");
    return geometry(src_w, src_h, dst_w, dst_h, mode);
  } catch (const Error& e) {
    return e.status();
  }
}

namespace {

// Shared wrapper: validation, geometry, error conversion at the boundary.
template <class Body>
Status run_guarded(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, const void* dst,
                   PreprocessInfo* info_out, Body&& body) {
  try {
    validate_view(src);
    if (!dst) throw Error(ErrorCode::kInvalidArgument, "preprocess: destination buffer is null");
    const PreprocessInfo info = geometry(src.width, src.height, dst_w, dst_h, mode);
    body(info);
    if (info_out) *info_out = info;
    return Status::Ok();
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, "preprocess: out of memory for the row buffers");
  }
}

}  // namespace

Status Preprocessor::run(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, float* dst,
                         PreprocessInfo* info) {
  Impl& impl = *impl_;
  if (!impl.options.fused) return run_multipass(src, dst_w, dst_h, mode, dst, info);
  return run_guarded(src, dst_w, dst_h, mode, dst, info, [&](const PreprocessInfo& g) {
    const size_t plane = static_cast<size_t>(dst_w) * dst_h;
    const int rw = g.resized_w, rh = g.resized_h;
    auto convert = impl.kernels->u8_to_f32;
    impl.execute(src, rw, rh, [&](int dy, const uint8_t* rgb, int stride) {
      for (int c = 0; c < 3; ++c) {
        float* out = dst + c * plane + static_cast<size_t>(dy) * dst_w;
        convert(rgb + c * stride, rw, out);
        if (rw < dst_w) std::memset(out + rw, 0, sizeof(float) * (dst_w - rw));
      }
    });
    if (rh < dst_h)
      for (int c = 0; c < 3; ++c)
        std::memset(dst + c * plane + static_cast<size_t>(rh) * dst_w, 0,
                    sizeof(float) * static_cast<size_t>(dst_h - rh) * dst_w);
  });
}

// The sequence the fused pass replaces, three passes over whole images
// (what cvtColor → resize → convertTo + split do): each pass reads back what
// the previous one wrote, from memory once the image outgrows the cache.
// The bytes are the fused pass's: to_rgb then resize is its definition.
Status Preprocessor::run_multipass(const ImageView& src, int dst_w, int dst_h, ResizeMode mode, float* dst,
                                   PreprocessInfo* info) {
  Impl& impl = *impl_;
  try {
    validate_view(src);
    if (!dst) throw Error(ErrorCode::kInvalidArgument, "preprocess: destination buffer is null");
    const size_t w = static_cast<size_t>(src.width), h = static_cast<size_t>(src.height);
    // Pass 1: colour conversion of the whole image to interleaved RGB.
    impl.full_rgb.resize(w * h * 3);
    const int bpp = pixel_format_bytes(src.format);
    for (size_t y = 0; y < h; ++y) {
      const uint8_t* in = src.data + static_cast<ptrdiff_t>(y) * src.stride;
      uint8_t* out = impl.full_rgb.data() + y * w * 3;
      for (size_t x = 0; x < w; ++x, in += bpp, out += 3) {
        switch (src.format) {
          case PixelFormat::kRGB8:
          case PixelFormat::kRGBA8: out[0] = in[0], out[1] = in[1], out[2] = in[2]; break;
          case PixelFormat::kBGR8:
          case PixelFormat::kBGRA8: out[0] = in[2], out[1] = in[1], out[2] = in[0]; break;
          case PixelFormat::kGray8: out[0] = out[1] = out[2] = in[0]; break;
        }
      }
    }
    const ImageView rgb{impl.full_rgb.data(), src.width, src.height, static_cast<ptrdiff_t>(w * 3), PixelFormat::kRGB8};
    // Pass 2: resize + layout change into planar uint8.
    const size_t n = static_cast<size_t>(3) * dst_w * dst_h;
    impl.planar_u8.resize(n);
    Status st = run_u8(rgb, dst_w, dst_h, mode, impl.planar_u8.data(), info);
    if (!st.ok()) return st;
    // Pass 3: cast to float.
    impl.kernels->u8_to_f32(impl.planar_u8.data(), static_cast<int>(n), dst);
    return Status::Ok();
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfRange, "preprocess: out of memory for the multi-pass images");
  }
}

Status Preprocessor::run_u8(const ImageView& src, int dst_w, int dst_h, ResizeMode mode,
                            uint8_t* dst, PreprocessInfo* info) {
  Impl& impl = *impl_;
  return run_guarded(src, dst_w, dst_h, mode, dst, info, [&](const PreprocessInfo& g) {
    const size_t plane = static_cast<size_t>(dst_w) * dst_h;
    const int rw = g.resized_w, rh = g.resized_h;
    impl.execute(src, rw, rh, [&](int dy, const uint8_t* rgb, int stride) {
      for (int c = 0; c < 3; ++c) {
        uint8_t* out = dst + c * plane + static_cast<size_t>(dy) * dst_w;
        std::memcpy(out, rgb + c * stride, rw);
        if (rw < dst_w) std::memset(out + rw, 0, dst_w - rw);
      }
    });
    if (rh < dst_h)
      for (int c = 0; c < 3; ++c)
        std::memset(dst + c * plane + static_cast<size_t>(rh) * dst_w, 0,
                    static_cast<size_t>(dst_h - rh) * dst_w);
  });
}

Status Preprocessor::run_nhwc(const ImageView& src, int dst_w, int dst_h, ResizeMode mode,
                              float* dst, PreprocessInfo* info) {
  Impl& impl = *impl_;
  return run_guarded(src, dst_w, dst_h, mode, dst, info, [&](const PreprocessInfo& g) {
    const int rw = g.resized_w, rh = g.resized_h;
    impl.execute(src, rw, rh, [&](int dy, const uint8_t* rgb, int stride) {
      float* out = dst + static_cast<size_t>(dy) * dst_w * 3;
      const uint8_t *r = rgb, *gg = rgb + stride, *b = rgb + 2 * stride;
      for (int x = 0; x < rw; ++x) {
        out[3 * x] = r[x];
        out[3 * x + 1] = gg[x];
        out[3 * x + 2] = b[x];
      }
      if (rw < dst_w) std::memset(out + 3 * rw, 0, sizeof(float) * 3 * (dst_w - rw));
    });
    if (rh < dst_h)
      std::memset(dst + static_cast<size_t>(rh) * dst_w * 3, 0,
                  sizeof(float) * static_cast<size_t>(dst_h - rh) * dst_w * 3);
  });
}

}  // namespace damoyolo
