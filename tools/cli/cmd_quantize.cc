// damoyolo quantize: post-training INT8 quantisation into a QDQ ONNX file
// (damoyolo/quantize.h; docs/quantization.md).
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "damoyolo/quantize.h"
#include "options.h"

namespace damoyolo::cli {

namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string model, calib, out;
  std::string method = "minmax";
  double percentile = 99.99;
  int keep_fp = 0;
  double sensitivity = 0;
  std::vector<std::string> keep;
  int max_images = 100;
  bool overwrite = false;
  std::string resize = "stretch";
  EngineArgs engine;
};

int run_quantize(const QuantizeArgs& a) {
  std::error_code ec;
  if (!fs::is_directory(a.calib, ec)) {
    std::cerr << "damoyolo quantize: --calib " << a.calib << " is not a directory of images\n";
    return 2;
  }
  std::vector<std::string> images;
  for (const auto& e : fs::directory_iterator(a.calib, ec)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp"))
      images.push_back(e.path().string());
  }
  std::sort(images.begin(), images.end());
  if (images.empty()) {
    std::cerr << "damoyolo quantize: no .jpg, .png or .bmp images in " << a.calib << "\n";
    return 2;
  }
  if (a.max_images > 0 && static_cast<int>(images.size()) > a.max_images) images.resize(a.max_images);
  if (fs::exists(a.out, ec)) {
    if (fs::equivalent(a.out, a.model, ec)) {
      std::cerr << "damoyolo quantize: -o " << a.out << " is the input model\n";
      return 2;
    }
    if (!a.overwrite) {
      std::cerr << "damoyolo quantize: " << a.out << " exists already; pass --overwrite to replace it\n";
      return 2;
    }
  }
  QuantizeOptions o;
  o.method = a.method == "percentile" ? CalibrationMethod::kPercentile
             : a.method == "entropy"  ? CalibrationMethod::kEntropy
                                      : CalibrationMethod::kMinMax;
  o.sensitivity_budget = a.sensitivity;
  o.percentile = a.percentile;
  o.keep_float = a.keep;
  o.keep_float_count = a.keep_fp;
  o.detector = a.engine.detector_options();
  o.detector.resize = a.resize == "letterbox" ? ResizeMode::kLetterbox : ResizeMode::kStretch;
  std::cerr << "damoyolo quantize: calibrating " << a.model << " on " << images.size() << " image(s) ("
            << a.method << ")" << (a.keep_fp > 0 || a.sensitivity > 0 ? ", then a sensitivity pass" : "") << "\n";
  auto r = quantize_model(a.model, images, a.out, o);
  if (!r.ok()) {
    std::cerr << "damoyolo quantize: " << r.status().message() << "\n";
    return 1;
  }
  std::cout << a.out << ": " << r->quantized << " of " << r->convolutions << " convolutions in INT8 (QDQ, opset "
            << r->opset_to << (r->opset_from != r->opset_to ? ", from " + std::to_string(r->opset_from) : "")
            << "), calibrated on " << r->images << " image(s)";
  if (!r->kept_float.empty()) std::cout << "; kept in float: " << r->kept_float.size();
  std::cout << "\n";
  if (a.sensitivity > 0)
    std::cout << "  output change " << r->output_change << " (budget " << a.sensitivity << "; all in INT8: "
              << r->output_change_all_int8 << ")\n";
  for (size_t i = 0; i < r->kept_float.size(); ++i) {
    std::cout << "  float  " << r->kept_float[i];
    for (const auto& [name, change] : r->sensitivity)
      if (name == r->kept_float[i]) std::cout << "  (output change " << change << ")";
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

Runner add_quantize_command(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  QuantizeArgs& a = *args;
  CLI::App* cmd = app.add_subcommand("quantize", "Post-training INT8 quantisation into a standard QDQ ONNX file");
  cmd->add_option("-m,--model", a.model, "Float ONNX model")->required();
  cmd->add_option("--calib", a.calib, "Directory of calibration images (.jpg, .png, .bmp)")->required();
  cmd->add_option("-o,--output", a.out, "The quantised model to write")->required();
  cmd->add_option("--method", a.method,
                  "Activation ranges: minmax, percentile (outliers clipped), or entropy (least KL divergence)")
      ->check(CLI::IsMember({"minmax", "percentile", "entropy"}));
  cmd->add_option("--percentile", a.percentile, "With --method percentile: the share of values kept, %")
      ->check(real_number(50.0001, 100.0));
  cmd->add_option("--keep-fp", a.keep_fp,
                  "Keep this many of the most sensitive convolutions in float (partial quantisation; runs a "
                  "sensitivity pass)")
      ->check(whole_number(0));
  cmd->add_option("--sensitivity", a.sensitivity,
                  "Keep the most sensitive convolutions in float until the model's outputs differ from the float "
                  "model's by at most this much (mean absolute difference of every output value on up to 8 "
                  "calibration images); instead of --keep-fp")
      ->check(real_number(1e-9, 1e9))
      ->excludes("--keep-fp");
  cmd->add_option("--keep", a.keep, "Convolutions (node names, comma list) to keep in float")->delimiter(',');
  cmd->add_option("--max-images", a.max_images, "Use at most this many calibration images (0: all)")
      ->check(whole_number(0));
  cmd->add_option("--resize", a.resize, "stretch (current models) or letterbox (legacy pre-v0.3.0 models)")
      ->check(CLI::IsMember({"stretch", "letterbox"}));
  cmd->add_flag("--overwrite", a.overwrite, "Replace the output file if it exists");
  a.engine.add_to(cmd, /*with_batch=*/false, /*with_detector=*/true);
  return [args] { return run_quantize(*args); };
}

}  // namespace damoyolo::cli
