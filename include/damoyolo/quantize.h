// damoyolo::quantize_model — post-training INT8 quantisation of a float ONNX
// model into the standard QDQ form (QuantizeLinear / DequantizeLinear around
// each convolution), the form ONNX Runtime's quantiser and NNCF write and
// every runtime that reads QDQ loads.
//
//   * weights: per output channel, symmetric int8 (zero point 0, ±127), the
//     scale max|w| / 127 of each channel;
//   * biases: int32 with scale x_scale · w_scale[o] (zero point 0), as ONNX
//     Runtime writes them, so an INT8 kernel can add them in its accumulator;
//   * activations (each convolution's input): per tensor, asymmetric uint8,
//     the range observed on calibration images run through the real
//     preprocessing — minimum and maximum (kMinMax), the central
//     `percentile` of the values (kPercentile, outliers clipped), or the
//     range whose 255-level quantisation loses the least information
//     (kEntropy: smallest KL divergence between the histogram and its
//     quantised form, TensorRT's calibration made asymmetric);
//   * partial quantisation: convolutions named in keep_float, plus the
//     keep_float_count most sensitive ones (each one quantised alone, the
//     largest change of the model's outputs over the calibration images),
//     stay in float — the fix the DAMO-YOLO authors describe for the accuracy
//     that plain PTQ loses. Or, with sensitivity_budget, as many of the most
//     sensitive as it takes for the whole quantised model's output change
//     to be within that budget.
//
// Per-channel DequantizeLinear needs opset 13; a model of opset 11 or 12 is
// converted (Unsqueeze, Squeeze, Split and ReduceSum take their axes as
// inputs from 13 on; a Softmax must be over the last axis, where 11 and 13
// agree), the rest of the graph unchanged.
#pragma once

#include <string>
#include <vector>

#include "damoyolo/detector.h"
#include "damoyolo/status.h"

namespace damoyolo {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy };

struct QuantizeOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  // kPercentile: the range keeps this percentage of the values (99.99: the
  // 0.005 % lowest and highest are clipped).
  double percentile = 99.99;
  // Convolutions (ONNX node names) left in float.
  std::vector<std::string> keep_float;
  // And this many more, the most sensitive first (a sensitivity pass: one
  // extra model run per convolution per calibration image).
  int keep_float_count = 0;
  // > 0: instead of a count, keep the most sensitive convolutions in float,
  // in their order, until the quantised model's outputs differ from the float
  // model's by at most this much (mean absolute difference over every output
  // value — class scores and box coordinates in pixels — on up to 8
  // calibration images). Runs the sensitivity pass, then one model run per
  // candidate count.
  double sensitivity_budget = 0;
  // How calibration images are preprocessed (resize mode, decoding); the
  // engine options used to run the float model.
  DetectorOptions detector;
};

struct QuantizeReport {
  int convolutions = 0;  // in the model
  int quantized = 0;
  int images = 0;  // calibration images used
  std::vector<std::string> kept_float;  // node names, the sensitive ones first
  // The sensitivity of each convolution when measured (node name, mean
  // absolute change of the outputs with it alone quantised), most sensitive first.
  std::vector<std::pair<std::string, double>> sensitivity;
  // With sensitivity_budget: the output change of the written model (and of
  // the model with every convolution quantised).
  double output_change = 0, output_change_all_int8 = 0;
  int opset_from = 0, opset_to = 0;
};

// Writes the quantised model to out_path (whole: a temporary file renamed
// over it). out_path must not be the input. Errors name the file, node or
// image at fault; a calibration image that cannot be decoded is an error (a
// quiet skip would calibrate on less than asked).
Result<QuantizeReport> quantize_model(const std::string& model_path, const std::vector<std::string>& images,
                                      const std::string& out_path, const QuantizeOptions& options = {});

}  // namespace damoyolo
