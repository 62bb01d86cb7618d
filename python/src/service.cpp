// shmbox.Server / Client: request/response between processes; waits release the GIL.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "shmbox/service.hpp"

namespace shmbox::python {
namespace {

std::string service_object(const std::string& name) { return "service '" + name + "'"; }

struct PyServer {
  Server server;
  std::string object;
  OneThreadAtATime use;
};

// A request a server took, used through its server (one thread at a time, as the server).
// Left unanswered (dropped, or a `with` block that ends without an answer) it fails the
// client's call; a block that raises fails it with the exception's text.
struct PyRequest {
  PyRequest(py::object taken_by, Request taken)
      : server(std::move(taken_by)), object(server.cast<PyServer&>().object), request(std::move(taken)) {}
  PyRequest(const PyRequest&) = delete;
  PyRequest& operator=(const PyRequest&) = delete;
  // Nothing else holds it now: what is left goes at once, or after the call of another
  // thread that uses the server.
  ~PyRequest() {
    if (!request) return;
    auto dropped = std::make_shared<Request>(std::move(*request));
    request.reset();
    use().run_or_defer(let_go(std::move(dropped), std::nullopt));
  }

  OneThreadAtATime& use() const { return server.cast<PyServer&>().use; }
  Request& taken() {
    if (!request) raise(Error{Errc::invalid_argument, object, "this request was answered already"});
    return *request;
  }
  // Sends through `send` (an answer part, an answer, an end or a failure). A failure ends
  // the request in the library (its slot is given back), and so does anything but a part.
  template <class Send>
  void send_through(Send&& send, bool ends) {
    const OneThreadAtATime::Use in_use{use(), object};
    Request& current = taken();
    Result<void> sent = [&] {
      const py::gil_scoped_release unlocked;  // the client's mailbox may be full for a moment
      return send(current);
    }();
    if (ends || !sent) request.reset();
    value_or_raise(std::move(sent), object);
  }
  // The end of a `with` block: an unanswered request fails (`why`: the block's exception)
  // or is dropped, never raising over the block's own exception; through the server's
  // guard, after another thread's call on it if one is in it (the request stays the
  // PyRequest's until then: that call may be using it).
  static void end_of_block(const py::object& self_object, std::optional<std::string> why) {
    self_object.cast<PyRequest&>().use().run_or_defer([self_object, why = std::move(why)]() {
      PyRequest& self = self_object.cast<PyRequest&>();
      if (!self.request) return;
      auto ending = std::make_shared<Request>(std::move(*self.request));
      self.request.reset();
      let_go(std::move(ending), why)();
    });
  }
  // Fails (or drops) a request with the GIL released: the client's mailbox may be full.
  static std::function<void()> let_go(std::shared_ptr<Request> request, std::optional<std::string> why) {
    return [request = std::move(request), why = std::move(why)]() mutable {
      const py::gil_scoped_release unlocked;
      if (why) (void)request->fail(*why);  // a client that went needs no answer
      request.reset();                      // unanswered: the client is told it was dropped
    };
  }

  py::object server;
  std::string object;
  std::optional<Request> request;
};

struct PyClient {
  Client client;
  std::string object;
  OneThreadAtATime use;  // its calls' too: their answers share its mailbox
};

// A call's answers to come, used through its client. What answer() gathered before a
// timeout stays for the next ask.
struct PyCall {
  PyCall(py::object sent_by, Call sent, Deadline deadline)
      : client(std::move(sent_by)), call(std::make_shared<Call>(std::move(sent))), sent_with(deadline) {}
  PyCall(const PyCall&) = delete;
  PyCall& operator=(const PyCall&) = delete;
  // The client forgets the call (after another thread's call on it, if one is in it).
  ~PyCall() {
    owner().use.run_or_defer([forgotten = std::move(call)]() mutable { forgotten.reset(); });
  }

  PyClient& owner() const { return client.cast<PyClient&>(); }
  const std::string& object() const { return owner().object; }

  // The next part, waiting at most until `until` (and the call's deadline).
  Result<std::optional<std::vector<std::byte>>> next_part(Deadline until) {
    PyClient& self = owner();
    const OneThreadAtATime::Use in_use{self.use, self.object};
    return wait_without_gil(earlier(until, sent_with), [&](Deadline deadline) { return call->next_part(deadline); });
  }

  py::object client;
  std::shared_ptr<Call> call;
  Deadline sent_with;  // its deadline: no answer comes after it
  std::vector<std::byte> gathered;
};

Result<Request> next_request(PyServer& server, Timeout timeout) {
  const OneThreadAtATime::Use in_use{server.use, server.object};
  return wait_without_gil(timeout, [&](Deadline deadline) { return server.server.next(deadline); });
}

}  // namespace

void bind_service(py::module_& module) {
  py::class_<PyRequest>(module, "Request",
                        "A request a server took: answer it once (answer or fail), or as a stream\n"
                        "(answer_part, then end). As a context manager, a block that raises fails it with\n"
                        "the exception's text; one that ends without answering it fails it as dropped.")
      .def_property_readonly("data",
                             [](PyRequest& self) {
                               const OneThreadAtATime::Use in_use{self.use(), self.object};
                               return bytes_of(self.taken().data());
                             })
      .def_property_readonly("id", [](PyRequest& self) { return self.taken().id(); }, "the client's number for it")
      .def_property_readonly("client_pid", [](PyRequest& self) { return self.taken().client_pid(); })
      .def_property_readonly("takes", [](PyRequest& self) { return self.taken().takes(); },
                             "servers that took it, this one included (more than 1: one died holding it)")
      .def(
          "answer",
          [](PyRequest& self, const py::object& answer) {
            const ContiguousBytes bytes{answer, self.object};
            self.send_through([&](Request& request) { return request.answer(bytes.view()); }, true);
          },
          py::arg("answer"), "The whole answer; ends the request.")
      .def(
          "answer_part",
          [](PyRequest& self, const py::object& part) {
            const ContiguousBytes bytes{part, self.object};
            self.send_through([&](Request& request) { return request.answer_part(bytes.view()); }, false);
          },
          py::arg("part"), "One answer of a stream; the client gets them in order.")
      .def("end", [](PyRequest& self) { self.send_through([](Request& request) { return request.end(); }, true); },
           "Ends a stream.")
      .def(
          "fail", [](PyRequest& self, const std::string& why) {
            self.send_through([&](Request& request) { return request.fail(why); }, true);
          },
          py::arg("why"), "Fails the client's call (TaskFailed) with `why`; ends the request.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](const py::object& self, const py::object& type, const py::object& value, const py::object&) {
        PyRequest::end_of_block(self, type.is_none() ? std::nullopt : std::optional<std::string>{py::str(value)});
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
          [](const py::object& self, Timeout timeout) {
            PyServer& server = self.cast<PyServer&>();
            return std::make_unique<PyRequest>(self, value_or_raise(next_request(server, timeout), server.object));
          },
          py::arg("timeout") = py::none(),
          "The next request to answer (those whose client died or whose deadline passed are\n"
          "dropped on the way). Closed once the service is removed.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](const py::object& self) {
        PyServer& server = self.cast<PyServer&>();
        auto request = next_request(server, std::nullopt);
        if (!request && request.error() == Errc::closed) throw py::stop_iteration();
        return std::make_unique<PyRequest>(self, value_or_raise(std::move(request), server.object));
      });

  py::class_<PyCall>(module, "Call", "A request sent, its answers to come.")
      .def_property_readonly("id", [](const PyCall& self) { return self.call->id(); })
      .def_property_readonly("ended", [](const PyCall& self) { return self.call->ended(); })
      .def(
          "next_part",
          [](PyCall& self, Timeout timeout) -> py::object {
            auto part = value_or_raise(self.next_part(deadline_of(timeout)), self.object());
            if (!part) return py::none();
            return bytes_of(*part);
          },
          py::arg("timeout") = py::none(),
          "The next answer of a stream, or None once the server ended it. Timeout leaves the\n"
          "call going: ask again.")
      .def(
          "answer",
          [](PyCall& self, Timeout timeout) {
            const Deadline whole = deadline_of(timeout);  // for the whole answer, not each part
            for (;;) {
              auto part = self.next_part(whole);
              if (!part && part.error() != Errc::timeout && part.error() != Errc::would_block) {
                self.gathered.clear();  // the call is over: no answer to go on with
              }
              const auto next = value_or_raise(std::move(part), self.object());
              if (!next) break;
              self.gathered.insert(self.gathered.end(), next->begin(), next->end());
            }
            return bytes_of(std::exchange(self.gathered, {}));
          },
          py::arg("timeout") = py::none(),
          "The whole answer: every part until the end, joined. After a Timeout, asking again goes\n"
          "on from where it stopped.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyCall& self) {
        auto part = value_or_raise(self.next_part(Deadline::forever()), self.object());
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
                wait_whole_without_gil(deadline, [&](Deadline whole) { return client.client.send(bytes.view(), whole); });
            return std::make_unique<PyCall>(self, value_or_raise(std::move(call), client.object),
                                            deadline.is_none() ? Deadline::forever() : deadline);
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
