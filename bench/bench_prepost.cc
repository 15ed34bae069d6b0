// damoyolo's decode / preprocess / post-process per stage on the fixture
// images, the same cases as bench/peers/official_prepost.py (the official
// Python recipe): post-processing runs on the golden network outputs, so only
// the stages around the network are compared. Single thread. One JSON line per
// (model, image) with median and min of REPEATS.
//
// usage: bench_prepost FIXTURES_DIR REPEATS
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "damoyolo/detection.h"
#include "damoyolo/image.h"

using namespace damoyolo;

namespace {
std::vector<float> read_f32(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

std::pair<double, double> timed(int repeats, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    auto t = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[0]};
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_prepost FIXTURES_DIR REPEATS\n");
    return 2;
  }
  const std::string fixtures = argv[1];
  const int repeats = std::stoi(argv[2]);
  omp_set_num_threads(1);
  struct M { const char* name; int size; ModelFamily family; };
  for (M m : {M{"damoyolo_T_640", 640, ModelFamily::kGeneral}, M{"damoyolo_Ns_416", 416, ModelFamily::kNano}}) {
    for (std::string image : {"astronaut_png", "camera_png", "chelsea_jpg", "chelsea_png", "coffee_png"}) {
      auto us = image.rfind('_');
      std::string path = fixtures + "/images/" + image.substr(0, us) + "." + image.substr(us + 1);
      std::string golden = fixtures + "/golden/" + m.name + "/" + image;
      Result<Image> img = Status(ErrorCode::kInternal, "");
      auto [dec_med, dec_min] = timed(repeats, [&] { img = decode_image_file(path); });
      if (!img.ok()) {
        std::fprintf(stderr, "%s\n", img.status().to_string().c_str());
        return 1;
      }
      Preprocessor pre;
      std::vector<float> input(3 * m.size * m.size);
      PreprocessInfo info;
      auto [pre_med, pre_min] = timed(repeats, [&] {
        (void)pre.run(img->view(), m.size, m.size, ResizeMode::kStretch, input.data(), &info);
      });
      auto scores = read_f32(golden + "/out0.f32");
      auto boxes = read_f32(golden + "/out1.f32");
      const int64_t anchors = static_cast<int64_t>(boxes.size() / 4);
      const int classes = static_cast<int>(scores.size() / anchors);
      Postprocessor post(PostprocessOptions::for_family(m.family));
      std::vector<Detection> dets;
      auto [post_med, post_min] = timed(repeats, [&] {
        (void)post.process_dense(scores.data(), boxes.data(), anchors, classes, BoxScale{info.scale_x, info.scale_y},
                                 &dets);
      });
      nlohmann::json j = {{"model", m.name},           {"image", image},          {"decode_ms", dec_med},
                          {"preprocess_ms", pre_med},  {"postprocess_ms", post_med}, {"decode_min", dec_min},
                          {"preprocess_min", pre_min}, {"postprocess_min", post_min}, {"detections", dets.size()}};
      std::printf("%s\n", j.dump().c_str());
    }
  }
  return 0;
}
