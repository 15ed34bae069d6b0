// damoyolo info MODEL [--json]: inputs, outputs, op histogram, parameters, FLOPs.
// damoyolo info MODEL --plan [engine options] [--json]: the compiled plan.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "damoyolo/detector.h"
#include "damoyolo/session.h"
#include "machine_peak.h"
#include "options.h"

namespace damoyolo::cli {

namespace {
struct InfoArgs {
  std::string model;
  bool json = false;
  bool plan = false;
  EngineArgs engine;
};

// The plan of the engine the options select (by default what `detect` would
// run): every step, its oneDNN kernel and layouts, reorders and fallbacks.
int run_plan(const InfoArgs& a) {
  auto session = Session::load(a.model, a.engine.session_options());
  if (!session.ok()) {
    std::cerr << "damoyolo info: " << session.status().to_string() << "\n";
    return 1;
  }
  const CompiledPlan& plan = session->plan();
  if (a.json) {
    std::cout << plan.to_json() << "\n";
  } else {
    std::cout << "model: " << a.model << "\n" << plan.to_text();
  }
  return 0;
}

nlohmann::json infos_json(const std::vector<TensorInfo>& infos) {
  auto arr = nlohmann::json::array();
  for (const auto& t : infos) arr.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"dims", t.dims}});
  return arr;
}

int run_info(const InfoArgs& a) {
  if (a.plan) return run_plan(a);
  SessionOptions opts;
  opts.engine = Engine::kReference;  // info needs the graph, not a compiled engine
  auto session = Session::load(a.model, opts);
  if (!session.ok()) {
    std::cerr << "damoyolo info: " << session.status().to_string() << "\n";
    return 1;
  }
  const ModelSummary& s = session->summary();
  // A DAMO-YOLO detector: its classes and where their names come from. Other
  // graphs simply show none; a detector whose names are unusable (bad
  // metadata, a list of the wrong length) says so.
  auto class_count = detector_class_count(*session, a.model);
  Result<ClassNames> labels = class_count.ok() ? resolve_class_names(a.model, s.metadata, *class_count)
                                               : Result<ClassNames>(class_count.status());
  if (a.json) {
    nlohmann::json j;
    j["model"] = s.path;
    j["producer"] = s.producer;
    j["ir_version"] = s.ir_version;
    j["opsets"] = s.opsets;
    j["inputs"] = infos_json(s.inputs);
    j["outputs"] = infos_json(s.outputs);
    j["ops"] = s.op_histogram;
    j["ops_in_file"] = s.op_histogram_original;
    j["parameters"] = s.parameters;
    j["layer_weights"] = s.layer_weights;
    j["macs"] = s.macs;
    j["gflops"] = s.gflops();
    j["metadata"] = s.metadata;
    const SimdReport simd = simd_report();
    j["simd"] = {{"level", simd.level}, {"cpu", simd.cpu}, {"DAMOYOLO_ISA", simd.isa_env}};
    if (labels.ok()) {
      j["classes"] = labels->names;
      j["class_names_source"] = label_source_name(labels->source);
      if (!labels->origin.empty()) j["class_names_origin"] = labels->origin;
    } else if (class_count.ok()) {
      j["classes_error"] = labels.status().message();
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "model:      " << s.path << "\n";
  std::cout << "producer:   " << (s.producer.empty() ? "?" : s.producer) << ", IR v" << s.ir_version << ", opset";
  for (const auto& [domain, v] : s.opsets) std::cout << " " << (domain.empty() ? "ai.onnx" : domain) << ":" << v;
  std::cout << "\n";
  for (const auto& t : s.inputs)
    std::cout << "input:      " << t.name << " " << dtype_name(t.dtype) << shape_to_string(t.dims) << "\n";
  for (size_t i = 0; i < s.outputs.size(); ++i)
    std::cout << "output " << i << ":   " << s.outputs[i].name << " " << dtype_name(s.outputs[i].dtype)
              << shape_to_string(s.outputs[i].dims) << "\n";
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "parameters: " << s.parameters / 1e6 << " M (" << s.parameters << " initializer elements; "
            << s.layer_weights / 1e6 << " M in layer weights)\n";
  std::cout << "FLOPs:      " << s.gflops() << " GFLOPs (2 x " << s.macs << " MACs)\n";
  std::cout << "simd:       " << simd_text(simd_report()) << "\n";
  if (labels.ok()) {
    std::cout << "classes:    " << *class_count << ", names from " << label_source_name(labels->source)
              << (labels->origin.empty() ? "" : " (" + labels->origin + ")") << ":";
    for (size_t i = 0; i < labels->names.size(); ++i)
      std::cout << (i % 8 == 0 ? "\n  " : " ") << i << ":" << labels->names[i];
    std::cout << "\n";
  } else if (class_count.ok()) {
    std::cout << "classes:    " << labels.status().message() << "\n";
  }
  for (const auto& [key, value] : s.metadata)
    if (key != "names") std::cout << "metadata:   " << key << " = " << value << "\n";
  std::cout << "ops (after folding; in file):\n";
  std::map<std::string, std::pair<int, int>> merged;
  for (const auto& [op, c] : s.op_histogram) merged[op].first = c;
  for (const auto& [op, c] : s.op_histogram_original) merged[op].second = c;
  for (const auto& [op, c] : merged)
    std::cout << "  " << std::left << std::setw(20) << op << std::right << std::setw(5) << c.first << std::setw(6)
              << c.second << "\n";
  return 0;
}
}  // namespace

Runner add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Describe a model: inputs, outputs, operators, parameters, FLOPs; or its compiled plan (--plan)");
  cmd->add_option("-m,--model,model", args->model, "ONNX model file")->required();
  cmd->add_flag("--json", args->json, "Print as JSON");
  cmd->add_flag("--plan", args->plan,
                "Print the compiled plan instead: every step, its kernel and layouts, reorders, fallbacks "
                "(for the engine options below)");
  args->engine.add_to(cmd, /*with_batch=*/true, /*with_detector=*/false);
  return [args] { return run_info(*args); };
}

}  // namespace damoyolo::cli
