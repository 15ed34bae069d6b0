#include "testutil/testutil.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>

namespace damoyolo::testing {

std::filesystem::path source_dir() { return DAMOYOLO_SOURCE_DIR; }
std::filesystem::path fixtures_dir() { return source_dir().parent_path() / "shared" / "fixtures"; }
std::filesystem::path cli_path() {
  // DAMOYOLO_CLI runs the command-line tests against another binary (an
  // installed one, or an older build to show a test failing before a fix).
  if (const char* cli = std::getenv("DAMOYOLO_CLI"); cli && *cli) return cli;
  return std::filesystem::path(DAMOYOLO_BINARY_DIR) / "bin" / "damoyolo";
}

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  *status = pclose(pipe.release());
  return out;
}

// Appended, not built with `"literal" + string`, which trips a GCC 12
// -Wrestrict false positive.
std::string quote(const std::string& s) { return std::string("'").append(s).append("'"); }

std::vector<uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<float> read_f32(const std::filesystem::path& p) {
  auto bytes = read_file(p);
  if (bytes.size() % 4) throw std::runtime_error("not a float32 file: " + p.string());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

std::filesystem::path make_temp_dir(const std::string& tag) {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() /
             ("damoyolo_test_" + tag + "_" + std::to_string(rd()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::filesystem::path fixture_image_path(const std::string& golden_name) {
  auto pos = golden_name.rfind('_');
  return fixtures_dir() / "images" / (golden_name.substr(0, pos) + "." + golden_name.substr(pos + 1));
}

}  // namespace damoyolo::testing

#include "testutil/model_builder.h"

namespace damoyolo::testing {
std::filesystem::path ModelBuilder::save(const std::filesystem::path& path) const {
  std::ofstream f(path, std::ios::binary);
  std::string b = bytes();
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
  return path;
}
}  // namespace damoyolo::testing
