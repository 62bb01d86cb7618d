#include <cmath>
#include <string>

#include "binding.hpp"

namespace shmbox::python {
namespace {

// The names shmbox.errors.by_cause knows each cause by.
const char* cause_name(Errc errc) noexcept {
  switch (errc) {
    case Errc::invalid_name: return "invalid_name";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::permission_denied: return "permission_denied";
    case Errc::no_space: return "no_space";
    case Errc::too_large: return "too_large";
    case Errc::not_ready: return "not_ready";
    case Errc::would_block: return "would_block";
    case Errc::timeout: return "timeout";
    case Errc::closed: return "closed";
    case Errc::corrupt: return "corrupt";
    case Errc::version_mismatch: return "version_mismatch";
    case Errc::out_of_memory: return "out_of_memory";
    case Errc::system: return "system";
    case Errc::unreachable: return "unreachable";
    case Errc::in_use: return "in_use";
    case Errc::not_recoverable: return "not_recoverable";
    case Errc::conflict: return "conflict";
    case Errc::task_failed: return "task_failed";
  }
  return "system";
}

}  // namespace

void raise(const Error& error) {
  const py::object causes = py::module_::import("shmbox.errors").attr("by_cause");
  const py::object kind = causes[py::str(cause_name(error.errc()))];
  const py::object exception = kind(error.message(), error.object(), error.detail());
  PyErr_SetObject(kind.ptr(), exception.ptr());
  throw py::error_already_set();
}

Deadline deadline_of(Timeout timeout) {
  if (!timeout) return Deadline::forever();
  if (std::isnan(*timeout)) raise(Error{Errc::invalid_argument, "timeout", "must be a number of seconds, not NaN"});
  if (*timeout <= 0) return Deadline::none();
  return Deadline{std::chrono::duration<double>{*timeout}};
}

Buffering buffering_of(const std::string& name) {
  if (name == "bounded") return Buffering::bounded;
  if (name == "zero") return Buffering::zero;
  if (name == "unbounded") return Buffering::unbounded;
  raise(Error{Errc::invalid_argument, "buffering '" + name + "'", "is not one of bounded, zero, unbounded"});
}

Ownership ownership_of(const std::string& name) {
  if (name == "process") return Ownership::process;
  if (name == "system") return Ownership::system;
  raise(Error{Errc::invalid_argument, "ownership '" + name + "'", "is not one of process, system"});
}

void bind_errors(py::module_& module) {
  module.def(
      "_raise_for_test",
      [](const std::string& cause, const std::string& object, const std::string& detail) {
        for (int code = static_cast<int>(Errc::invalid_name); code <= static_cast<int>(Errc::task_failed); ++code) {
          if (cause == cause_name(static_cast<Errc>(code))) raise(Error{static_cast<Errc>(code), object, detail});
        }
        throw py::value_error("no cause " + cause);
      },
      "Raises the exception the extension raises for `cause` (a shmbox::Errc name): for tests.");
}

}  // namespace shmbox::python
