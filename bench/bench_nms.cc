// Post-processing ablation: fast vs reference NMS, dense vs thresholded decode.
//
//   bench_nms [--benchmark_filter=...]   (defaults: 7 repetitions, min/median reported)
//
// Every case is one whole image's work as a caller sees it:
//  * Post/<model>/<image>/{fast,reference}: Postprocessor::process_dense on the
//    golden default-export outputs (threshold scan + NMS + scaling);
//  * Nms/synthetic100k_<classes>cls/{fast,reference}: 100k candidates fed to
//    FastNms and NMS run (bucketing included, as in the real path);
//  * Decode/<image>/{dense,thresholded}: the --benchmark export's six maps to
//    detections, either decode_head_dense + process_dense, or process_raw.
// All at the SIMD level in force (DAMOYOLO_ISA=avx2|scalar lowers it).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "damoyolo/detection.h"
#include "kernels/head/head_decode.h"
#include "detection/nms.h"

namespace {

namespace fs = std::filesystem;
using damoyolo::BoxScale;
using damoyolo::Detection;
using damoyolo::Postprocessor;
using damoyolo::PostprocessOptions;

fs::path fixtures() { return fs::path(DAMOYOLO_SOURCE_DIR).parent_path() / "shared" / "fixtures"; }

std::vector<float> read_f32(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

const char* kImages[] = {"astronaut_png", "camera_png", "chelsea_jpg", "chelsea_png", "coffee_png"};

struct DenseFixture {
  std::string name;
  PostprocessOptions opt;
  std::vector<float> scores, boxes;
  int64_t anchors;
};

void bench_dense(benchmark::State& st, const DenseFixture* fx, bool fast) {
  PostprocessOptions o = fx->opt;
  o.fast_nms = fast;
  Postprocessor pp(o);
  std::vector<Detection> out;
  for (auto _ : st) {
    if (!pp.process_dense(fx->scores.data(), fx->boxes.data(), fx->anchors, 80, {}, &out).ok())
      st.SkipWithError("process_dense failed");
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["candidates"] = static_cast<double>(pp.last_candidate_count());
  st.counters["detections"] = static_cast<double>(out.size());
}

struct SyntheticSet {
  std::vector<float> boxes;
  std::vector<damoyolo::detection::Candidate> cands;
  int classes;
};

// 100k candidates over a 1024×1024 frame: boxes jittered around object-like
// clusters (heavy overlap inside a cluster), scores continuous.
SyntheticSet make_synthetic(int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  SyntheticSet s;
  s.classes = classes;
  const int clusters = 1500, anchors = 21504;  // 1024×1024 input's anchor count
  std::vector<float> cx(clusters), cy(clusters), cw(clusters), ch(clusters);
  for (int k = 0; k < clusters; ++k) {
    cx[k] = u(rng) * 1024;
    cy[k] = u(rng) * 1024;
    cw[k] = 8 + u(rng) * 250;
    ch[k] = 8 + u(rng) * 250;
  }
  s.boxes.resize(anchors * 4);
  for (int a = 0; a < anchors; ++a) {
    const int k = static_cast<int>(rng() % clusters);
    const float x1 = cx[k] + (u(rng) - 0.5f) * 0.2f * cw[k];
    const float y1 = cy[k] + (u(rng) - 0.5f) * 0.2f * ch[k];
    s.boxes[a * 4 + 0] = x1;
    s.boxes[a * 4 + 1] = y1;
    s.boxes[a * 4 + 2] = x1 + cw[k] * (0.9f + 0.2f * u(rng));
    s.boxes[a * 4 + 3] = y1 + ch[k] * (0.9f + 0.2f * u(rng));
  }
  for (int i = 0; i < 100000; ++i)
    s.cands.push_back({0.05f + 0.9f * u(rng), static_cast<int>(rng() % classes),
                       static_cast<int>(rng() % anchors)});
  return s;
}

void bench_synthetic(benchmark::State& st, const SyntheticSet* s, bool fast) {
  damoyolo::detection::FastNms nms;
  damoyolo::detection::NmsParams p;  // 0.7 / 500
  std::vector<damoyolo::detection::Candidate> out;
  for (auto _ : st) {
    nms.begin(s->classes);
    for (const auto& c : s->cands) nms.add(c.class_id, c.score, c.anchor);
    if (fast)
      nms.run(s->boxes.data(), p, &out);
    else
      nms.run_reference(s->boxes.data(), p, &out);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["candidates"] = static_cast<double>(s->cands.size());
  st.counters["detections"] = static_cast<double>(out.size());
}

struct RawFixture {
  std::string name;
  std::vector<float> cls[3], reg[3];
};

void bench_decode(benchmark::State& st, const RawFixture* fx, bool thresholded) {
  const int H[3] = {52, 26, 13};
  damoyolo::RawHeadLevel levels[3];
  damoyolo::kernels::head::HeadLevelMaps maps[3];
  for (int l = 0; l < 3; ++l) {
    const int64_t hw = int64_t{H[l]} * H[l];
    levels[l] = {8 << l, H[l], H[l], fx->cls[l].data(), fx->reg[l].data()};
    maps[l] = {8 << l, H[l], H[l], fx->cls[l].data(), 1, hw, fx->reg[l].data(), 1, hw};
  }
  Postprocessor pp(PostprocessOptions::for_family(damoyolo::ModelFamily::kNano));
  damoyolo::kernels::head::PriorCache cache;
  std::vector<float> scores(3549 * 80), boxes(3549 * 4);
  std::vector<Detection> out;
  for (auto _ : st) {
    bool ok;
    if (thresholded) {
      ok = pp.process_raw(levels, 80, 7, {}, &out).ok();
    } else {
      damoyolo::kernels::head::decode_head_dense({80, 7}, maps, 3, scores.data(), boxes.data(), cache);
      ok = pp.process_dense(scores.data(), boxes.data(), 3549, 80, {}, &out).ok();
    }
    if (!ok) st.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["candidates"] = static_cast<double>(pp.last_candidate_count());
}

void bench_decode_only(benchmark::State& st, const RawFixture* fx) {
  const int H[3] = {52, 26, 13};
  damoyolo::kernels::head::HeadLevelMaps maps[3];
  for (int l = 0; l < 3; ++l) {
    const int64_t hw = int64_t{H[l]} * H[l];
    maps[l] = {8 << l, H[l], H[l], fx->cls[l].data(), 1, hw, fx->reg[l].data(), 1, hw};
  }
  damoyolo::kernels::head::PriorCache cache;
  std::vector<float> scores(3549 * 80), boxes(3549 * 4);
  for (auto _ : st) {
    damoyolo::kernels::head::decode_head_dense({80, 7}, maps, 3, scores.data(), boxes.data(), cache);
    benchmark::DoNotOptimize(boxes.data());
  }
}

double stat_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

}  // namespace

int main(int argc, char** argv) {
  // Storage outlives the registered benchmarks (they hold raw pointers).
  std::vector<DenseFixture> dense;
  std::vector<RawFixture> raw;
  std::vector<SyntheticSet> synthetic;
  dense.reserve(10);
  raw.reserve(5);
  synthetic.reserve(2);
  try {
    for (const char* model : {"damoyolo_T_640", "damoyolo_Ns_416"}) {
      const bool nano = std::string(model).find("_N") != std::string::npos;
      for (const char* img : kImages) {
        const fs::path dir = fixtures() / "golden" / model / img;
        DenseFixture f;
        f.name = std::string(model) + "/" + img;
        f.opt = PostprocessOptions::for_family(nano ? damoyolo::ModelFamily::kNano
                                                    : damoyolo::ModelFamily::kGeneral);
        f.scores = read_f32(dir / "out0.f32");
        f.boxes = read_f32(dir / "out1.f32");
        f.anchors = static_cast<int64_t>(f.boxes.size() / 4);
        dense.push_back(std::move(f));
      }
    }
    for (const char* img : kImages) {
      const fs::path dir = fixtures() / "golden" / "damoyolo_Ns_416_benchmark" / img;
      RawFixture f;
      f.name = img;
      for (int l = 0; l < 3; ++l) {
        f.cls[l] = read_f32(dir / ("out" + std::to_string(l) + ".f32"));
        f.reg[l] = read_f32(dir / ("out" + std::to_string(3 + l) + ".f32"));
      }
      raw.push_back(std::move(f));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_nms: %s\n", e.what());
    return 1;
  }
  synthetic.push_back(make_synthetic(80, 1));
  synthetic.push_back(make_synthetic(1, 2));

  auto common = [](benchmark::internal::Benchmark* b) {
    b->Unit(benchmark::kMicrosecond)->Repetitions(7)->ReportAggregatesOnly(true)
        ->ComputeStatistics("min", stat_min)->UseRealTime();
  };
  for (const auto& f : dense)
    for (bool fast : {true, false})
      common(benchmark::RegisterBenchmark(("Post/" + f.name + (fast ? "/fast" : "/reference")).c_str(),
                                          bench_dense, &f, fast));
  for (const auto& s : synthetic)
    for (bool fast : {true, false}) {
      auto* b = benchmark::RegisterBenchmark(
          ("Nms/synthetic100k_" + std::to_string(s.classes) + "cls" + (fast ? "/fast" : "/reference")).c_str(),
          bench_synthetic, &s, fast);
      common(b);
      if (!fast) b->MinTime(0.05);  // the O(n²) reference runs ~1 s per iteration on one class
    }
  for (const auto& f : raw) {
    common(benchmark::RegisterBenchmark(("Decode/" + f.name + "/dense_decode_only").c_str(),
                                        bench_decode_only, &f));
    for (bool thr : {false, true})
      common(benchmark::RegisterBenchmark(("Decode/" + f.name + (thr ? "/thresholded" : "/dense")).c_str(),
                                          bench_decode, &f, thr));
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Every case runs at the SIMD level in force: the CPU's best, or lower with
  // DAMOYOLO_ISA=avx2|scalar (common/cpu_features.h).
  std::printf("SIMD level %s (CPU: %s)\n", damoyolo::cpu::isa_level_name(damoyolo::cpu::isa_level()),
              damoyolo::cpu::isa_level_name(damoyolo::cpu::cpu_isa_level()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
