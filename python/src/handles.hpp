// The Python handles that more than one part of the extension uses: the selector watches
// mailboxes, subscribers and endpoints.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "lent.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/topic.hpp"

namespace shmbox::python {

// How many selectors watch a handle: one that is watched cannot let go of what they watch.
class WatchCount {
 public:
  void add() noexcept { ++count_; }
  void remove() noexcept { --count_; }
  bool watched() const noexcept { return count_ != 0; }
  static Error watched_error(const std::string& object) {
    return Error{Errc::invalid_argument, object, "a selector watches this handle: close the selector first"};
  }

 private:
  int count_ = 0;
};

// A Mailbox handle that detach() (or leaving a `with`) lets go of; the mailbox stays. It
// counts the loans and messages in place it lent (they use its connection to the mailbox),
// and refuses to let go while any is held.
class PyMailbox {
 public:
  explicit PyMailbox(Mailbox mailbox) : mailbox_(std::move(mailbox)), name_(mailbox_->name()) {}

  Mailbox& mailbox() {
    if (!mailbox_) raise(Error{Errc::closed, "mailbox '" + name_ + "'", "this handle was detached"});
    return *mailbox_;
  }
  void detach() {
    if (lent_.held() != 0) {
      raise(Error{Errc::invalid_argument, object(),
                  std::to_string(lent_.held()) + " loans or messages in place of this handle are still held"});
    }
    if (watched_.watched()) raise(watched_.watched_error(object()));
    if (use_.in_use()) raise(OneThreadAtATime::in_use_error(object()));
    mailbox_.reset();
  }
  // For a call that releases the GIL (OneThreadAtATime).
  OneThreadAtATime::Use use() { return OneThreadAtATime::Use{use_, object()}; }
  OneThreadAtATime& one_thread() noexcept { return use_; }
  WatchCount& watchers() noexcept { return watched_; }
  LentCount& lent() noexcept { return lent_; }
  const std::string& name() const noexcept { return name_; }
  std::string object() const { return "mailbox '" + name_ + "'"; }

  void send(const py::object& message, Timeout timeout) {
    const auto in_use = use();
    Mailbox& box = mailbox();
    const ContiguousBytes bytes{message, object()};
    // A remote mailbox is given one id for the message across slices: one a slice stored
    // but heard no acknowledgement of is not stored again by the next.
    const std::string id = name_.starts_with("nats://") ? next_remote_id() : std::string{};
    const auto send_by = [&](Deadline deadline) {
      return id.empty() ? box.send(bytes.view(), deadline) : box.send(bytes.view(), deadline, id);
    };
    // A zero-capacity send takes its message back when a slice ends: it waits in one piece.
    value_or_raise(box.buffering() == Buffering::zero ? wait_whole_without_gil(timeout, send_by)
                                                      : wait_without_gil(timeout, send_by),
                   object());
  }

  // The next message, as bytes; a Closed error once the mailbox is closed and drained.
  Result<py::bytes> receive(Timeout timeout) {
    Mailbox& box = mailbox();
    std::vector<std::byte> message;
    Result<void> received = [&] {
      const auto in_use = use();
      return wait_without_gil(timeout, [&](Deadline deadline) { return box.receive(message, deadline); });
    }();
    if (!received) return std::unexpected(received.error());
    return bytes_of(message);
  }

 private:
  std::optional<Mailbox> mailbox_;
  std::string name_;
  // An id no other message sent to the server has within its duplicate window: random
  // digits of this handle's (drawn again in a forked child), then a count.
  std::string next_remote_id() {
    if (id_process_ != ::getpid()) {
      std::random_device random;
      char digits[18];
      std::snprintf(digits, sizeof digits, "%08x%08x-", random(), random());
      id_prefix_ = digits;
      id_process_ = ::getpid();
    }
    return id_prefix_ + std::to_string(++sent_);
  }

  LentCount lent_;
  std::string id_prefix_;
  pid_t id_process_ = 0;
  std::uint64_t sent_ = 0;
  OneThreadAtATime use_;
  WatchCount watched_;
};

// A Publisher or Subscriber with its topic's name, one thread's at a time. A loan or a
// message in place keeps its handle alive while it is held.
template <class Handle>
struct PyTopicHandle {
  Handle handle;
  std::string object;
  OneThreadAtATime use;
};
using PyPublisher = PyTopicHandle<Publisher>;
using PySubscriber = PyTopicHandle<Subscriber>;

// An Endpoint that leave() (or the end of a `with`) gives up: its name is free again.
class PyEndpoint {
 public:
  explicit PyEndpoint(Endpoint endpoint) : endpoint_(std::move(endpoint)), name_(endpoint_->name()) {}

  Endpoint& endpoint() {
    if (!endpoint_) raise(Error{Errc::closed, object(), "this handle left the endpoint"});
    return *endpoint_;
  }
  void leave() {
    if (watched_.watched()) raise(watched_.watched_error(object()));
    if (use_.in_use()) raise(OneThreadAtATime::in_use_error(object()));
    endpoint_.reset();
  }
  OneThreadAtATime::Use use() { return OneThreadAtATime::Use{use_, object()}; }
  const std::string& name() const noexcept { return name_; }
  std::string object() const { return "endpoint '" + name_ + "'"; }
  WatchCount& watchers() noexcept { return watched_; }

 private:
  std::optional<Endpoint> endpoint_;
  std::string name_;
  OneThreadAtATime use_;
  WatchCount watched_;
};

}  // namespace shmbox::python
