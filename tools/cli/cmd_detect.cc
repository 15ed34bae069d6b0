// damoyolo detect --model M [options] INPUT...
//
// INPUTs are image files, directories (searched recursively for
// jpg/jpeg/png/bmp) or glob patterns. Each image is decoded once (upright by
// its EXIF orientation; PIL's pixels with --pil-decode / --official),
// detected in chunks of --batch, drawn
// and written to --output-dir, and reported as a summary line, a --top table,
// --json/--jsonl records and --timings. One bad input never stops the run: it
// is listed at the end and makes the exit status non-zero.
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <sstream>

#include "commands.h"
#include "damoyolo/detector.h"
#include "detect_options.h"
#include "draw.h"
#include "outputs.h"
#include "progress.h"

namespace damoyolo::cli {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct DetectArgs {
  DetectionArgs det;
  std::vector<std::string> inputs;
  std::string output_dir = "out";
  std::string json;
  std::string jsonl;
  bool no_draw = false;
  bool timings = false;
  bool quiet = false;
  bool overwrite = false;
  int top = 0;
};

struct Failure {
  std::string path;
  std::string reason;
};

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

class InputCollector {
 public:
  // `exclude`: the output directory, whose own files (what detect writes
  // there) are never read as input, so a second run does not detect on the
  // first one's drawings; its subfolders are ordinary folders. Empty: none.
  explicit InputCollector(const fs::path& exclude)
      : exclude_(exclude), exclude_canon_(exclude.empty() ? fs::path() : canonical_or_self(exclude)) {}

  std::vector<std::string> files;
  std::vector<Failure> failures;
  std::vector<std::string> warnings;

  void add(const std::string& arg) {
    std::error_code ec;
    const fs::file_status st = fs::status(arg, ec);
    if (fs::is_directory(st)) {
      add_directory(arg);
    } else if (fs::exists(st)) {
      // An explicitly named file is tried whatever its extension: the decoder
      // goes by magic bytes and names the format it cannot read.
      add_file(arg);
    } else if (arg.find_first_of("*?[") != std::string::npos) {
      add_glob(arg);
    } else {
      failures.push_back({arg, "no such file or directory"});
    }
  }

 private:
  fs::path exclude_, exclude_canon_;
  std::set<std::string> seen_;

  // A file directly in the output directory.
  bool excluded(const fs::path& p) const {
    return !exclude_canon_.empty() && canonical_or_self(p).parent_path() == exclude_canon_;
  }

  void add_file(const std::string& path) {
    if (excluded(path)) {
      failures.push_back({path, "is in the output directory '" + exclude_.string() +
                                    "' (an annotated result?); choose another --output-dir"});
      return;
    }
    // The same image named twice (a file and its directory, overlapping
    // globs) is detected once.
    if (seen_.insert(fs::path(path).lexically_normal().string()).second) files.push_back(path);
  }

  void add_directory(const std::string& dir) {
    std::vector<std::string> found;
    std::vector<std::string> skipped;
    size_t skipped_outputs = 0;
    std::error_code ec;
    auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code fec;
      if (!it->is_regular_file(fec)) continue;
      if (!has_image_extension(it->path())) skipped.push_back(it->path().string());
      else if (excluded(it->path())) ++skipped_outputs;
      else found.push_back(it->path().string());
    }
    if (skipped_outputs > 0)
      warnings.push_back(dir + ": skipped " + std::to_string(skipped_outputs) + " image(s) in the output directory '" +
                         exclude_.string() + "' (earlier results)");
    if (ec) {
      failures.push_back({dir, "cannot read directory: " + ec.message()});
      return;
    }
    if (!skipped.empty()) {
      std::sort(skipped.begin(), skipped.end());
      warnings.push_back(dir + ": skipped " + std::to_string(skipped.size()) +
                         " file(s) without an image extension (jpg, jpeg, png, bmp), e.g. " + skipped[0] +
                         "; name a file explicitly to try it anyway");
    }
    if (found.empty()) {
      failures.push_back({dir, "no images (jpg, jpeg, png, bmp) in this directory"});
      return;
    }
    // Directory order is arbitrary; sorted output is reproducible.
    std::sort(found.begin(), found.end());
    for (const auto& f : found) add_file(f);
  }

  // For patterns the shell did not expand (quoted, or a shell without globbing).
  void add_glob(const std::string& pattern) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    // glob_t owns C allocations; free them on every path out.
    struct Freer {
      glob_t* g;
      ~Freer() { globfree(g); }
    } freer{&g};
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
      failures.push_back({pattern, "no file matches this pattern"});
      return;
    }
    if (rc != 0) {
      failures.push_back({pattern, "cannot expand this pattern"});
      return;
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::error_code ec;
      if (fs::is_directory(g.gl_pathv[i], ec)) add_directory(g.gl_pathv[i]);
      else add_file(g.gl_pathv[i]);
    }
  }
};

// ---------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------

// Creates the directory and proves it writable up front, so a typo or a
// read-only location fails in one line before any model is run.
Status prepare_output_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(ErrorCode::kIOError, "cannot create output directory '" + dir + "': " + ec.message());
  if (!fs::is_directory(dir, ec))
    return Status(ErrorCode::kIOError, "output directory '" + dir + "' exists and is not a directory");
  const fs::path probe = fs::path(dir) / (".damoyolo-write-test-" + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    if (!f) return Status(ErrorCode::kIOError, "cannot write to output directory '" + dir + "'");
  }
  fs::remove(probe, ec);
  return Status::Ok();
}

// out/<stem>.png for PNG inputs, out/<stem>.jpg for everything else. Two
// inputs with the same name (from different folders) get <stem>_2, <stem>_3...
// rather than overwriting each other.
class OutputNamer {
 public:
  explicit OutputNamer(fs::path dir) : dir_(std::move(dir)) {}

  fs::path name_for(const std::string& input) {
    const fs::path in(input);
    std::string ext = in.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string out_ext = ext == ".png" ? ".png" : ".jpg";
    const std::string stem = in.stem().string();
    fs::path candidate = dir_ / (stem + out_ext);
    for (int n = 2; !used_.insert(candidate.lexically_normal().string()).second; ++n)
      candidate = dir_ / (stem + "_" + std::to_string(n) + out_ext);
    return candidate;
  }

 private:
  fs::path dir_;
  std::set<std::string> used_;
};

// Reasons from the library usually start with the path; the failure list
// prints the path already.
std::string reason_of(const Status& st, const std::string& path) {
  std::string m = st.message();
  if (m.rfind(path + ": ", 0) == 0) m = m.substr(path.size() + 2);
  return m;
}

struct Totals {
  double decode = 0, preprocess = 0, inference = 0, postprocess = 0, draw = 0, write = 0;
  int images = 0;
  int64_t detections = 0;
};

std::string timings_line(const StageTimings& t, double draw_ms, double write_ms) {
  std::ostringstream s;
  s << "decode " << fmt(t.decode_ms) << "  preprocess " << fmt(t.preprocess_ms) << "  inference "
    << fmt(t.inference_ms) << "  postprocess " << fmt(t.postprocess_ms) << "  draw " << fmt(draw_ms) << "  write "
    << fmt(write_ms) << "  total " << fmt(t.total() + draw_ms + write_ms) << " ms";
  return s.str();
}

void print_top_table(std::ostream& os, const Detector& det, const std::vector<Detection>& dets, int k) {
  const int n = std::min<int>(k, static_cast<int>(dets.size()));
  if (n == 0) {
    os << "  (no detections)\n";
    return;
  }
  os << "     #  class            score       x1       y1       x2       y2\n";
  for (int i = 0; i < n; ++i) {
    const Detection& d = dets[static_cast<size_t>(i)];
    os << "  " << std::setw(4) << i + 1 << "  " << std::left << std::setw(15) << det.class_name(d.class_id)
       << std::right << std::setw(7) << fmt(d.score, 4) << std::setw(9) << fmt(d.x1, 1) << std::setw(9)
       << fmt(d.y1, 1) << std::setw(9) << fmt(d.x2, 1) << std::setw(9) << fmt(d.y2, 1) << "\n";
  }
}

int fail(const std::string& message) {
  std::cerr << "damoyolo detect: " << message << "\n";
  return 1;
}

int run_detect(const DetectArgs& a) {
  install_interrupt_handlers();
  const bool draw = !a.no_draw;
  // The output folder's own files are never inputs (a second `detect .` must
  // not detect on the first one's drawings), with --no-draw too.
  std::error_code ec;
  const bool out_dir_exists = fs::is_directory(a.output_dir, ec);
  InputCollector inputs(draw || out_dir_exists ? fs::path(a.output_dir) : fs::path());
  for (const auto& arg : a.inputs) inputs.add(arg);
  for (const auto& w : inputs.warnings) std::cerr << "damoyolo detect: warning: " << w << "\n";
  const std::vector<std::string>& files = inputs.files;

  // Every output is checked before anything is created or loaded, so a wrong
  // path costs nothing and touches nothing (see outputs.h for the rules).
  OutputPolicy policy(a.overwrite);
  for (const auto& f : files) policy.add_input(f);
  for (const auto& arg : a.inputs) policy.add_input(arg);  // a non-image input named as output too
  add_model_inputs(policy, a.det);
  std::vector<fs::path> out_paths(files.size());
  if (draw) {
    OutputNamer namer(a.output_dir);
    for (size_t k = 0; k < files.size(); ++k) {
      out_paths[k] = namer.name_for(files[k]);
      Status st = policy.claim(out_paths[k], "the annotated image", OutputPolicy::Kind::kMedia);
      if (!st.ok()) return fail(st.message() + (a.overwrite ? "" : " (or choose another --output-dir)"));
    }
  }
  for (const auto& [path, what] : {std::pair{&a.json, "--json"}, std::pair{&a.jsonl, "--jsonl"}}) {
    if (path->empty()) continue;
    Status st = policy.claim(*path, what);
    if (!st.ok()) return fail(st.message());
  }
  if (draw) {
    Status st = prepare_output_dir(a.output_dir);
    if (!st.ok()) return fail(st.message());
  }
  AtomicOutput json_out, jsonl_out;
  for (auto [path, out] : {std::pair{&a.json, &json_out}, std::pair{&a.jsonl, &jsonl_out}}) {
    if (path->empty()) continue;
    *out = AtomicOutput(*path, a.overwrite);
    Status st = out->open_stream();
    if (!st.ok()) return fail(st.message());
  }

  auto t_load = Clock::now();
  auto detector = make_detector(a.det);
  if (!detector.ok()) return fail(detector.status().to_string());
  const double load_ms = ms_since(t_load);

  std::vector<Failure> failures;
  nlohmann::json all = nlohmann::json::array();
  Totals tot;
  Progress progress(static_cast<int64_t>(files.size()), "img",
                    !a.quiet && files.size() > 1 && stderr_is_terminal());

  auto emit_record = [&](const nlohmann::json& rec) {
    if (json_out.active()) all.push_back(rec);
    if (jsonl_out.active()) {
      // Flushed per line so a consumer can follow the temporary file.
      jsonl_out.stream() << dump_json(rec) << "\n";
      jsonl_out.stream().flush();
    }
  };
  auto record_failure = [&](const std::string& path, const std::string& reason) {
    failures.push_back({path, reason});
    emit_record({{"file", path}, {"error", reason}});
  };

  // Inputs that named nothing usable are results too: a JSON consumer sees
  // every argument accounted for, not only the images that worked.
  for (const Failure& f : inputs.failures) record_failure(f.path, f.reason);

  const size_t chunk = static_cast<size_t>(std::max(1, a.det.engine.batch));
  const float draw_threshold = a.det.draw_threshold();
  cv::Mat bgr;  // reused: same-sized images then allocate nothing here
  const auto t_run = Clock::now();
  size_t done = 0;
  for (size_t first = 0; first < files.size() && !interrupted(); first += chunk) {
    const size_t count = std::min(chunk, files.size() - first);
    // Decoded here rather than inside Detector::detect_files because drawing
    // needs the pixels: detect_files would decode them and throw them away.
    // Same decoder, same options, so the detections are identical.
    std::vector<Image> images;
    std::vector<DecodeInfo> decode_infos;
    std::vector<ImageView> views;
    std::vector<size_t> index;
    std::vector<double> decode_ms;
    const DecodeOptions& decode_options = detector->decode_options();
    for (size_t k = first; k < first + count; ++k) {
      auto t = Clock::now();
      DecodeInfo info;
      auto img = decode_image_file(files[k], decode_options, &info);
      if (!img.ok()) {
        record_failure(files[k], reason_of(img.status(), files[k]));
        continue;
      }
      decode_ms.push_back(ms_since(t));
      images.push_back(std::move(*img));
      decode_infos.push_back(info);
      index.push_back(k);
    }
    for (const Image& im : images) views.push_back(im.view());
    auto results = detector->detect(std::span<const ImageView>(views));

    for (size_t j = 0; j < results.size(); ++j) {
      const std::string& path = files[index[j]];
      if (!results[j].ok()) {
        record_failure(path, reason_of(results[j].status(), path));
        continue;
      }
      ImageDetections& r = *results[j];
      r.source = path;
      r.timings.decode_ms = decode_ms[j];

      double draw_ms = 0, write_ms = 0;
      int drawn = 0;
      const fs::path& out_path = out_paths[index[j]];
      if (draw) {
        auto t = Clock::now();
        const Image& im = images[j];
        const cv::Mat rgb(im.height(), im.width(), CV_8UC3, const_cast<uint8_t*>(im.data()),
                          static_cast<size_t>(im.stride()));
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        drawn = draw_detections(bgr, r.detections, *detector, draw_threshold);
        draw_ms = ms_since(t);
        t = Clock::now();
        AtomicOutput out(out_path, a.overwrite);
        bool written = false;
        std::string why;
        try {
          written = cv::imwrite(out.temp_path().string(), bgr);
        } catch (const cv::Exception& e) {
          why = e.what();
        }
        Status st = written ? out.commit() : Status(ErrorCode::kIOError, "cannot write '" + out_path.string() + "'" +
                                                                             (why.empty() ? "" : ": " + why));
        write_ms = ms_since(t);
        if (!st.ok()) {
          record_failure(path, st.message());
          continue;
        }
      }

      tot.decode += r.timings.decode_ms;
      tot.preprocess += r.timings.preprocess_ms;
      tot.inference += r.timings.inference_ms;
      tot.postprocess += r.timings.postprocess_ms;
      tot.draw += draw_ms;
      tot.write += write_ms;
      tot.images += 1;
      tot.detections += static_cast<int64_t>(r.detections.size());

      nlohmann::json rec = {{"file", path},
                            {"width", r.width},
                            {"height", r.height},
                            {"decode", decode_info_json(decode_infos[j])},
                            {"detections", detections_json(*detector, r.detections, a.det.full_precision)},
                            {"timings_ms", timings_json(r.timings, draw_ms, write_ms)}};
      if (draw) rec["output"] = out_path.string();
      emit_record(rec);

      if (!a.quiet) {
        progress.clear();
        std::ostringstream line;
        line << path << ": " << r.width << "x" << r.height << ", " << r.detections.size() << " detections";
        if (draw && draw_threshold > 0) line << ", " << drawn << " drawn (score >= " << fmt(draw_threshold) << ")";
        if (!r.detections.empty() && a.top <= 0)
          line << ", best " << detector->class_name(r.detections[0].class_id) << " "
               << fmt(r.detections[0].score);
        line << ", " << fmt(r.timings.total() + draw_ms + write_ms, 1) << " ms";
        if (draw) line << " -> " << out_path.string();
        std::cout << line.str() << "\n";
        if (decode_infos[j].orientation_applied)
          std::cout << "  (EXIF orientation " << decode_infos[j].exif_orientation
                    << " applied: boxes are in the upright picture's pixels)\n";
        if (a.top > 0) print_top_table(std::cout, *detector, r.detections, a.top);
        if (a.timings) std::cout << "  timings ms: " << timings_line(r.timings, draw_ms, write_ms) << "\n";
        std::cout.flush();
      }
    }
    done += count;
    progress.update(static_cast<int64_t>(done));
  }
  progress.finish();
  const double wall_s = ms_since(t_run) / 1000.0;
  const bool stopped = interrupted();
  if (stopped) {
    // The images not reached are accounted for in the JSON as well.
    for (size_t k = done; k < files.size(); ++k) emit_record({{"file", files[k]}, {"error", "not processed: interrupted"}});
    std::cerr << "damoyolo detect: interrupted after " << done << " of " << files.size()
              << " image(s); the outputs hold the images done\n";
  }

  if (json_out.active()) {
    json_out.stream() << dump_json(all, 2) << "\n";
    Status st = json_out.commit();
    if (!st.ok()) failures.push_back({a.json, st.message()});
  }
  if (jsonl_out.active()) {
    Status st = jsonl_out.commit();
    if (!st.ok()) failures.push_back({a.jsonl, st.message()});
  }

  if (a.timings && !a.quiet && tot.images > 0) {
    const double n = tot.images;
    std::cout << "timings over " << tot.images << " image(s), ms total (mean):\n"
              << "  decode       " << std::setw(10) << fmt(tot.decode) << " (" << fmt(tot.decode / n) << ")\n"
              << "  preprocess   " << std::setw(10) << fmt(tot.preprocess) << " (" << fmt(tot.preprocess / n) << ")\n"
              << "  inference    " << std::setw(10) << fmt(tot.inference) << " (" << fmt(tot.inference / n) << ")\n"
              << "  postprocess  " << std::setw(10) << fmt(tot.postprocess) << " (" << fmt(tot.postprocess / n)
              << ")\n"
              << "  draw         " << std::setw(10) << fmt(tot.draw) << " (" << fmt(tot.draw / n) << ")\n"
              << "  write        " << std::setw(10) << fmt(tot.write) << " (" << fmt(tot.write / n) << ")\n"
              << "  model load   " << std::setw(10) << fmt(load_ms) << "\n"
              << "throughput: " << tot.images << " image(s) in " << fmt(wall_s, 3) << " s = "
              << fmt(wall_s > 0 ? n / wall_s : 0, 1) << " images/s\n";
  }
  if (!a.quiet)
    std::cout << tot.images << " image(s) processed, " << tot.detections << " detections, " << failures.size()
              << " failed\n";
  for (const auto& f : failures) std::cerr << "failed: " << f.path << ": " << f.reason << "\n";
  if (stopped) return interrupted_exit_code();
  if (files.empty() && failures.empty()) return fail("no input images");
  return failures.empty() ? 0 : 1;
}

}  // namespace

Runner add_detect_command(CLI::App& app) {
  auto args = std::make_shared<DetectArgs>();
  auto* cmd = app.add_subcommand("detect", "Detect objects in images: annotated images, JSON, tables, timings");
  cmd->add_option("inputs", args->inputs, "Image files, directories (recursive) or glob patterns")->required();
  args->det.add_to(cmd, /*with_batch=*/true);
  cmd->add_option("--output-dir", args->output_dir, "Where annotated images go (same base name); never read as input");
  cmd->add_flag("--no-draw", args->no_draw, "Do not write annotated images");
  cmd->add_option("--json", args->json, "Write all results as one JSON array to FILE");
  cmd->add_option("--jsonl", args->jsonl, "Stream results to FILE, one JSON object per image per line");
  cmd->add_option("--top", args->top, "Print the top K detections of each image as a table")
      ->check(whole_number(0));
  cmd->add_flag("--timings", args->timings, "Print per-stage milliseconds per image, totals and images/s");
  cmd->add_flag("-q,--quiet", args->quiet, "Print only warnings, errors and the failure list");
  cmd->add_flag("--overwrite", args->overwrite, "Replace output files that exist already (never an input)");
  return [args] { return run_detect(*args); };
}

}  // namespace damoyolo::cli
