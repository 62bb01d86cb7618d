// What the parts of the _shmbox extension share: raising shmbox errors as the package's
// exceptions, and waiting without the GIL.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::python {

namespace py = pybind11;

// Raises `error` as the exception class of shmbox.errors for its cause (shmbox.Timeout,
// shmbox.NotFound, ...), with its one-line message and its object and detail as attributes.
[[noreturn]] void raise(const Error& error);

template <class T>
T value_or_raise(Result<T>&& result) {
  if (!result) raise(result.error());
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// As value_or_raise, naming `object` in an error that names none (a call that found
// nothing at once says only "would block").
template <class T>
T value_or_raise(Result<T>&& result, const std::string& object) {
  if (!result && result.error().object().empty()) {
    raise(Error{result.error().errc(), object, result.error().detail(), result.error().system_errno()});
  }
  return value_or_raise(std::move(result));
}

// The names Python gives these options, as the C++ library's enumerators; others are refused.
Buffering buffering_of(const std::string& name);
Ownership ownership_of(const std::string& name);

// A Python timeout: None waits for ever, 0 (or less) not at all (WouldBlock), else seconds.
using Timeout = std::optional<double>;

Deadline deadline_of(Timeout timeout);

// A handle that a thread uses while others run (its waits release the GIL) is one thread's
// at a time, as in C++: a call from another thread meanwhile is refused with a clear error
// instead of racing. Read and written with the GIL held.
class OneThreadAtATime {
 public:
  class Use {
   public:
    Use(OneThreadAtATime& handle, const std::string& object) : handle_(handle), outer_(in_this_thread) {
      if (handle_.in_use_) raise(in_use_error(object));
      handle_.in_use_ = true;
      in_this_thread = &handle_;
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() {
      handle_.run_deferred();  // still in use: deferred work may release the GIL
      handle_.in_use_ = false;
      in_this_thread = outer_;
    }

   private:
    OneThreadAtATime& handle_;
    OneThreadAtATime* outer_;
  };
  bool in_use() const noexcept { return in_use_; }
  static Error in_use_error(const std::string& object) {
    return Error{Errc::invalid_argument, object, "this handle is in use by another thread: give each thread its own"};
  }
  // Runs `work` (which uses the handle and cannot fail; it may release the GIL) now, or,
  // while another thread uses the handle, when that thread is between the slices of its
  // wait or its call returns: for what Python's collector does on any thread, as giving
  // back a message in place whose last view went (which that call may be waiting for).
  void run_or_defer(std::function<void()> work) {
    if (!in_use_) {
      const Use own{*this, {}};
      work();
    } else {
      deferred_.push_back(std::move(work));
    }
  }
  // The deferred work of the handle this thread uses now, if any: between a wait's slices.
  static void run_deferred_here() {
    if (in_this_thread != nullptr) in_this_thread->run_deferred();
  }

 private:
  void run_deferred() {
    while (!deferred_.empty()) {
      for (auto deferred = std::exchange(deferred_, {}); auto& work : deferred) work();
    }
  }
  static inline thread_local OneThreadAtATime* in_this_thread = nullptr;
  bool in_use_ = false;
  std::vector<std::function<void()>> deferred_;
};

// Runs `attempt` (a call taking a Deadline, answering a Result) with the GIL released, in
// one piece: for calls that a slice's timeout would change (a zero-capacity send or commit
// takes its message back and would queue it again behind others; a commit cannot be
// retried at all).
template <class Attempt>
auto wait_whole_without_gil(Deadline whole, Attempt&& attempt) -> decltype(attempt(Deadline::forever())) {
  const py::gil_scoped_release unlocked;
  return attempt(whole);
}

template <class Attempt>
auto wait_whole_without_gil(Timeout timeout, Attempt&& attempt) -> decltype(attempt(Deadline::forever())) {
  return wait_whole_without_gil(deadline_of(timeout), std::forward<Attempt>(attempt));
}

// Runs `attempt` (a call taking a Deadline, answering a Result) with the GIL released, in
// slices of at most 100 ms until `whole`, looking for signals between them: Ctrl-C
// interrupts a wait within 100 ms with KeyboardInterrupt. A slice either completes (what
// it took is returned) or times out having taken nothing.
template <class Attempt>
auto wait_without_gil(Deadline whole, Attempt&& attempt) -> decltype(attempt(Deadline::forever())) {
  constexpr auto slice = std::chrono::milliseconds{100};
  for (;;) {
    const Deadline this_slice = earlier(whole, Deadline{Deadline::clock::now() + slice});
    const bool last = this_slice.is_none() || (!whole.is_forever() && this_slice.until() == whole.until());
    auto result = [&] {
      const py::gil_scoped_release unlocked;
      return attempt(this_slice);
    }();
    if (result || result.error().errc() != Errc::timeout || last) return result;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    OneThreadAtATime::run_deferred_here();
  }
}

template <class Attempt>
auto wait_without_gil(Timeout timeout, Attempt&& attempt) -> decltype(attempt(Deadline::forever())) {
  return wait_without_gil(deadline_of(timeout), std::forward<Attempt>(attempt));
}

// Bytes copied into a Python bytes object.
inline py::bytes bytes_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A message's bytes, borrowed from any object with the buffer protocol that holds them in
// one C-contiguous run (bytes, bytearray, memoryview, numpy arrays); others are refused,
// as a strided view's pointer and length do not describe its bytes.
class ContiguousBytes {
 public:
  ContiguousBytes(const py::object& source, const std::string& object) {
    if (PyObject_GetBuffer(source.ptr(), &buffer_, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      raise(Error{Errc::invalid_argument, object, "a message must be bytes in one contiguous run (a buffer)"});
    }
  }
  ContiguousBytes(const ContiguousBytes&) = delete;
  ContiguousBytes& operator=(const ContiguousBytes&) = delete;
  ~ContiguousBytes() { PyBuffer_Release(&buffer_); }  // the GIL is held again by then
  std::span<const std::byte> view() const noexcept {
    return {static_cast<const std::byte*>(buffer_.buf), static_cast<std::size_t>(buffer_.len)};
  }

 private:
  Py_buffer buffer_{};
};

void bind_errors(py::module_& module);
void bind_topic(py::module_& module);
void bind_segment(py::module_& module);
void bind_mailbox(py::module_& module);
void bind_board(py::module_& module);
void bind_lock(py::module_& module);
void bind_service(py::module_& module);
void bind_endpoint(py::module_& module);
void bind_pool(py::module_& module);

}  // namespace shmbox::python
