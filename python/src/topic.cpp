// shmbox.Topic: every subscriber gets every message; its waits release the GIL.
#include <optional>
#include <string>
#include <vector>

#include "handles.hpp"
#include "lent.hpp"

namespace shmbox::python {
namespace {

Overflow overflow_of(const std::string& name) {
  if (name == "block") return Overflow::block;
  if (name == "overwrite") return Overflow::overwrite;
  raise(Error{Errc::invalid_argument, "overflow '" + name + "'", "is not one of block, overwrite"});
}

// What a subscriber received: the bytes, the topic's number for the message, and how many
// messages it lost just before it (overwritten before it read them).
struct PyDelivered {
  py::bytes data;
  std::uint64_t sequence = 0;
  std::uint64_t lost = 0;
};

std::string object_of(const std::string& name) { return "topic '" + name + "'"; }

// A message published, or an error naming the topic.
std::uint64_t publish(PyPublisher& self, const py::object& message, Timeout timeout) {
  const ContiguousBytes bytes{message, self.object};
  const OneThreadAtATime::Use in_use{self.use, self.object};
  return value_or_raise(
      wait_without_gil(timeout, [&](Deadline deadline) { return self.handle.publish(bytes.view(), deadline); }),
      self.object);
}

Result<PyDelivered> receive(PySubscriber& self, Timeout timeout) {
  std::vector<std::byte> message;
  Result<Delivered> delivered = [&] {
    const OneThreadAtATime::Use in_use{self.use, self.object};
    return wait_without_gil(timeout, [&](Deadline deadline) { return self.handle.receive(message, deadline); });
  }();
  if (!delivered) return std::unexpected(delivered.error());
  return PyDelivered{bytes_of(message), delivered->sequence, delivered->lost};
}

using PyTopicLoan = PyLent<TopicLoan>;
using PyTopicMessage = PyLent<TopicMessage>;

Result<void> give_back(TopicLoan& loan) {
  loan = TopicLoan{};
  return {};
}
Result<void> release(TopicMessage& message) {
  message.release();
  return {};
}

// Publishes a loan: its sequence number. In one piece: a publish that gives up gives the
// loan back, so a slice's end would lose it.
std::uint64_t publish_loan(PyTopicLoan& self, Timeout timeout) {
  PyPublisher& publisher = self.lender().cast<PyPublisher&>();
  return self.end([&](TopicLoan& loan) {
    return wait_whole_without_gil(timeout,
                                  [&](Deadline deadline) { return publisher.handle.publish(std::move(loan), deadline); });
  });
}

}  // namespace

void bind_topic(py::module_& module) {
  bind_lent_memory<TopicLoan>(module, "_TopicLoanMemory");
  bind_lent_memory<TopicMessage>(module, "_TopicMessageMemory");
  py::class_<PyTopicLoan>(module, "TopicLoan",
                          "Room for a message in the topic's memory, written in place through `data` (a\n"
                          "writable memoryview), then published. As a context manager it gives `data` and\n"
                          "publishes it at the end of the block (gives it back if the block raised).")
      .def_property_readonly("data", &PyTopicLoan::data)
      .def("publish", &publish_loan, py::arg("timeout") = py::none(),
           "Publishes what was written; its sequence number. Every view of `data` must be released\n"
           "first (BufferError otherwise). Refused (WouldBlock, Timeout), the room is given back.")
      .def("abandon", [](PyTopicLoan& self) { self.end(give_back); }, "Gives the room back unpublished.")
      .def("__enter__", &PyTopicLoan::data)
      .def("__exit__", [](PyTopicLoan& self, const py::object& type, const py::object&, const py::object&) {
        if (!type.is_none()) return self.end_quietly(give_back);
        (void)publish_loan(self, std::nullopt);
      });
  py::class_<PyTopicMessage>(module, "TopicMessage",
                             "A message read in place in the topic's memory: `data` is a read-only\n"
                             "memoryview, valid until release() (or the end of a `with` block). A\n"
                             "subscriber holds a few at once at most (the topic's held_per_subscriber).")
      .def_property_readonly("data", &PyTopicMessage::data)
      .def_property_readonly("sequence", [](const PyTopicMessage& self) { return self.lent().info().sequence; })
      .def_property_readonly("lost", [](const PyTopicMessage& self) { return self.lent().info().lost; },
                             "messages lost just before it")
      .def("release", [](PyTopicMessage& self) { self.end(release); },
           "Lets go of the message. Every view of `data` must be released first (BufferError\n"
           "otherwise).")
      .def("__enter__", &PyTopicMessage::data)
      .def("__exit__", [](PyTopicMessage& self, const py::object& type, const py::object&, const py::object&) {
        // Every subscriber has its own copy of the news: a block that raised lets go too.
        if (!type.is_none()) return self.end_quietly(release);
        self.end(release);
      });

  py::class_<PyDelivered>(module, "Delivered", "A message a subscriber received.")
      .def_readonly("data", &PyDelivered::data, "its bytes")
      .def_readonly("sequence", &PyDelivered::sequence, "the topic's number for it, from 1")
      .def_readonly("lost", &PyDelivered::lost, "messages lost just before it (overwritten before they were read)")
      .def("__repr__", [](const PyDelivered& self) {
        return "<shmbox.Delivered sequence=" + std::to_string(self.sequence) + " lost=" + std::to_string(self.lost) +
               " " + std::to_string(py::len(self.data)) + " bytes>";
      });

  py::class_<PyPublisher>(module, "Publisher", "Publishes into its topic: every subscriber gets every message.")
      .def(
          "loan",
          [](py::object self, std::size_t size) {
            PyPublisher& publisher = self.cast<PyPublisher&>();
            auto loan = [&] {
              const OneThreadAtATime::Use in_use{publisher.use, publisher.object};
              return publisher.handle.loan(size);
            }();
            return std::make_unique<PyTopicLoan>(self, publisher.use, nullptr, publisher.object,
                                                 value_or_raise(std::move(loan), publisher.object), true);
          },
          py::arg("size"),
          "Room for a message of `size` bytes in the topic's memory, to write in place (zero-copy;\n"
          "one loan at a time):\n"
          "    with publisher.loan(64) as room:\n"
          "        room[:5] = b'hello'   # published (all 64 bytes) at the end of the block")
      .def("publish", &publish, py::arg("message"), py::arg("timeout") = py::none(),
           "Publishes `message` (any contiguous buffer); its sequence number. A blocking topic waits\n"
           "while a live subscriber has not read the oldest message it keeps (WouldBlock with\n"
           "timeout=0, Timeout after `timeout` seconds).");

  py::class_<PySubscriber>(module, "Subscriber", "Receives every message published into its topic after it subscribed.")
      .def(
          "receive",
          [](PySubscriber& self, Timeout timeout) { return value_or_raise(receive(self, timeout), self.object); },
          py::arg("timeout") = py::none(), "The next message, a Delivered (data, sequence, lost).")
      .def(
          "receive_in_place",
          [](py::object self, Timeout timeout) {
            PySubscriber& subscriber = self.cast<PySubscriber&>();
            auto message = [&] {
              const OneThreadAtATime::Use in_use{subscriber.use, subscriber.object};
              return wait_without_gil(timeout,
                                      [&](Deadline deadline) { return subscriber.handle.receive_in_place(deadline); });
            }();
            return std::make_unique<PyTopicMessage>(self, subscriber.use, nullptr, subscriber.object,
                                                    value_or_raise(std::move(message), subscriber.object), false);
          },
          py::arg("timeout") = py::none(),
          "The next message, read in place (zero-copy) until released:\n"
          "    with subscriber.receive_in_place() as data:\n"
          "        total = numpy.frombuffer(data, dtype=numpy.int64).sum()")
      .def_property_readonly("lost", [](const PySubscriber& self) { return self.handle.lost(); },
                             "Messages lost so far (overwritten before they were read).")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PySubscriber& self) {
        auto delivered = receive(self, std::nullopt);
        if (!delivered && delivered.error() == Errc::closed) throw py::stop_iteration();  // the topic was removed
        return value_or_raise(std::move(delivered), self.object);
      });

  py::class_<Topic>(module, "Topic",
                    "A named topic: publishers write each message once into shared memory, and every\n"
                    "subscriber reads it. Timeouts as for Mailbox.")
      .def_static(
          "create",
          [](const std::string& name, std::uint32_t capacity, std::uint32_t history, std::uint32_t max_message_size,
             std::uint32_t max_subscribers, std::uint32_t max_publishers, std::uint32_t held_per_subscriber,
             const std::string& overflow, const std::string& ownership, unsigned mode) {
            const TopicOptions options{.capacity = capacity,
                                       .history = history,
                                       .max_message_size = max_message_size,
                                       .max_subscribers = max_subscribers,
                                       .max_publishers = max_publishers,
                                       .held_per_subscriber = held_per_subscriber,
                                       .overflow = overflow_of(overflow),
                                       .ownership = ownership_of(ownership),
                                       .mode = mode};
            return value_or_raise(Topic::create(name, options));
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = 64, py::arg("history") = 0,
          py::arg("max_message_size") = 4096, py::arg("max_subscribers") = 16, py::arg("max_publishers") = 8,
          py::arg("held_per_subscriber") = TopicOptions{}.held_per_subscriber, py::arg("overflow") = "block",
          py::arg("ownership") = "process", py::arg("mode") = 0600,
          "Creates topic `name`, keeping the last `capacity` messages, of which a late subscriber may\n"
          "ask for `history`. overflow: 'block' (publishers wait for the slowest live subscriber) or\n"
          "'overwrite' (slow subscribers lose the oldest, and are told). max_publishers=1 is the\n"
          "fastest topic (its publisher is its only writer). held_per_subscriber: messages a\n"
          "subscriber may hold in place at once.")
      .def_static(
          "open", [](const std::string& name) { return value_or_raise(Topic::open(name)); }, py::arg("name"),
          "Opens topic `name`.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Topic::remove(name)); }, py::arg("name"),
          "Removes topic `name`: its subscribers get Closed (and their iteration ends).")
      .def_static("list", py::overload_cast<>(&Topic::list), "The names of this machine's topics.")
      .def_property_readonly("name", &Topic::name)
      .def("publisher",
           [](const Topic& self) {
             return PyPublisher{value_or_raise(self.publisher(), object_of(self.name())), object_of(self.name()), {}};
           },
           "A publisher of this topic (one of its publisher slots).")
      .def(
          "subscribe",
          [](const Topic& self, std::uint32_t history) {
            return PySubscriber{value_or_raise(self.subscribe(history), object_of(self.name())), object_of(self.name()),
                                {}};
          },
          py::arg("history") = 0, "A subscriber, that first gets up to `history` messages published before.")
      .def("__repr__", [](const Topic& self) { return "<shmbox.Topic '" + self.name() + "'>"; });
}

}  // namespace shmbox::python
