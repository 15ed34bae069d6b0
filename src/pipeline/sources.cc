// FrameBuffer and the image-folder source (no OpenCV: damoyolo's decoder).
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>

#include "damoyolo/pipeline.h"

namespace damoyolo {

namespace {
// Rows start on cache lines, as the preprocessor's SIMD loads like them.
constexpr size_t kRowAlign = 64;
// Far past any camera, and small enough that width * height * 4 cannot overflow.
constexpr int kMaxSide = 1 << 15;
}  // namespace

void FrameBuffer::Free::operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{kRowAlign}); }

void FrameBuffer::release() {
  data_.reset();
  capacity_ = 0;
  width_ = height_ = 0;
  stride_ = 0;
}

Status FrameBuffer::reshape(int width, int height, PixelFormat format) {
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
    return Status(ErrorCode::kOutOfRange, "frame of " + std::to_string(width) + "x" + std::to_string(height) +
                                              " pixels is outside 1.." + std::to_string(kMaxSide) + " per side");
  const size_t row = (static_cast<size_t>(width) * pixel_format_bytes(format) + kRowAlign - 1) / kRowAlign * kRowAlign;
  const size_t bytes = row * static_cast<size_t>(height);
  if (bytes > capacity_) {
    // Only a larger frame than ever seen allocates: the pool's buffers settle
    // at the stream's frame size after its first frame.
    data_.reset(static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t{kRowAlign})));
    capacity_ = bytes;
  }
  width_ = width;
  height_ = height;
  stride_ = static_cast<ptrdiff_t>(row);
  format_ = format;
  return Status::Ok();
}

namespace {

class ImageDirectorySource : public Source {
 public:
  ImageDirectorySource(std::string folder, std::vector<std::string> files, double fps, DecodeOptions decode)
      : name_(std::move(folder)), files_(std::move(files)), fps_(fps), decode_(std::move(decode)) {}

  Result<bool> read(FrameBuffer& frame) override {
    if (next_ >= files_.size()) return false;
    const std::string& path = files_[next_];
    // decode_image_file allocates the file's bytes and the decoded image per
    // file; images are not a steady-state video path (docs/streams.md).
    auto image = decode_image_file(path, decode_);
    if (!image.ok()) return image.status();
    Status st = frame.reshape(image->width(), image->height(), PixelFormat::kRGB8);
    if (!st.ok()) return Status(st.code(), path + ": " + st.message());
    const ImageView v = image->view();
    const size_t row = static_cast<size_t>(v.width) * 3;
    for (int y = 0; y < v.height; ++y)
      std::memcpy(frame.data() + y * frame.stride(), v.data + y * v.stride, row);
    frame.time_s = fps_ > 0 ? static_cast<double>(next_) / fps_ : 0.0;
    ++next_;
    return true;
  }
  bool live() const override { return false; }
  const std::string& name() const override { return name_; }
  double fps() const override { return fps_; }
  int64_t frame_count() const override { return static_cast<int64_t>(files_.size()); }

 private:
  std::string name_;
  std::vector<std::string> files_;
  double fps_;
  DecodeOptions decode_;
  size_t next_ = 0;
};

bool is_image_name(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

}  // namespace

Result<std::unique_ptr<Source>> open_image_directory(const std::string& folder, double fps,
                                                     const DecodeOptions& decode) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    return Status(ErrorCode::kNotFound, folder + ": not a folder");
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.is_regular_file(ec) && is_image_name(entry.path())) files.push_back(entry.path().string());
  }
  if (ec) return Status(ErrorCode::kIOError, folder + ": cannot list the folder: " + ec.message());
  if (files.empty()) return Status(ErrorCode::kInvalidArgument, folder + ": no .jpg, .jpeg, .png or .bmp images");
  std::sort(files.begin(), files.end());
  return std::unique_ptr<Source>(new ImageDirectorySource(folder, std::move(files), fps, decode));
}

}  // namespace damoyolo
