// bench_streams MODEL CLIP [THREADS] [STREAMS] [BATCH]
//
// The stream table of docs/streams.md, in one process so that every row runs
// with FFmpeg loaded (it slows oneDNN; docs/performance.md) and on the same
// cores:
//   network      Session::run_into alone on a preprocessed batch of 1 (and of
//                BATCH): the ceiling, 1 / latency
//   serial       the plain loop: decode → Detector::detect_into, one frame at a time;
//                then the same loop on a thread of its own (a second OpenMP
//                team: see Pipeline::run)
//   pipeline x1  one stream through damoyolo::Pipeline, batch 1, then batch 2
//                (two consecutive frames of the stream per inference)
//   pipeline xS  STREAMS copies of the clip, batch 1, then batch BATCH
//   (the pipeline rows with the stages inline on one thread, then on
//   separate threads: PipelineOptions::stages; all through Pipeline::run,
//   inference on the main thread)
// Rows with a batch of at least THREADS images run them one per thread
// (images_on_threads, damoyolo/optimizations.h); each such row is repeated
// with that switch off ("[images_on_threads off]").
// Each row prints frames, seconds and FPS (aggregate over streams).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "damoyolo/pipeline.h"
#include "damoyolo/video_source.h"

using namespace damoyolo;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void row(const char* name, int64_t frames, double s, double extra_ms = -1) {
  std::printf("%-28s %6lld frames %8.3f s %8.2f FPS", name, static_cast<long long>(frames), s, frames / s);
  if (extra_ms >= 0) std::printf("   (%.2f ms per image)", extra_ms);
  std::printf("\n");
  std::fflush(stdout);
}

int network(const Session& session, int batch, int runs, const char* suffix = "") {
  std::vector<Tensor> in{Tensor(DType::kFloat32, {batch, 3, session.inputs()[0].dims[2], session.inputs()[0].dims[3]})};
  std::fill(in[0].data<float>(), in[0].data<float>() + in[0].numel(), 114.f);
  std::vector<Tensor> out = session.make_outputs(batch);
  for (int i = 0; i < 3; ++i)
    if (!session.run_into(in, out).ok()) return 1;
  const auto t = Clock::now();
  for (int i = 0; i < runs; ++i)
    if (!session.run_into(in, out).ok()) return 1;
  const double s = seconds_since(t);
  const std::string name = "network batch " + std::to_string(batch) + suffix;
  row(name.c_str(), int64_t{runs} * batch, s, 1000.0 * s / (runs * batch));
  return 0;
}

int serial(const Session& session, const std::string& clip, const char* name = "serial (decode+detect_into)") {
  auto det = Detector::create(session);
  auto src = open_video_source(clip);
  if (!det.ok() || !src.ok()) return 1;
  FrameBuffer fb;
  ImageDetections out;
  int64_t frames = 0;
  const auto t = Clock::now();
  for (;;) {
    auto more = (*src)->read(fb);
    if (!more.ok() || !*more) break;
    if (!det->detect_into(fb.view(), out).ok()) return 1;
    ++frames;
  }
  row(name, frames, seconds_since(t));
  return 0;
}

int serial_thread(const Session& session, const std::string& clip) {
  int rc = 0;
  std::thread th([&] { rc = serial(session, clip, "serial, on a second thread"); });
  th.join();
  return rc;
}

int pipelined(const Session& session, const std::string& clip, int streams, int batch, StageThreads stages,
              const char* suffix = "") {
  PipelineOptions po;
  po.max_batch = batch;
  po.stages = stages;
  auto pipe = Pipeline::create(session, po);
  if (!pipe.ok()) {
    std::fprintf(stderr, "%s\n", pipe.status().to_string().c_str());
    return 1;
  }
  for (int i = 0; i < streams; ++i) {
    auto src = open_video_source(clip);
    if (!src.ok() || !pipe->add_stream(std::move(*src)).ok()) return 1;
  }
  const auto t = Clock::now();
  if (!pipe->run([](FrameResult&) {}).ok()) return 1;
  const double s = seconds_since(t);
  const PipelineStats ps = pipe->stats();
  const std::string name = "pipeline x" + std::to_string(streams) + " batch " + std::to_string(pipe->max_batch()) +
                           (pipe->stage_threads() == StageThreads::kInline ? " inline" : " separate") + suffix;
  row(name.c_str(), ps.inferred_frames, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL CLIP [THREADS=2] [STREAMS=4] [BATCH=4]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], clip = argv[2];
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int streams = argc > 4 ? std::atoi(argv[4]) : 4;
  const int batch = argc > 5 ? std::atoi(argv[5]) : 4;
  SessionOptions so;
  so.threads = threads;
  so.batch = batch;
  auto session = Session::load(model, so);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().to_string().c_str());
    return 1;
  }
  SessionOptions so1 = so;
  so1.batch = 1;
  auto session1 = Session::load(model, so1);
  if (!session1.ok()) return 1;
  SessionOptions so_off = so;
  so_off.opt.images_on_threads = false;
  auto session_off = Session::load(model, so_off);
  SessionOptions so2 = so;
  so2.batch = 2;
  auto session2 = Session::load(model, so2);
  if (!session_off.ok() || !session2.ok()) return 1;
  const char* off = " [images_on_threads off]";
  int rc = 0;
  rc |= network(*session1, 1, 40);
  rc |= network(*session, batch, 10);
  rc |= network(*session_off, batch, 10, off);
  rc |= serial(*session1, clip);
  rc |= serial_thread(*session1, clip);
  for (StageThreads stages : {StageThreads::kInline, StageThreads::kSeparate}) {
    rc |= pipelined(*session1, clip, 1, 1, stages);
    if (stages == StageThreads::kInline) rc |= pipelined(*session2, clip, 1, 2, stages);
    rc |= pipelined(*session1, clip, streams, 1, stages);
    rc |= pipelined(*session, clip, streams, batch, stages);
    rc |= pipelined(*session_off, clip, streams, batch, stages, off);
  }
  std::printf("images_on_threads runs: batch %d session %lld, batch 2 session %lld\n", batch,
              static_cast<long long>(session->images_on_threads().runs),
              static_cast<long long>(session2->images_on_threads().runs));
  rc |= network(*session1, 1, 40);  // again: the machine may have changed under the run
  return rc;
}
