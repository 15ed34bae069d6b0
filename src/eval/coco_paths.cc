// coco_image_path(): a dataset's file names, which come from whoever wrote the
// annotation file, confined to the images folder.
#include <algorithm>
#include <filesystem>
#include <system_error>

#include "damoyolo/coco_eval.h"

namespace damoyolo {

Result<std::string> coco_image_path(const std::string& images_dir, const std::string& file_name) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& why) {
    return Status(ErrorCode::kInvalidArgument, "image file name '" + file_name + "' " + why);
  };
  const std::string outside = "leads outside the images folder '" + images_dir + "'";
  if (file_name.empty()) return refuse("is empty");
  if (file_name.find('\0') != std::string::npos) return refuse("contains a NUL byte");
  const fs::path name(file_name);
  if (name.has_root_directory() || name.has_root_name())
    return refuse("is an absolute path; file names in a dataset are relative to the images folder");
  const fs::path normal = name.lexically_normal();
  if (normal.empty() || *normal.begin() == "..") return refuse(outside);
  if (normal == ".") return refuse("names the images folder itself");

  try {
    std::error_code ec;
    const fs::path root = fs::canonical(images_dir, ec);
    if (ec) return Status(ErrorCode::kNotFound, "images folder '" + images_dir + "': " + ec.message());
    const fs::path joined = fs::path(images_dir) / normal;
    // canonical() resolves every symbolic link on the way, so a link inside
    // the folder that points out of it is caught below like "..".
    const fs::path real = fs::canonical(joined, ec);
    if (ec) {
      const bool missing = ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory;
      return Status(missing ? ErrorCode::kNotFound : ErrorCode::kIOError, joined.string() + ": " + ec.message());
    }
    const auto mismatch = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
    if (mismatch.first != root.end()) return refuse(outside + " (it resolves to '" + real.string() + "')");
    if (real == root) return refuse("names the images folder itself");
    const fs::file_status st = fs::status(real, ec);
    if (ec) return Status(ErrorCode::kIOError, joined.string() + ": " + ec.message());
    if (st.type() != fs::file_type::regular)
      return Status(ErrorCode::kIOError, joined.string() + ": not a regular file");
    return real.string();
  } catch (const std::exception& e) {  // allocation failures from fs::path
    return Status(ErrorCode::kInternal, "image file name '" + file_name + "': " + e.what());
  }
}

}  // namespace damoyolo
