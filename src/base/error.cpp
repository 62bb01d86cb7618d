#include "shmbox/error.hpp"

#include <cstring>  // strerrordesc_np: unlike strerror, safe from any thread

namespace shmbox {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmbox"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::invalid_name: return "invalid name";
      case Errc::invalid_argument: return "invalid argument";
      case Errc::not_found: return "not found";
      case Errc::already_exists: return "already exists";
      case Errc::permission_denied: return "permission denied";
      case Errc::no_space: return "no space";
      case Errc::too_large: return "too large";
      case Errc::not_ready: return "not ready";
      case Errc::would_block: return "would block";
      case Errc::timeout: return "timed out";
      case Errc::closed: return "closed";
      case Errc::corrupt: return "corrupt";
      case Errc::version_mismatch: return "layout version mismatch";
      case Errc::out_of_memory: return "out of memory";
      case Errc::system: return "system error";
      case Errc::unreachable: return "unreachable";
      case Errc::in_use: return "in use";
      case Errc::not_recoverable: return "not recoverable";
      case Errc::conflict: return "conflict";
      case Errc::task_failed: return "task failed";
    }
    return "unknown shmbox error " + std::to_string(value);
  }
};

std::string describe_errno(int err) {
  const char* text = strerrordesc_np(err);
  return text != nullptr ? text : "errno " + std::to_string(err);
}

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), error_category()}; }

Error::Error(Errc code, std::string object, std::string detail, int system_errno)
    : code_(code), system_errno_(system_errno), object_(std::move(object)), detail_(std::move(detail)) {}

Error& Error::operator=(Error&& other) noexcept {
  if (this != &other) {
    code_ = other.code_;
    system_errno_ = other.system_errno_;
    object_ = std::move(other.object_);
    detail_ = std::move(other.detail_);
  }
  return *this;
}

std::string Error::message() const {
  std::string text = object_.empty() ? std::string{} : object_ + ": ";
  text += detail_.empty() ? error_category().message(static_cast<int>(code_)) : detail_;
  if (system_errno_ != 0) {
    text += " (";
    text += describe_errno(system_errno_);
    text += ")";
  }
  return text;
}

}  // namespace shmbox
