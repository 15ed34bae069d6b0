// Fuzz target: image decoding (JPEG, PNG, BMP and whatever the magic bytes
// claim) and the preprocessing of what decodes. Only crashes and sanitizer
// reports are findings: a decode error is a correct answer.
//
//   scripts/fuzz.sh 60 decode_image
//   by hand: build-asan/bin/fuzz_decode_image -dict=fuzz/dict/decode_image.dict NEW_CORPUS_DIR fuzz/corpus/decode_image
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "damoyolo/image.h"

namespace {

// Small limits: the fuzzer should spend its time in the parsers, not in
// legitimately huge allocations (decode refuses anything bigger up front,
// from the header alone).
constexpr int64_t kMaxPixels = 4'000'000;
constexpr int64_t kMaxDecodeBytes = int64_t{256} << 20;

// DAMOYOLO_FUZZ_VERBOSE=1: say what happened to each input.
const bool kVerbose = std::getenv("DAMOYOLO_FUZZ_VERBOSE") != nullptr;

void check_image(const damoyolo::Image& img) {
  if (img.empty()) return;
  if (int64_t{img.width()} * img.height() > kMaxPixels) std::abort();  // the limit was not applied
  // Read the first and the last pixel of every row: ASan checks the buffer
  // is as large as the image says.
  unsigned sum = 0;
  for (int y = 0; y < img.height(); ++y) sum += img.row(y)[0] + img.row(y)[img.width() * 3 - 1];
  volatile unsigned sink = sum;
  (void)sink;
}

void preprocess(const damoyolo::Image& img) {
  if (img.empty()) return;
  // Odd, small destination sizes: resize tables for down- and upscaling,
  // both resize modes, the kernels of every SIMD level this CPU supports
  // (a Preprocessor picks its level when constructed).
  std::vector<float> out(3 * 23 * 17);
  for (damoyolo::cpu::IsaLevel level : damoyolo::cpu::kIsaLevels) {
    if (!damoyolo::cpu::isa_level_supported(level)) continue;
    damoyolo::cpu::ScopedIsaLevel scoped(level);
    damoyolo::Preprocessor p;
    (void)p.run(img.view(), 17, 23, damoyolo::ResizeMode::kStretch, out.data());
    (void)p.run(img.view(), 17, 23, damoyolo::ResizeMode::kLetterbox, out.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)damoyolo::sniff_image_format(data, size);

  damoyolo::DecodeOptions o;  // defaults: EXIF orientation applied, 16-bit scaled
  o.max_pixels = kMaxPixels;
  o.max_decode_bytes = kMaxDecodeBytes;
  damoyolo::DecodeInfo info;
  auto img = damoyolo::decode_image(data, size, o, "fuzz", &info);
  if (kVerbose)
    std::fprintf(stderr, "%s: %s\n", damoyolo::image_format_name(info.format),
                 img.ok() ? (std::to_string(img->width()) + "x" + std::to_string(img->height())).c_str()
                          : img.status().to_string().c_str());
  if (!img.ok()) return 0;
  check_image(*img);
  preprocess(*img);

  // What decodes once is decoded again the other ways: PIL's exact pixels
  // (no orientation, 16-bit high byte) and JPEG's DCT downscaling.
  damoyolo::DecodeOptions pil = damoyolo::DecodeOptions::pil_compatible();
  pil.max_pixels = kMaxPixels;
  pil.max_decode_bytes = kMaxDecodeBytes;
  pil.jpeg_scale_denom = 2;
  auto img2 = damoyolo::decode_image(data, size, pil, "fuzz", &info);
  if (img2.ok()) check_image(*img2);
  return 0;
}
