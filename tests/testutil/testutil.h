// Shared helpers for the test binaries: where fixtures live, raw file I/O.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace damoyolo::testing {

// Repository root (compiled in).
std::filesystem::path source_dir();
// ../shared/fixtures relative to the repository root.
std::filesystem::path fixtures_dir();
// bin/damoyolo of this build, or $DAMOYOLO_CLI when set.
std::filesystem::path cli_path();
// Whole file as bytes; throws std::runtime_error when unreadable.
std::vector<uint8_t> read_file(const std::filesystem::path& p);
std::vector<float> read_f32(const std::filesystem::path& p);
// A fresh empty directory under the system temp dir.
std::filesystem::path make_temp_dir(const std::string& tag);
// Runs a shell command; its stdout (add 2>&1 for stderr), and its wait status.
std::string run_capture(const std::string& cmd, int* status);
// Single-quoted for the shell.
std::string quote(const std::string& s);

// The fixture models and images (names match ../shared/fixtures/golden/<model>/<image>).
inline const char* kFixtureModels[] = {"damoyolo_T_640", "damoyolo_Ns_416", "damoyolo_Ns_416_benchmark"};
inline const char* kFixtureImages[] = {"astronaut_png", "camera_png", "chelsea_jpg", "chelsea_png", "coffee_png"};
// "chelsea_jpg" -> images/chelsea.jpg
std::filesystem::path fixture_image_path(const std::string& golden_name);

}  // namespace damoyolo::testing
