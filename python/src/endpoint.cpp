// shmbox.Endpoint (direct communication between named processes) and shmbox.Selector
// (waiting on several mailboxes, subscribers and endpoints at once); waits release the GIL.
#include <string>
#include <utility>
#include <vector>

#include "handles.hpp"
#include "shmbox/selector.hpp"

namespace shmbox::python {
namespace {

// What a Python Selector watches: the C++ selector, and the Python handles in the order of
// its indexes (kept alive, and kept from letting go of what is watched, until close()).
class PySelector {
 public:
  PySelector() = default;
  PySelector(const PySelector&) = delete;
  PySelector& operator=(const PySelector&) = delete;
  ~PySelector() { stop_watching(); }

  void add(const py::object& handle, const std::string& interest) {
    if (interest != "receive" && interest != "send") {
      raise(Error{Errc::invalid_argument, "interest '" + interest + "'", "is not one of receive, send"});
    }
    const auto refuse_send = [&](const std::string& object) {
      if (interest == "send") raise(Error{Errc::invalid_argument, object, "is watched for messages to receive only"});
    };
    const OneThreadAtATime::Use in_use{use_, "selector"};
    if (py::isinstance<PyMailbox>(handle)) {
      PyMailbox& box = handle.cast<PyMailbox&>();
      value_or_raise(selector_.add(box.mailbox(), interest == "send" ? Interest::send : Interest::receive),
                     box.object());
      box.watchers().add();
    } else if (py::isinstance<PySubscriber>(handle)) {
      PySubscriber& subscriber = handle.cast<PySubscriber&>();
      refuse_send(subscriber.object);
      value_or_raise(selector_.add(subscriber.handle), subscriber.object);
    } else if (py::isinstance<PyEndpoint>(handle)) {
      PyEndpoint& endpoint = handle.cast<PyEndpoint&>();
      refuse_send(endpoint.object());
      value_or_raise(selector_.add(endpoint.endpoint()), endpoint.object());
      endpoint.watchers().add();
    } else {
      raise(Error{Errc::invalid_argument, "selector",
                  "watches Mailbox, Subscriber and Endpoint handles, not " +
                      std::string{py::str(handle.get_type().attr("__name__"))}});
    }
    watched_.push_back(handle);
  }

  py::object wait(Timeout timeout) {
    const std::size_t ready = [&] {
      const OneThreadAtATime::Use in_use{use_, "selector"};
      return value_or_raise(wait_without_gil(timeout, [&](Deadline deadline) { return selector_.wait(deadline); }),
                            "selector");
    }();
    return watched_.at(ready);
  }

  // Lets go of every handle (with the GIL held, as Python objects are touched).
  void close() {
    if (use_.in_use()) raise(OneThreadAtATime::in_use_error("selector"));
    stop_watching();
  }

  std::size_t size() const noexcept { return watched_.size(); }

 private:
  void stop_watching() noexcept {
    for (const py::object& handle : watched_) {
      if (py::isinstance<PyMailbox>(handle)) handle.cast<PyMailbox&>().watchers().remove();
      if (py::isinstance<PyEndpoint>(handle)) handle.cast<PyEndpoint&>().watchers().remove();
    }
    watched_.clear();
    selector_ = Selector{};
  }

  Selector selector_;
  std::vector<py::object> watched_;
  OneThreadAtATime use_;
};

}  // namespace

void bind_endpoint(py::module_& module) {
  py::class_<PyEndpoint>(module, "Endpoint",
                         "This process's inbox under a name, for direct communication: send(to, message)\n"
                         "reaches the process that joined as `to`; receive() takes the next message from\n"
                         "anyone and says who sent it. Each sender has its own lane, so one flooding peer\n"
                         "never holds up another. The name is free again when the handle leaves (or its\n"
                         "process dies). Timeouts as for Mailbox.")
      .def_static(
          "join",
          [](const std::string& name, const std::string& buffering, std::uint32_t capacity,
             std::uint32_t max_message_size, unsigned mode, std::uint32_t max_peers) {
            const EndpointOptions options{.buffering = buffering_of(buffering),
                                          .capacity = capacity,
                                          .max_message_size = max_message_size,
                                          .mode = static_cast<mode_t>(mode),
                                          .max_peers = max_peers};
            return std::make_unique<PyEndpoint>(value_or_raise(Endpoint::join(name, options)));
          },
          py::arg("name"), py::kw_only(), py::arg("buffering") = "bounded", py::arg("capacity") = 64,
          py::arg("max_message_size") = 4096, py::arg("mode") = 0600, py::arg("max_peers") = 32,
          "Joins as `name` (AlreadyExists while a live process holds it). buffering, capacity:\n"
          "of each sender's lane into it.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Endpoint::remove(name)); }, py::arg("name"),
          "Removes endpoint `name` whose process has gone (InUse while it lives).")
      .def_static("list", &Endpoint::list, "The names of this machine's endpoints.")
      .def_property_readonly("name", &PyEndpoint::name)
      .def(
          "send",
          [](PyEndpoint& self, const std::string& to, const py::object& message, Timeout timeout) {
            const auto in_use = self.use();
            Endpoint& endpoint = self.endpoint();
            const ContiguousBytes bytes{message, self.object()};
            // A zero-capacity lane that takes its message back when a slice ends loses no
            // place: the lane holds this sender's messages only.
            value_or_raise(
                wait_without_gil(timeout, [&](Deadline deadline) { return endpoint.send(to, bytes.view(), deadline); }),
                "endpoint '" + to + "'");
          },
          py::arg("to"), py::arg("message"), py::arg("timeout") = py::none(),
          "Sends `message` (any contiguous buffer) to the process that joined as `to` (NotFound if\n"
          "none has).")
      .def(
          "receive",
          [](PyEndpoint& self, Timeout timeout) {
            Endpoint& endpoint = self.endpoint();
            std::vector<std::byte> message;
            auto from = [&] {
              const auto in_use = self.use();
              return wait_without_gil(timeout, [&](Deadline deadline) { return endpoint.receive(message, deadline); });
            }();
            std::string sender = value_or_raise(std::move(from), self.object());
            return py::make_tuple(std::move(sender), bytes_of(message));
          },
          py::arg("timeout") = py::none(), "The next message from anyone, as (sender's name, bytes).")
      .def(
          "receive_from",
          [](PyEndpoint& self, const std::string& sender, Timeout timeout) {
            Endpoint& endpoint = self.endpoint();
            std::vector<std::byte> message;
            auto received = [&] {
              const auto in_use = self.use();
              return wait_without_gil(timeout, [&](Deadline deadline) {
                return endpoint.receive_from(sender, message, deadline);
              });
            }();
            value_or_raise(std::move(received), self.object());
            return bytes_of(message);
          },
          py::arg("sender"), py::arg("timeout") = py::none(), "The next message from `sender` only, as bytes.")
      .def("leave", &PyEndpoint::leave, "Leaves: the endpoint goes, and its name is free again.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyEndpoint& self, py::args) { self.leave(); })
      .def("__repr__", [](const PyEndpoint& self) { return "<shmbox.Endpoint '" + self.name() + "'>"; });

  py::class_<PySelector>(module, "Selector",
                         "Waits on several mailboxes, subscribers and endpoints at once, so that one\n"
                         "process serves many links. Readiness is a hint (another process may take the\n"
                         "message first): follow wait() with a call with timeout=0.")
      .def(py::init<>())
      .def("add", &PySelector::add, py::arg("handle"), py::arg("interest") = "receive",
           "Watches a Mailbox (interest 'receive' or 'send'), a Subscriber or an Endpoint. A\n"
           "watched Mailbox or Endpoint cannot be detached or left until the selector is closed.")
      .def("wait", &PySelector::wait, py::arg("timeout") = py::none(),
           "The first handle that is ready (handles in turn, so a busy one cannot starve the rest).")
      .def("close", &PySelector::close, "Stops watching every handle.")
      .def("__len__", &PySelector::size)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySelector& self, py::args) { self.close(); });
}

}  // namespace shmbox::python
