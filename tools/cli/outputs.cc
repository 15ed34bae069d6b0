#include "outputs.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace damoyolo::cli {

fs::path canonical_or_self(const fs::path& path) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(path, ec);
  return ec ? fs::absolute(path, ec).lexically_normal() : c;
}

bool is_within(const fs::path& path, const fs::path& dir) {
  const fs::path p = canonical_or_self(path), d = canonical_or_self(dir);
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

void OutputPolicy::add_input(const fs::path& path) { inputs_.push_back(path); }

Status OutputPolicy::check(const fs::path& out, const std::string& what) const {
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists) {
    for (const fs::path& in : inputs_) {
      std::error_code eq;
      if (fs::equivalent(in, out, eq))
        return Status(ErrorCode::kInvalidArgument, what + " '" + out.string() + "' is an input of this run (" +
                                                       in.string() + "); it would be overwritten");
    }
    if (fs::is_directory(out, ec))
      return Status(ErrorCode::kInvalidArgument, what + " '" + out.string() + "' is a directory");
    if (!overwrite_)
      return Status(ErrorCode::kInvalidArgument,
                    what + " '" + out.string() + "' exists already; pass --overwrite to replace it");
  }
  return Status::Ok();
}

namespace {
std::atomic<int> g_signal{0};
std::atomic<unsigned> g_temp_counter{0};

void on_signal(int sig) { g_signal.store(sig); }
}  // namespace

AtomicOutput::AtomicOutput(fs::path final_path) : final_(std::move(final_path)) {
  const std::string name = "." + final_.stem().string() + ".damoyolo-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_temp_counter.fetch_add(1)) + final_.extension().string();
  temp_ = final_.parent_path() / name;
}

AtomicOutput::~AtomicOutput() {
  if (active() && !committed_) discard();
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : final_(std::move(other.final_)),
      temp_(std::move(other.temp_)),
      stream_(std::move(other.stream_)),
      committed_(other.committed_) {
  other.final_.clear();
  other.temp_.clear();
}

AtomicOutput& AtomicOutput::operator=(AtomicOutput&& other) noexcept {
  if (this != &other) {
    if (active() && !committed_) discard();
    final_ = std::move(other.final_);
    temp_ = std::move(other.temp_);
    stream_ = std::move(other.stream_);
    committed_ = other.committed_;
    other.final_.clear();
    other.temp_.clear();
  }
  return *this;
}

Status AtomicOutput::open_stream() {
  stream_.open(temp_, std::ios::binary | std::ios::trunc);
  if (!stream_) return Status(ErrorCode::kIOError, "cannot write '" + final_.string() + "' (cannot create a file in its folder)");
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
  std::error_code ec;
  fs::rename(temp_, final_, ec);
  if (ec) {
    discard();
    return Status(ErrorCode::kIOError, "cannot write '" + final_.string() + "': " + ec.message());
  }
  committed_ = true;
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
  // SA_RESETHAND: the first signal asks for a clean stop; a second one gets
  // the default action and ends the process at once.
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_signal.load() != 0; }

int interrupted_exit_code() { return 128 + g_signal.load(); }

}  // namespace damoyolo::cli
