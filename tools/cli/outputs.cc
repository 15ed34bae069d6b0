#include "outputs.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

#include "damoyolo/image.h"

namespace damoyolo::cli {

fs::path canonical_or_self(const fs::path& path) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(path, ec);
  return ec ? fs::absolute(path, ec).lexically_normal() : c;
}

bool is_within(const fs::path& path, const fs::path& dir) {
  const fs::path p = canonical_or_self(path), d = canonical_or_self(dir);
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
    ++pi;
  }
  return true;
}

namespace {

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Pictures, videos and models, by name or by their first bytes: what a
// results file must never replace.
std::string media_kind(const fs::path& p) {
  static const char* const kByName[][2] = {
      {".jpg", "an image"}, {".jpeg", "an image"}, {".png", "an image"},  {".bmp", "an image"},
      {".gif", "an image"}, {".webp", "an image"}, {".tif", "an image"},  {".tiff", "an image"},
      {".mp4", "a video"},  {".mov", "a video"},   {".mkv", "a video"},   {".webm", "a video"},
      {".avi", "a video"},  {".m4v", "a video"},   {".onnx", "a model"},
  };
  const std::string ext = lower_extension(p);
  for (const auto& [e, kind] : kByName)
    if (ext == e) return kind;
  unsigned char b[12] = {};
  std::ifstream f(p, std::ios::binary);
  f.read(reinterpret_cast<char*>(b), sizeof b);
  const auto n = static_cast<size_t>(f.gcount());
  if (sniff_image_format(b, n) != ImageFormat::kUnknown) return "an image";
  if (n >= 8 && std::memcmp(b + 4, "ftyp", 4) == 0) return "a video";                  // MP4, MOV
  if (n >= 4 && b[0] == 0x1A && b[1] == 0x45 && b[2] == 0xDF && b[3] == 0xA3) return "a video";  // Matroska
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "AVI ", 4) == 0) return "a video";
  return {};
}

}  // namespace

void OutputPolicy::add_input(const fs::path& path) { inputs_.push_back(path); }

Status OutputPolicy::claim(const fs::path& out, const std::string& what, Kind kind) {
  const std::string name = what + " '" + out.string() + "'";
  const fs::path canon = canonical_or_self(out);
  for (const fs::path& c : claimed_)
    if (c == canon) return Status(ErrorCode::kInvalidArgument, name + " is also another output of this run");
  std::error_code ec;
  const fs::file_status st = fs::status(out, ec);  // follows links: what would be written
  if (fs::exists(st)) {
    for (const fs::path& in : inputs_) {
      std::error_code eq;
      if (fs::equivalent(in, out, eq))
        return Status(ErrorCode::kInvalidArgument, name + " is an input of this run (" + in.string() +
                                                       "); it is never overwritten");
    }
    if (fs::is_directory(st)) return Status(ErrorCode::kInvalidArgument, name + " is a directory");
    // Replacing a device or a FIFO (or the /dev/stdout link) by a regular
    // file would break it for everyone; damoyolo writes regular files only.
    if (!fs::is_regular_file(st))
      return Status(ErrorCode::kInvalidArgument, name + " is not a regular file (a device, FIFO or socket); "
                                                        "write results to a regular file");
    if (kind == Kind::kResults) {
      if (const std::string media = media_kind(out); !media.empty())
        return Status(ErrorCode::kInvalidArgument,
                      name + " is " + media + "; results never replace it (did the shell expand a pattern such "
                             "as *.jpg into " + what + "?)");
    }
    if (!overwrite_)
      return Status(ErrorCode::kInvalidArgument, name + " exists already; pass --overwrite to replace it");
  }
  claimed_.push_back(canon);
  return Status::Ok();
}

namespace {

std::atomic<int> g_signal{0};
std::atomic<unsigned> g_temp_counter{0};

// The temporary files in flight, as plain C strings, so the handler of a
// second signal can remove them with async-signal-safe calls only.
constexpr int kMaxTemps = 64;
char g_temp_paths[kMaxTemps][PATH_MAX];
std::atomic<bool> g_temp_used[kMaxTemps];

int register_temp(const fs::path& p) {
  const std::string s = p.string();
  if (s.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kMaxTemps; ++i) {
    bool expected = false;
    if (!g_temp_used[i].load() && g_temp_used[i].compare_exchange_strong(expected, true)) {
      std::memcpy(g_temp_paths[i], s.c_str(), s.size() + 1);
      return i;
    }
  }
  return -1;  // more than 64 at once: not cleaned up on a second signal, still removed normally
}

void unregister_temp(int slot) {
  if (slot >= 0) g_temp_used[slot].store(false);
}

void on_signal(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) return;  // the first: stop cleanly
  // Once stdout's reader has gone, every later print raises SIGPIPE again:
  // that is no request to hurry.
  if (sig == SIGPIPE) return;
  // The second: the user wants out now. Remove what is half-written, then go.
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load()) ::unlink(g_temp_paths[i]);
  ::_exit(128 + sig);
}

}  // namespace

AtomicOutput::AtomicOutput(fs::path final_path, bool replace) : final_(std::move(final_path)), replace_(replace) {
  // Kept short: a long final name must not push the temporary one past NAME_MAX.
  std::string stem = final_.stem().string().substr(0, 100);
  const std::string name = "." + stem + ".damoyolo-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_temp_counter.fetch_add(1)) + final_.extension().string().substr(0, 16);
  temp_ = final_.parent_path() / name;
  slot_ = register_temp(temp_);
}

AtomicOutput::~AtomicOutput() {
  if (active() && !committed_) discard();
  unregister_temp(slot_);
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : final_(std::move(other.final_)),
      temp_(std::move(other.temp_)),
      replace_(other.replace_),
      slot_(other.slot_),
      stream_(std::move(other.stream_)),
      committed_(other.committed_) {
  other.final_.clear();
  other.temp_.clear();
  other.slot_ = -1;
}

AtomicOutput& AtomicOutput::operator=(AtomicOutput&& other) noexcept {
  if (this != &other) {
    if (active() && !committed_) discard();
    unregister_temp(slot_);
    final_ = std::move(other.final_);
    temp_ = std::move(other.temp_);
    replace_ = other.replace_;
    slot_ = other.slot_;
    stream_ = std::move(other.stream_);
    committed_ = other.committed_;
    other.final_.clear();
    other.temp_.clear();
    other.slot_ = -1;
  }
  return *this;
}

Status AtomicOutput::open_stream() {
  stream_.open(temp_, std::ios::binary | std::ios::trunc);
  if (!stream_)
    return Status(ErrorCode::kIOError, "cannot write '" + final_.string() + "': cannot create '" + temp_.string() +
                                           "' in its folder: " + std::strerror(errno));
  return Status::Ok();
}

Status AtomicOutput::commit() {
  if (stream_.is_open()) {
    stream_.flush();
    const bool good = static_cast<bool>(stream_);
    stream_.close();
    if (!good || !stream_) {
      discard();
      return Status(ErrorCode::kIOError, "cannot write '" + final_.string() + "' (disk full?)");
    }
  }
  // Without --overwrite, a file that appeared at the final name since the
  // start (another run, another program) is not replaced either.
  int rc = replace_ ? ::rename(temp_.c_str(), final_.c_str())
                    : ::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && !replace_ && errno == EINVAL) {
    // A file system without RENAME_NOREPLACE: link() also never replaces.
    rc = ::link(temp_.c_str(), final_.c_str());
    if (rc == 0) ::unlink(temp_.c_str());
  }
  if (rc != 0) {
    const int err = errno;
    discard();
    if (err == EEXIST)
      return Status(ErrorCode::kIOError, "cannot write '" + final_.string() +
                                             "': a file of that name appeared while this run was writing it; "
                                             "kept that one (pass --overwrite to replace)");
    return Status(ErrorCode::kIOError, "cannot write '" + final_.string() + "': " + std::strerror(err));
  }
  committed_ = true;
  unregister_temp(slot_);
  slot_ = -1;
  return Status::Ok();
}

void AtomicOutput::discard() {
  if (stream_.is_open()) stream_.close();
  std::error_code ec;
  if (!temp_.empty()) fs::remove(temp_, ec);
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a read interrupted by the first signal carries on; the loops
  // notice the flag between items.
  sa.sa_flags = SA_RESTART;
  // SIGPIPE (`damoyolo detect ... | head -1`) and SIGHUP (the terminal went
  // away) also end the run cleanly rather than leaving temporary files.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaction(sig, &sa, nullptr);
}

bool interrupted() { return g_signal.load() != 0; }

int interrupted_exit_code() { return 128 + g_signal.load(); }

}  // namespace damoyolo::cli
