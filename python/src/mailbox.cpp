// shmbox.Mailbox: named message queues, every waiting form, the GIL released while waiting.
#include <optional>
#include <string>
#include <vector>

#include "binding.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::python {
namespace {

Buffering buffering_of(const std::string& name) {
  if (name == "bounded") return Buffering::bounded;
  if (name == "zero") return Buffering::zero;
  if (name == "unbounded") return Buffering::unbounded;
  raise(Error{Errc::invalid_argument, "buffering '" + name + "'", "is not one of bounded, zero, unbounded"});
}

const char* buffering_name(Buffering buffering) {
  switch (buffering) {
    case Buffering::zero: return "zero";
    case Buffering::bounded: return "bounded";
    case Buffering::unbounded: return "unbounded";
  }
  return "bounded";
}

Ownership ownership_of(const std::string& name) {
  if (name == "process") return Ownership::process;
  if (name == "system") return Ownership::system;
  raise(Error{Errc::invalid_argument, "ownership '" + name + "'", "is not one of process, system"});
}

// A Mailbox handle that detach() (or leaving a `with`) lets go of; the mailbox stays.
class PyMailbox {
 public:
  explicit PyMailbox(Mailbox mailbox) : mailbox_(std::move(mailbox)), name_(mailbox_->name()) {}

  Mailbox& mailbox() {
    if (!mailbox_) raise(Error{Errc::closed, "mailbox '" + name_ + "'", "this handle was detached"});
    return *mailbox_;
  }
  void detach() noexcept { mailbox_.reset(); }
  const std::string& name() const noexcept { return name_; }
  std::string object() const { return "mailbox '" + name_ + "'"; }

  void send(const py::buffer& message, Timeout timeout) {
    Mailbox& box = mailbox();
    const py::buffer_info bytes = message.request();
    if (bytes.ndim > 1 && bytes.strides.back() != bytes.itemsize) {
      raise(Error{Errc::invalid_argument, "mailbox '" + name_ + "'", "a message must be contiguous bytes"});
    }
    const std::span<const std::byte> view{static_cast<const std::byte*>(bytes.ptr),
                                          static_cast<std::size_t>(bytes.size * bytes.itemsize)};
    value_or_raise(wait_without_gil(timeout, [&](Deadline deadline) { return box.send(view, deadline); }), object());
  }

  py::bytes receive(Timeout timeout) {
    Mailbox& box = mailbox();
    value_or_raise(wait_without_gil(timeout, [&](Deadline deadline) { return box.receive(buffer_, deadline); }),
                   object());
    return {reinterpret_cast<const char*>(buffer_.data()), buffer_.size()};
  }

 private:
  std::optional<Mailbox> mailbox_;
  std::string name_;
  std::vector<std::byte> buffer_;  // reused by each receive
};

}  // namespace

void bind_mailbox(py::module_& module) {
  py::class_<PyMailbox>(module, "Mailbox",
                        "A named message queue: each message goes to exactly one receiver, in each sender's\n"
                        "order. Waits take `timeout`: None for ever, 0 not at all (WouldBlock), else seconds\n"
                        "(Timeout); they release the GIL, and Ctrl-C interrupts them within 100 ms, losing\n"
                        "nothing.")
      .def_static(
          "create",
          [](const std::string& name, const std::string& buffering, std::uint32_t capacity,
             std::uint32_t max_message_size, unsigned mode, const std::string& ownership) {
            const MailboxOptions options{.buffering = buffering_of(buffering),
                                         .capacity = capacity,
                                         .max_message_size = max_message_size,
                                         .mode = static_cast<mode_t>(mode),
                                         .ownership = ownership_of(ownership)};
            return PyMailbox{value_or_raise(Mailbox::create(name, options))};
          },
          py::arg("name"), py::kw_only(), py::arg("buffering") = "bounded", py::arg("capacity") = 64,
          py::arg("max_message_size") = 4096, py::arg("mode") = 0600, py::arg("ownership") = "process",
          "Creates mailbox `name`. buffering: 'bounded' (a sender waits while `capacity` messages\n"
          "are queued), 'zero' (a send returns once a receiver took it) or 'unbounded'. ownership:\n"
          "'process' (removed when this process exits) or 'system' (until removed). A\n"
          "'nats://host:port/NAME' name makes it on that NATS server.")
      .def_static(
          "open", [](const std::string& name) { return PyMailbox{value_or_raise(Mailbox::open(name))}; },
          py::arg("name"), "Opens mailbox `name`.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Mailbox::remove(name)); }, py::arg("name"),
          "Removes mailbox `name`: its users get Closed.")
      .def_static("list", py::overload_cast<>(&Mailbox::list), "The names of this machine's mailboxes.")
      .def_property_readonly("name", &PyMailbox::name)
      .def_property_readonly("buffering", [](PyMailbox& self) { return buffering_name(self.mailbox().buffering()); })
      .def_property_readonly("capacity", [](PyMailbox& self) { return self.mailbox().capacity(); })
      .def_property_readonly("max_message_size", [](PyMailbox& self) { return self.mailbox().max_message_size(); })
      .def_property_readonly("queued", [](PyMailbox& self) { return self.mailbox().queued(); },
                             "Messages queued now.")
      .def_property_readonly("closed", [](PyMailbox& self) { return self.mailbox().closed(); })
      .def("send", &PyMailbox::send, py::arg("message"), py::arg("timeout") = py::none(),
           "Sends `message` (bytes, bytearray, memoryview, a numpy array: any contiguous buffer).")
      .def("receive", &PyMailbox::receive, py::arg("timeout") = py::none(),
           "The next message, as bytes. Closed once the mailbox is closed and drained.")
      .def(
          "close", [](PyMailbox& self) { value_or_raise(self.mailbox().close()); },
          "Closes the mailbox for everyone: sends fail, receivers drain what is queued, then Closed.")
      .def("detach", &PyMailbox::detach, "Lets go of this handle; the mailbox stays.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyMailbox& self, py::args) { self.detach(); })
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyMailbox& self) {
             Mailbox& box = self.mailbox();
             std::vector<std::byte> message;
             auto received = wait_without_gil(std::nullopt, [&](Deadline deadline) { return box.receive(message, deadline); });
             if (!received && received.error() == Errc::closed) throw py::stop_iteration();
             value_or_raise(std::move(received), self.object());
             return py::bytes(reinterpret_cast<const char*>(message.data()), message.size());
           })
      .def("__repr__", [](const PyMailbox& self) { return "<shmbox.Mailbox '" + self.name() + "'>"; });
}

}  // namespace shmbox::python
