// shmbox.Mailbox: named message queues, every waiting form, the GIL released while waiting.
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "handles.hpp"
#include "lent.hpp"

namespace shmbox::python {
namespace {

using PyLoan = PyLent<SendLoan>;
using PyMessage = PyLent<ReceivedMessage>;

Result<void> abandon_loan(SendLoan& loan) {
  loan.abandon();
  return {};
}
Result<void> release_message(ReceivedMessage& message) {
  message.release();
  return {};
}
Result<void> requeue_message(ReceivedMessage& message) {
  message.requeue();
  return {};
}

}  // namespace

void bind_mailbox(py::module_& module) {
  bind_lent_memory<SendLoan>(module, "_LoanMemory");
  bind_lent_memory<ReceivedMessage>(module, "_MessageMemory");
  py::class_<PyLoan>(module, "SendLoan",
                     "Room for a message in the mailbox, written in place through `data` (a writable\n"
                     "memoryview), then committed. As a context manager it gives `data` and commits all of\n"
                     "it at the end of the block (abandons it if the block raised).")
      .def_property_readonly("data", &PyLoan::data)
      .def(
          "commit",
          [](PyLoan& self, std::optional<std::size_t> size, Timeout timeout) {
            self.end([&](SendLoan& loan) {
              const std::size_t length = size.value_or(loan.data().size());
              return wait_whole_without_gil(timeout, [&](Deadline deadline) { return loan.commit(length, deadline); });
            });
          },
          py::arg("size") = py::none(), py::arg("timeout") = py::none(),
          "Sends the first `size` bytes (all by default). Every view of `data` must be released\n"
          "first (BufferError otherwise). A zero-capacity mailbox waits for a receiver (in one\n"
          "piece: Ctrl-C is seen once it ends).")
      .def("abandon", [](PyLoan& self) { self.end(abandon_loan); }, "Gives the room back unsent.")
      .def("__enter__", &PyLoan::data)
      .def("__exit__",
           [](PyLoan& self, const py::object& type, const py::object&, const py::object&) {
             if (!type.is_none()) return self.end_quietly(abandon_loan);
             self.end([](SendLoan& loan) {
               return wait_whole_without_gil(
                   std::nullopt, [&](Deadline deadline) { return loan.commit(loan.data().size(), deadline); });
             });
           });
  py::class_<PyMessage>(module, "ReceivedMessage",
                        "A message read in place: `data` is a read-only memoryview of it in the mailbox,\n"
                        "valid until release(). As a context manager it gives `data` and releases it at the\n"
                        "end of the block. A receiver that dies holding one loses nothing: the message goes\n"
                        "to another.")
      .def_property_readonly("data", &PyMessage::data)
      .def_property_readonly("sequence", [](const PyMessage& self) { return self.lent().sequence(); })
      .def("release", [](PyMessage& self) { self.end(release_message); },
           "Takes the message out of the mailbox for good. Every view of `data` must be released\n"
           "first (BufferError otherwise).")
      .def("requeue", [](PyMessage& self) { self.end(requeue_message); }, "Puts the message back, first in line.")
      .def("__enter__", &PyMessage::data)
      .def("__exit__", [](PyMessage& self, const py::object& type, const py::object&, const py::object&) {
        // A block that raised did not finish with the message: it goes back, first in line.
        if (!type.is_none()) return self.end_quietly(requeue_message, true);
        self.end(release_message);
      });

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
      .def(
          "receive", [](PyMailbox& self, Timeout timeout) { return value_or_raise(self.receive(timeout), self.object()); },
          py::arg("timeout") = py::none(),
           "The next message, as bytes. Closed once the mailbox is closed and drained.")
      .def(
          "loan",
          [](py::object self, std::size_t size, Timeout timeout) {
            PyMailbox& box = self.cast<PyMailbox&>();
            Mailbox& mailbox = box.mailbox();
            auto loan = value_or_raise(
                [&] {
                  const auto in_use = box.use();
                  return wait_without_gil(timeout, [&](Deadline deadline) { return mailbox.loan(size, deadline); });
                }(),
                box.object());
            return std::make_unique<PyLoan>(self, box.one_thread(), &box.lent(), box.object(), std::move(loan), true);
          },
          py::arg("size"), py::arg("timeout") = py::none(),
          "Room for a message of up to `size` bytes, to write in place (zero-copy):\n"
          "    with box.loan(64) as room:\n"
          "        room[:5] = b'hello'   # committed (all 64 bytes) at the end of the block")
      .def(
          "receive_in_place",
          [](py::object self, Timeout timeout) {
            PyMailbox& box = self.cast<PyMailbox&>();
            Mailbox& mailbox = box.mailbox();
            auto message = value_or_raise(
                [&] {
                  const auto in_use = box.use();
                  return wait_without_gil(timeout, [&](Deadline deadline) { return mailbox.receive_in_place(deadline); });
                }(),
                box.object());
            return std::make_unique<PyMessage>(self, box.one_thread(), &box.lent(), box.object(), std::move(message),
                                               false);
          },
          py::arg("timeout") = py::none(),
          "The next message, read in place (zero-copy) until released:\n"
          "    with box.receive_in_place() as message:\n"
          "        total = numpy.frombuffer(message, dtype=numpy.int64).sum()")
      .def(
          "close", [](PyMailbox& self) { value_or_raise(self.mailbox().close()); },
          "Closes the mailbox for everyone: sends fail, receivers drain what is queued, then Closed.")
      .def("detach", &PyMailbox::detach, "Lets go of this handle; the mailbox stays.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyMailbox& self, py::args) { self.detach(); })
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyMailbox& self) {
             auto received = self.receive(std::nullopt);
             if (!received && received.error() == Errc::closed) throw py::stop_iteration();
             return value_or_raise(std::move(received), self.object());
           })
      .def("__repr__", [](const PyMailbox& self) { return "<shmbox.Mailbox '" + self.name() + "'>"; });
}

}  // namespace shmbox::python
