// shmbox.Server / Client: request/response between processes; waits release the GIL.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "shmbox/service.hpp"

namespace shmbox::python {
namespace {

py::bytes bytes_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string service_object(const std::string& name) { return "service '" + name + "'"; }

struct PyServer {
  Server server;
  std::string object;
  OneThreadAtATime use;
};

// A request a server took. Left unanswered (dropped, or a `with` block that ends without an
// answer) it fails the client's call; a block that raises fails it with the exception's text.
struct PyRequest {
  std::optional<Request> request;
  std::string object;

  Request& taken() {
    if (!request) raise(Error{Errc::invalid_argument, object, "this request was answered already"});
    return *request;
  }
  // Sends through `send` (an answer, an end or a failure), which ends the request.
  template <class Send>
  void finish(Send&& send) {
    Request& current = taken();
    Result<void> sent = [&] {
      const py::gil_scoped_release unlocked;  // the client's mailbox may be full for a moment
      return send(current);
    }();
    request.reset();
    value_or_raise(std::move(sent), object);
  }
};

struct PyClient {
  Client client;
  std::string object;
  OneThreadAtATime use;  // its calls' too: their answers share its mailbox
};

// A call's answers to come. What answer() gathered before a timeout stays for the next ask.
struct PyCall {
  Call call;
  py::object client;
  Deadline sent_with;  // its deadline: no answer comes after it
  std::vector<std::byte> gathered;

  PyClient& owner() const { return client.cast<PyClient&>(); }

  // The next part, waiting at most until the earlier of `timeout` and the call's deadline.
  Result<std::optional<std::vector<std::byte>>> next_part(Timeout timeout) {
    PyClient& self = owner();
    const OneThreadAtATime::Use in_use{self.use, self.object};
    return wait_without_gil(earlier(deadline_of(timeout), sent_with),
                            [&](Deadline deadline) { return call.next_part(deadline); });
  }
};

}  // namespace

void bind_service(py::module_& module) {
  py::class_<PyRequest>(module, "Request",
                        "A request a server took: answer it once (answer or fail), or as a stream\n"
                        "(answer_part, then end). As a context manager, a block that raises fails it with\n"
                        "the exception's text; one that ends without answering it fails it as dropped.")
      .def_property_readonly("data", [](PyRequest& self) { return bytes_of(self.taken().data()); })
      .def_property_readonly("id", [](PyRequest& self) { return self.taken().id(); }, "the client's number for it")
      .def_property_readonly("client_pid", [](PyRequest& self) { return self.taken().client_pid(); })
      .def_property_readonly("takes", [](PyRequest& self) { return self.taken().takes(); },
                             "servers that took it, this one included (more than 1: one died holding it)")
      .def(
          "answer",
          [](PyRequest& self, const py::object& answer) {
            const ContiguousBytes bytes{answer, self.object};
            self.finish([&](Request& request) { return request.answer(bytes.view()); });
          },
          py::arg("answer"), "The whole answer; ends the request.")
      .def(
          "answer_part",
          [](PyRequest& self, const py::object& part) {
            const ContiguousBytes bytes{part, self.object};
            Request& request = self.taken();
            Result<void> sent = [&] {
              const py::gil_scoped_release unlocked;
              return request.answer_part(bytes.view());
            }();
            value_or_raise(std::move(sent), self.object);
          },
          py::arg("part"), "One answer of a stream; the client gets them in order.")
      .def("end", [](PyRequest& self) { self.finish([](Request& request) { return request.end(); }); },
           "Ends a stream.")
      .def(
          "fail", [](PyRequest& self, const std::string& why) {
            self.finish([&](Request& request) { return request.fail(why); });
          },
          py::arg("why"), "Fails the client's call (TaskFailed) with `why`; ends the request.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRequest& self, const py::object& type, const py::object& value, const py::object&) {
        if (!self.request) return;
        if (!type.is_none()) {
          const std::string why = py::str(value);  // with the GIL, before finish lets go of it
          self.finish([&](Request& request) { return request.fail(why); });
          return;
        }
        const py::gil_scoped_release unlocked;
        self.request.reset();  // unanswered: the client is told it was dropped
      });

  py::class_<PyServer>(module, "Server",
                       "One of the servers of a service: the servers of a service share its requests,\n"
                       "each request going to exactly one. A server killed before it answers loses\n"
                       "nothing: the request goes to another. Timeouts as for Mailbox.")
      .def_static(
          "join",
          [](const std::string& name, std::uint32_t capacity, std::uint32_t max_request_size, std::uint32_t attempts,
             unsigned mode) {
            const ServiceOptions options{.capacity = capacity,
                                         .max_request_size = max_request_size,
                                         .attempts = attempts,
                                         .mode = static_cast<mode_t>(mode)};
            return PyServer{value_or_raise(Server::join(name, options)), service_object(name), {}};
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = 64, py::arg("max_request_size") = 65536,
          py::arg("attempts") = 3, py::arg("mode") = 0600,
          "Joins service `name`, making it if there is none. attempts: servers a request may see\n"
          "die before it fails.")
      .def_static(
          "open",
          [](const std::string& name, std::uint32_t attempts) {
            return PyServer{value_or_raise(Server::open(name, {.attempts = attempts})), service_object(name), {}};
          },
          py::arg("name"), py::kw_only(), py::arg("attempts") = 3, "Joins service `name` only if it exists.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Server::remove(name)); }, py::arg("name"),
          "Removes service `name`: its waiting servers and clients get Closed.")
      .def_property_readonly("name", [](const PyServer& self) { return self.server.name(); })
      .def(
          "next",
          [](PyServer& self, Timeout timeout) {
            auto request = [&] {
              const OneThreadAtATime::Use in_use{self.use, self.object};
              return wait_without_gil(timeout, [&](Deadline deadline) { return self.server.next(deadline); });
            }();
            return PyRequest{value_or_raise(std::move(request), self.object), self.object};
          },
          py::arg("timeout") = py::none(),
          "The next request to answer (those whose client died or whose deadline passed are\n"
          "dropped on the way). Closed once the service is removed.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyServer& self) {
        auto request = [&] {
          const OneThreadAtATime::Use in_use{self.use, self.object};
          return wait_without_gil(std::nullopt, [&](Deadline deadline) { return self.server.next(deadline); });
        }();
        if (!request && request.error() == Errc::closed) throw py::stop_iteration();
        return PyRequest{value_or_raise(std::move(request), self.object), self.object};
      });

  py::class_<PyCall>(module, "Call", "A request sent, its answers to come.")
      .def_property_readonly("id", [](const PyCall& self) { return self.call.id(); })
      .def_property_readonly("ended", [](const PyCall& self) { return self.call.ended(); })
      .def(
          "next_part",
          [](PyCall& self, Timeout timeout) -> py::object {
            auto part = value_or_raise(self.next_part(timeout), self.owner().object);
            if (!part) return py::none();
            return bytes_of(*part);
          },
          py::arg("timeout") = py::none(),
          "The next answer of a stream, or None once the server ended it. Timeout leaves the\n"
          "call going: ask again.")
      .def(
          "answer",
          [](PyCall& self, Timeout timeout) {
            for (;;) {
              auto part = value_or_raise(self.next_part(timeout), self.owner().object);
              if (!part) break;
              self.gathered.insert(self.gathered.end(), part->begin(), part->end());
            }
            return bytes_of(std::exchange(self.gathered, {}));
          },
          py::arg("timeout") = py::none(),
          "The whole answer: every part until the end, joined. After a Timeout, asking again goes\n"
          "on from where it stopped.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyCall& self) {
        auto part = value_or_raise(self.next_part(std::nullopt), self.owner().object);
        if (!part) throw py::stop_iteration();
        return bytes_of(*part);
      });

  py::class_<PyClient>(module, "Client", "A client of a service.")
      .def_static(
          "connect",
          [](const std::string& name, std::uint32_t max_answer_size, std::uint32_t capacity) {
            const ClientOptions options{.max_answer_size = max_answer_size, .capacity = capacity};
            return PyClient{value_or_raise(Client::connect(name, options)), service_object(name), {}};
          },
          py::arg("name"), py::kw_only(), py::arg("max_answer_size") = 65536, py::arg("capacity") = 16,
          "A client of service `name`, which must exist. capacity: calls open at once.")
      .def_property_readonly("name", [](const PyClient& self) { return self.client.name(); })
      .def_property_readonly("max_request_size", [](const PyClient& self) { return self.client.max_request_size(); })
      .def(
          "send",
          [](py::object self, const py::object& request, Timeout timeout) {
            PyClient& client = self.cast<PyClient&>();
            const ContiguousBytes bytes{request, client.object};
            const Deadline deadline = deadline_of(timeout);
            const OneThreadAtATime::Use in_use{client.use, client.object};
            // Sent once with the whole deadline: the servers read it from the request.
            auto call =
                wait_whole_without_gil(timeout, [&](Deadline whole) { return client.client.send(bytes.view(), whole); });
            return PyCall{value_or_raise(std::move(call), client.object), std::move(self),
                          deadline.is_none() ? Deadline::forever() : deadline, {}};
          },
          py::arg("request"), py::arg("timeout") = py::none(),
          "Sends `request` and returns at once, a Call; servers do not take it up after `timeout`.")
      .def(
          "call",
          [](py::object self, const py::object& request, Timeout timeout) {
            // The answer waits until the call's deadline at most.
            return self.attr("send")(request, timeout).attr("answer")(timeout);
          },
          py::arg("request"), py::arg("timeout") = py::none(),
          "Sends `request` and waits for its whole answer (TaskFailed if a server failed it).");
}

}  // namespace shmbox::python
