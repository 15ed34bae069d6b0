// damoyolo run MODEL --input FILE --output-dir DIR: raw tensor in, raw tensors out,
// in the format of ../shared/fixtures/golden/*/*/ (outN.f32 + outputs.json).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "plan_notes.h"
#include "damoyolo/session.h"
#include "options.h"
#include "outputs.h"

namespace damoyolo::cli {

namespace {
struct RunArgs {
  std::string model, input, out;
  EngineArgs engine;
  bool overwrite = false;
};

int run_run(const RunArgs& a) {
  auto session = Session::load(a.model, a.engine.session_options());
  if (!session.ok()) {
    std::cerr << "damoyolo run: " << session.status().to_string() << "\n";
    return 1;
  }
  report_plan(*session, "damoyolo run");
  if (session->inputs().size() != 1) {
    std::cerr << "damoyolo run: the model has " << session->inputs().size() << " inputs; run takes one\n";
    return 1;
  }
  const TensorInfo& info = session->inputs()[0];
  // The extension says the element type: .u8 raw uint8, .f32 raw little-endian float32.
  std::string ext = std::filesystem::path(a.input).extension().string();
  DType dtype = ext == ".u8" ? DType::kUInt8 : ext == ".f32" ? DType::kFloat32 : DType::kUndefined;
  if (dtype == DType::kUndefined) {
    std::cerr << "damoyolo run: input file '" << a.input << "' must end in .u8 or .f32\n";
    return 1;
  }
  // Checked before reading a byte: a regular file of exactly the size the
  // input needs (never /dev/zero, a FIFO, or a huge file read to its end).
  std::error_code stat_ec;
  const std::filesystem::file_status st = std::filesystem::status(a.input, stat_ec);
  if (!std::filesystem::exists(st)) {
    std::cerr << "damoyolo run: cannot open input file '" << a.input << "'\n";
    return 1;
  }
  if (!std::filesystem::is_regular_file(st)) {
    std::cerr << "damoyolo run: input file '" << a.input << "' is not a regular file\n";
    return 1;
  }
  const uintmax_t size = std::filesystem::file_size(a.input, stat_ec);
  int64_t n = shape_numel(info.dims);
  if (stat_ec || n <= 0 || size != static_cast<uintmax_t>(n) * dtype_size(dtype)) {
    std::cerr << "damoyolo run: input file '" << a.input << "' has " << size << " bytes; the model input '"
              << info.name << "' " << shape_to_string(info.dims) << " needs " << n * dtype_size(dtype)
              << " bytes of " << dtype_name(dtype) << "\n";
    return 1;
  }
  Tensor input(dtype, info.dims);
  std::ifstream f(a.input, std::ios::binary);
  if (!f.read(static_cast<char*>(input.raw()), static_cast<std::streamsize>(input.nbytes()))) {
    std::cerr << "damoyolo run: cannot read input file '" << a.input << "'\n";
    return 1;
  }
  auto outputs = session->run({input});
  if (!outputs.ok()) {
    std::cerr << "damoyolo run: " << outputs.status().to_string() << "\n";
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) {
    std::cerr << "damoyolo run: cannot create output directory '" << a.out << "': " << ec.message() << "\n";
    return 1;
  }
  // Outputs are checked (never the input, never an existing file unless
  // --overwrite) before any is written, then each written whole.
  const std::filesystem::path dir(a.out);
  OutputPolicy policy(a.overwrite);
  policy.add_input(a.input);
  policy.add_input(a.model);
  std::vector<std::filesystem::path> paths;
  for (size_t i = 0; i < outputs->size(); ++i) paths.push_back(dir / ("out" + std::to_string(i) + ".f32"));
  paths.push_back(dir / "outputs.json");
  for (const auto& p : paths) {
    Status st = policy.claim(p, "output");
    if (!st.ok()) {
      std::cerr << "damoyolo run: " << st.message() << "\n";
      return 1;
    }
  }
  nlohmann::json desc = nlohmann::json::array();
  for (size_t i = 0; i <= outputs->size(); ++i) {
    AtomicOutput out(paths[i], a.overwrite);
    Status st = out.open_stream();
    if (st.ok() && i < outputs->size()) {
      const Tensor& t = (*outputs)[i];
      if (t.dtype() != DType::kFloat32)
        std::cerr << "damoyolo run: output " << i << " is " << dtype_name(t.dtype()) << ", written as raw bytes\n";
      out.stream().write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
      desc.push_back({{"index", i}, {"name", session->outputs()[i].name}, {"dims", t.shape()}});
    } else if (st.ok()) {
      out.stream() << desc.dump(1) << "\n";
    }
    if (st.ok()) st = out.commit();
    if (!st.ok()) {
      std::cerr << "damoyolo run: " << st.message() << "\n";
      return 1;
    }
  }
  std::cout << "wrote " << outputs->size() << " output(s) to " << a.out << " (engine "
            << engine_name(session->engine()) << ")\n";
  return 0;
}
}  // namespace

Runner add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run a model on a raw NCHW tensor file and write its raw outputs");
  cmd->add_option("-m,--model,model", args->model, "ONNX model file")->required();
  cmd->add_option("--input", args->input, "Input tensor: raw .u8 or .f32 (NCHW, matching the model input)")->required();
  cmd->add_option("--output-dir", args->out, "Output directory (outN.f32 + outputs.json)")->required();
  cmd->add_flag("--overwrite", args->overwrite, "Replace output files that exist already");
  args->engine.add_to(cmd, /*with_batch=*/false, /*with_detector=*/false);
  return [args] { return run_run(*args); };
}

}  // namespace damoyolo::cli
