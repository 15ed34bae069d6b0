// The owning RGB8 image and pixel-format helpers.
#include "damoyolo/image.h"

#include <cstring>
#include <new>

namespace damoyolo {

namespace {
constexpr size_t kRowAlign = 64;  // one cache line / one AVX-512 register
}

int pixel_format_bytes(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRGB8:
    case PixelFormat::kBGR8:
      return 3;
    case PixelFormat::kGray8:
      return 1;
    case PixelFormat::kRGBA8:
    case PixelFormat::kBGRA8:
      return 4;
  }
  return 0;
}

const char* pixel_format_name(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRGB8: return "RGB8";
    case PixelFormat::kBGR8: return "BGR8";
    case PixelFormat::kGray8: return "Gray8";
    case PixelFormat::kRGBA8: return "RGBA8";
    case PixelFormat::kBGRA8: return "BGRA8";
  }
  return "?";
}

void Image::AlignedFree::operator()(uint8_t* p) const {
  ::operator delete[](p, std::align_val_t{kRowAlign});
}

Image::Image(int width, int height) {
  if (width <= 0 || height <= 0) return;  // an empty image, like Image()
  const size_t stride = (static_cast<size_t>(width) * 3 + kRowAlign - 1) / kRowAlign * kRowAlign;
  const size_t bytes = stride * static_cast<size_t>(height);
  data_.reset(static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t{kRowAlign})));
  width_ = width;
  height_ = height;
  stride_ = static_cast<ptrdiff_t>(stride);
}

Image::Image(const Image& other) : Image(other.width_, other.height_) {
  if (!other.empty()) std::memcpy(data_.get(), other.data_.get(), static_cast<size_t>(stride_) * height_);
}

Image& Image::operator=(const Image& other) {
  if (this != &other) *this = Image(other);
  return *this;
}

}  // namespace damoyolo
