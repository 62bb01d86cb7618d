// Bytes lent to Python in place: a loan's room or a message in place, shown as a memoryview
// that may not outlive them (docs/python.md, "Views of lent bytes").
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "binding.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/topic.hpp"

namespace shmbox::python {

// How many loans and messages in place a handle has lent and not had back: a handle that
// lets go of its connection (Mailbox.detach) refuses while any is held.
class LentCount {
 public:
  void lend() noexcept { ++held_; }
  void take_back() noexcept { --held_; }
  std::size_t held() const noexcept { return held_; }

 private:
  std::size_t held_ = 0;
};

template <class Lent>
inline constexpr bool is_loan = std::is_same_v<Lent, SendLoan> || std::is_same_v<Lent, TopicLoan>;

// The lent bytes; the memoryview is read-only for messages (PyBuffer_FillInfo's flag).
inline std::span<std::byte> lent_bytes(SendLoan& loan) { return loan.data(); }
inline std::span<std::byte> lent_bytes(TopicLoan& loan) { return loan.data(); }
inline std::span<std::byte> lent_bytes(ReceivedMessage& message) { return message.writable_data(); }
inline std::span<std::byte> lent_bytes(TopicMessage& message) {
  const std::span<const std::byte> bytes = message.data();
  return {const_cast<std::byte*>(bytes.data()), bytes.size()};  // exported read-only
}

// What the memoryview of a loan or a message in place exports. Only its lender holds it,
// and gives the lent bytes back only once that view (and every view taken of it, numpy's
// among them) has been released: memoryview.release() refuses while views of it live.
// It holds the handle that lent it too (a mailbox, a publisher, a subscriber): a view may
// outlive the Python object that lent it, and the lent bytes go back through the handle.
template <class Lent>
struct LentMemory {
  LentMemory(py::object lender, OneThreadAtATime& lender_use, LentCount* lender_count, std::string lender_object,
             Lent lent_bytes, bool writable_bytes)
      : owner(std::move(lender)),
        use(&lender_use),
        count(lender_count),
        object(std::move(lender_object)),
        lent(std::move(lent_bytes)),
        writable(writable_bytes) {
    if (count != nullptr) count->lend();
  }
  LentMemory(LentMemory&& other) noexcept
      : owner(std::move(other.owner)),
        use(other.use),
        count(other.count),
        object(std::move(other.object)),
        lent(std::exchange(other.lent, std::nullopt)),
        writable(other.writable),
        put_back(other.put_back) {}
  LentMemory(const LentMemory&) = delete;
  LentMemory& operator=(const LentMemory&) = delete;
  LentMemory& operator=(LentMemory&&) = delete;
  ~LentMemory() { finish(); }
  // The bytes are back (committed, abandoned, released), or given back now as the lent
  // object's destructor does (a message put back first, if its block raised): through the
  // lender's handle, so after the call of another thread that uses it, if one does.
  void finish() noexcept {
    if (!lent) return;
    auto last = std::make_shared<Lent>(std::move(*lent));
    lent.reset();
    if (count != nullptr) count->take_back();
    use->run_or_defer([last, put_back = put_back]() mutable {
      if constexpr (std::is_same_v<Lent, ReceivedMessage>) {
        if (put_back) last->requeue();
      }
      last.reset();  // its destructor gives back what is left
    });
  }
  bool given_back() const noexcept { return !lent || ending; }

  py::object owner;
  OneThreadAtATime* use = nullptr;  // the lender's, which `owner` keeps alive
  LentCount* count = nullptr;       // the lender's too; none: not counted
  std::string object;               // the lender's name, for errors
  std::optional<Lent> lent;
  bool writable = false;
  bool ending = false;    // being handed back by a call that waits without the GIL
  bool put_back = false;  // a message whose block raised while views of it lived: requeued at the end
  int exports = 0;  // buffers given out and not released: views (and views of views) alive
};

// A loan (SendLoan, TopicLoan) or a message in place (ReceivedMessage, TopicMessage), with
// the handle that lent it kept alive, its bytes as `data`, and a way to end it that the
// bindings make a context manager's: a loan is committed (abandoned if the block raised), a
// message released.
template <class Lent>
class PyLent {
 public:
  PyLent(const py::object& lender, OneThreadAtATime& use, LentCount* count, std::string object, Lent lent,
         bool writable) {
    memory_object_ = py::cast(LentMemory<Lent>{lender, use, count, std::move(object), std::move(lent), writable});
    memory_ = &memory_object_.cast<LentMemory<Lent>&>();
  }
  PyLent(const PyLent&) = delete;
  PyLent& operator=(const PyLent&) = delete;
  ~PyLent() = default;  // the exporter gives the bytes back once no view holds it

  py::object data() {
    if (ended()) raise(Error{Errc::invalid_argument, object(), ended_what()});
    if (view_.is_none()) view_ = py::memoryview(memory_object_);
    return view_;
  }
  Lent& lent() const {
    if (ended()) raise(Error{Errc::invalid_argument, object(), ended_what()});
    return *memory_->lent;
  }
  // Releases the view (BufferError while views of it live), then hands the bytes back
  // (`hand_back` answers a Result, whose value it returns) as the lender's one user
  // meanwhile. A failed commit used the loan up too (the mailbox took the message back, a
  // topic gave the room back), except one too large, which the caller may commit shorter.
  template <class HandBack>
  auto end(HandBack&& hand_back) {
    (void)lent();
    const OneThreadAtATime::Use in_use{*memory_->use, object()};  // before anything changes
    if (!view_.is_none()) view_.attr("release")();
    view_ = py::none();
    if (memory_->exports != 0) {
      PyErr_SetString(PyExc_BufferError, (object() + ": views of the bytes are still alive (slices, copies of the "
                                                    "view): release them or let them go first").c_str());
      throw py::error_already_set();
    }
    auto handed = [&] {
      memory_->ending = true;  // no new view while the call waits without the GIL
      const struct Ended {
        LentMemory<Lent>& memory;
        ~Ended() { memory.ending = false; }
      } ended{*memory_};
      return hand_back(*memory_->lent);
    }();
    if (handed || handed.error() != Errc::too_large) memory_->finish();
    return value_or_raise(std::move(handed), object());
  }
  // The end of a `with` block that raised: hands the bytes back if nothing else shows them,
  // else leaves that to the last view's going (`put_back`: a message goes back first in
  // line then); never raises over the block's exception.
  template <class HandBack>
  void end_quietly(HandBack&& hand_back, bool put_back = false) {
    if (ended()) return;
    try {
      (void)end(hand_back);
    } catch (const py::error_already_set&) {
      memory_->put_back = put_back;
    }
  }
  const std::string& object() const noexcept { return memory_->object; }
  // The handle that lent it (a Mailbox, a Publisher, a Subscriber).
  const py::object& lender() const noexcept { return memory_->owner; }

 private:
  bool ended() const noexcept { return memory_->given_back(); }
  static std::string ended_what() {
    return is_loan<Lent> ? "this loan was committed or abandoned" : "this message was released";
  }
  py::object memory_object_;  // the exporter, held apart: a released view lets go of it
  LentMemory<Lent>* memory_ = nullptr;
  py::object view_ = py::none();  // the view handed out; every other derives from it
};

// The buffer protocol by hand, to count the buffers given out: each memoryview made of
// the exporter holds one until it and every view derived from it are released.
template <class Lent>
int get_lent_buffer(PyObject* exporter, Py_buffer* view, int flags) {
  LentMemory<Lent>* found = nullptr;
  try {
    found = &py::handle(exporter).cast<LentMemory<Lent>&>();
  } catch (const py::cast_error&) {
    PyErr_SetString(PyExc_BufferError, "shmbox: not lent bytes");
    return -1;
  }
  LentMemory<Lent>& memory = *found;
  if (memory.given_back()) {
    PyErr_SetString(PyExc_BufferError, (memory.object + ": the bytes were given back").c_str());
    return -1;
  }
  const std::span<std::byte> bytes = lent_bytes(*memory.lent);
  if (PyBuffer_FillInfo(view, exporter, bytes.data(), static_cast<Py_ssize_t>(bytes.size()), memory.writable ? 0 : 1,
                        flags) != 0) {
    return -1;
  }
  ++memory.exports;
  return 0;
}

template <class Lent>
void release_lent_buffer(PyObject* exporter, Py_buffer*) {
  try {
    --py::handle(exporter).cast<LentMemory<Lent>&>().exports;
  } catch (const py::cast_error&) {  // get_lent_buffer gave it no buffer: nothing to count
  }
}

template <class Lent>
void bind_lent_memory(py::module_& module, const char* name) {
  const py::class_<LentMemory<Lent>> memory(module, name, py::buffer_protocol());
  auto* type = reinterpret_cast<PyHeapTypeObject*>(memory.ptr());
  type->as_buffer.bf_getbuffer = &get_lent_buffer<Lent>;
  type->as_buffer.bf_releasebuffer = &release_lent_buffer<Lent>;
}


}  // namespace shmbox::python
