// Preprocessing and decoding speed, single thread.
//
//   fused/*      damoyolo::Preprocessor, 1920x1080 -> 640x640 float NCHW, at the
//                SIMD level in force (the CPU's best, or DAMOYOLO_ISA's);
//                fused_<level>/bgr8 at each level (skipped where the CPU lacks it)
//   opencv/*     the sequence it replaces: cvtColor(BGR->RGB) -> resize(INTER_LINEAR)
//                -> convertTo(CV_32F) -> split into the same NCHW buffer
//   decode/*     JPEG 1920x1080 full vs DCT-scaled (jpeg_scale_denom 2, 4, 8)
//
// Every case runs as repetitions and reports mean/median/min; compare min and
// median. OpenCV is pinned to one thread (cv::setNumThreads(1)) so both sides
// use one core. See docs/preprocessing.md for the command and the numbers.
#include <benchmark/benchmark.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "damoyolo/image.h"

namespace {

constexpr int kSrcW = 1920, kSrcH = 1080, kDst = 640;

// A 1920x1080 BGR frame with photographic content (the astronaut fixture,
// upscaled), so JPEG decode timings are realistic too.
const cv::Mat& frame_bgr() {
  static const cv::Mat frame = [] {
    cv::Mat img = cv::imread(std::string(DAMOYOLO_SOURCE_DIR) + "/../shared/fixtures/images/astronaut.png",
                             cv::IMREAD_COLOR);
    if (img.empty()) {  // fixtures absent: a synthetic gradient with noise
      img.create(512, 512, CV_8UC3);
      cv::randu(img, 0, 255);
      cv::GaussianBlur(img, img, cv::Size(9, 9), 3);
    }
    cv::Mat out;
    cv::resize(img, out, cv::Size(kSrcW, kSrcH), 0, 0, cv::INTER_CUBIC);
    return out;
  }();
  return frame;
}

const std::vector<uint8_t>& frame_jpeg() {
  static const std::vector<uint8_t> bytes = [] {
    std::vector<uint8_t> b;
    cv::imencode(".jpg", frame_bgr(), b, {cv::IMWRITE_JPEG_QUALITY, 90});
    return b;
  }();
  return bytes;
}

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// level: the kernels' SIMD level; nullopt: whatever is in force.
void fused(benchmark::State& state, damoyolo::PixelFormat format, std::optional<damoyolo::cpu::IsaLevel> level) {
  using damoyolo::cpu::IsaLevel;
  if (level && !damoyolo::cpu::isa_level_supported(*level)) {
    state.SkipWithError("this CPU lacks that SIMD level");
    for (auto _ : state) {
    }
    return;
  }
  const IsaLevel use = level.value_or(damoyolo::cpu::isa_level());
  damoyolo::cpu::ScopedIsaLevel scoped(use);  // the Preprocessor picks its kernels when constructed
  const cv::Mat& bgr = frame_bgr();
  cv::Mat src;
  switch (format) {
    case damoyolo::PixelFormat::kRGB8: cv::cvtColor(bgr, src, cv::COLOR_BGR2RGB); break;
    case damoyolo::PixelFormat::kBGRA8: cv::cvtColor(bgr, src, cv::COLOR_BGR2BGRA); break;
    case damoyolo::PixelFormat::kGray8: cv::cvtColor(bgr, src, cv::COLOR_BGR2GRAY); break;
    default: src = bgr; break;
  }
  const damoyolo::ImageView view{src.data, src.cols, src.rows, static_cast<ptrdiff_t>(src.step), format};
  std::vector<float> out(size_t{3} * kDst * kDst);
  damoyolo::Preprocessor pre(damoyolo::PreprocessOptions{use != IsaLevel::kScalar});
  state.SetLabel(damoyolo::cpu::isa_level_name(use));
  for (auto _ : state) {
    auto st = pre.run(view, kDst, kDst, damoyolo::ResizeMode::kStretch, out.data());
    if (!st.ok()) state.SkipWithError(st.to_string().c_str());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

void opencv_sequence(benchmark::State& state) {
  const cv::Mat& bgr = frame_bgr();
  std::vector<float> out(size_t{3} * kDst * kDst);
  // Planes wrap the output buffer, so split writes straight into NCHW: the
  // fairest form of the sequence (no final copy). Intermediates are reused.
  std::vector<cv::Mat> planes;
  for (int c = 0; c < 3; ++c) planes.emplace_back(kDst, kDst, CV_32F, out.data() + static_cast<size_t>(c) * kDst * kDst);
  cv::Mat rgb, resized, as_float;
  for (auto _ : state) {
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    cv::resize(rgb, resized, cv::Size(kDst, kDst), 0, 0, cv::INTER_LINEAR);
    resized.convertTo(as_float, CV_32F);
    cv::split(as_float, planes);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

void decode_jpeg(benchmark::State& state) {
  const auto& bytes = frame_jpeg();
  damoyolo::DecodeOptions options;
  options.jpeg_scale_denom = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto image = damoyolo::decode_image(bytes.data(), bytes.size(), options, "bench.jpg");
    if (!image.ok()) state.SkipWithError(image.status().to_string().c_str());
    benchmark::DoNotOptimize(image->data());
  }
  state.counters["out_w"] = kSrcW / options.jpeg_scale_denom;
}

void decode_and_preprocess(benchmark::State& state) {
  const auto& bytes = frame_jpeg();
  damoyolo::DecodeOptions options;
  options.jpeg_scale_denom = static_cast<int>(state.range(0));
  std::vector<float> out(size_t{3} * kDst * kDst);
  damoyolo::Preprocessor pre;
  for (auto _ : state) {
    auto image = damoyolo::decode_image(bytes.data(), bytes.size(), options, "bench.jpg");
    auto st = pre.run(image->view(), kDst, kDst, damoyolo::ResizeMode::kStretch, out.data());
    if (!st.ok()) state.SkipWithError(st.to_string().c_str());
    benchmark::DoNotOptimize(out.data());
  }
}

void configure(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMicrosecond)
      ->Repetitions(10)
      ->ReportAggregatesOnly(true)
      ->ComputeStatistics("min", min_of)
      ->MinTime(0.2);
}

}  // namespace

int main(int argc, char** argv) {
  cv::setNumThreads(1);
  frame_bgr();
  frame_jpeg();
  using damoyolo::PixelFormat;
  using damoyolo::cpu::IsaLevel;
  const std::optional<IsaLevel> in_force;
  configure(benchmark::RegisterBenchmark("fused/bgr8->f32nchw", fused, PixelFormat::kBGR8, in_force));
  configure(benchmark::RegisterBenchmark("fused/rgb8->f32nchw", fused, PixelFormat::kRGB8, in_force));
  configure(benchmark::RegisterBenchmark("fused/bgra8->f32nchw", fused, PixelFormat::kBGRA8, in_force));
  configure(benchmark::RegisterBenchmark("fused/gray8->f32nchw", fused, PixelFormat::kGray8, in_force));
  for (IsaLevel level : damoyolo::cpu::kIsaLevels)
    configure(benchmark::RegisterBenchmark(
        (std::string("fused_") + damoyolo::cpu::isa_level_name(level) + "/bgr8->f32nchw").c_str(), fused,
        PixelFormat::kBGR8, std::optional<IsaLevel>(level)));
  configure(benchmark::RegisterBenchmark("opencv/cvtColor+resize+convertTo+split", opencv_sequence));
  configure(benchmark::RegisterBenchmark("decode/jpeg_1920x1080", decode_jpeg)->Arg(1)->Arg(2)->Arg(4)->Arg(8));
  configure(benchmark::RegisterBenchmark("decode+fused/jpeg_1920x1080", decode_and_preprocess)->Arg(1)->Arg(2));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("OpenCV %s, threads=%d; SIMD level in force %s (CPU: %s)\n", CV_VERSION, cv::getNumThreads(),
              damoyolo::cpu::isa_level_name(damoyolo::cpu::isa_level()),
              damoyolo::cpu::isa_level_name(damoyolo::cpu::cpu_isa_level()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
