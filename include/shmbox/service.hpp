// Request/response: a client sends a request to a service by name and gets the answer
// (or a stream of answers that the server ends) back to itself alone. The servers of one
// service share its requests: each request goes to exactly one of them.
//
//   // any number of server processes:
//   auto server = shmbox::Server::join("resize").value();
//   for (;;) {
//     auto request = server.next().value();
//     (void)request.answer(resize(request.data()));
//   }
//
//   // a client:
//   auto client = shmbox::Client::connect("resize").value();
//   auto small = client.call(image, 2s);             // the answer, or Errc::timeout at 2 s
//   auto call = client.send(image).value();          // not waiting: the answer comes later
//   ...
//   auto later = call.answer(1s);
//
// A service is a mailbox of requests (named after the service, owned by the system: it
// stays until Server::remove); each client has a mailbox of its own for its answers,
// owned by its process.
//
// Guarantees (docs/design.md, "Request/response"):
//   - A server holds the request it took in the service's mailbox until it has answered:
//     killed before that, at any instruction, the request goes to another server (or to
//     the next one that joins). A request whose servers die `attempts` times is answered
//     with an error (Errc::task_failed), never retried for ever.
//   - A client gets each answer once, in order: what a server that died had already sent
//     is not given again when another server answers the same request afresh.
//   - A request carries its client's deadline: a server does not take it up once the
//     deadline has passed, or once its client has died. A client that dies leaves no
//     resources behind: its answer mailbox goes with its process (or with gc).
//   - The client waits at most until its deadline: Errc::timeout then, naming the request.
//
// A name "nats://host:port/NAME" is a service on that NATS server, reached from any
// machine over NATS request/reply: the same calls and guarantees, a server's death told
// by its silence (no `working` for a second) rather than by its process (docs/design.md,
// "Services on NATS").
//
// Thread contract: a Server and the Requests it took are used by one thread at a time, as
// are a Client and its Calls. Handles belong to the process that made them (a forked
// child makes its own).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
class ServerBackend;
class RequestBackend;
class ClientBackend;
}  // namespace detail

struct ServiceOptions {
  std::uint32_t capacity = 64;             // requests queued at most; clients wait for room
  std::uint32_t max_request_size = 65536;  // bytes
  std::uint32_t attempts = 3;              // servers a request may see die before it fails
  mode_t mode = 0600;                      // of the service's mailbox, made by the first server
  WaitPolicy wait{};
};

struct ClientOptions {
  std::uint32_t max_answer_size = 65536;  // bytes of one answer (or part of a stream)
  std::uint32_t capacity = 16;            // answers queued for this client at most; calls open at most
  WaitPolicy wait{};
};

// A request a server took: answer it once (answer, or fail), or as a stream (answer_part
// as often as needed, then end). Destroyed unanswered, it fails the client's call ("the
// server dropped it unanswered"). A server that dies holding it loses nothing: another
// server takes it afresh.
class Request {
 public:
  Request(Request&&) noexcept;
  Request& operator=(Request&&) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  std::span<const std::byte> data() const noexcept;
  std::uint64_t id() const noexcept;  // the client's number for it
  pid_t client_pid() const noexcept;
  // How many servers have taken it, this one included (more than 1: one died holding it).
  std::uint32_t takes() const noexcept;

  // The whole answer; ends the request. An answer over the client's max_answer_size is
  // refused (Errc::too_large) and the client told so (its call fails, naming the size).
  [[nodiscard]] Result<void> answer(std::span<const std::byte> answer);
  // One answer of a stream; the client gets them in order.
  [[nodiscard]] Result<void> answer_part(std::span<const std::byte> part);
  // Ends a stream.
  [[nodiscard]] Result<void> end();
  // Fails the client's call with Errc::task_failed and `why`; ends the request.
  [[nodiscard]] Result<void> fail(std::string_view why);

 private:
  friend class Server;
  Request() noexcept;
  [[nodiscard]] Result<void> send_answer(int kind, std::span<const std::byte> bytes, const char* what);
  std::unique_ptr<detail::RequestBackend> backend_;
};

class Server {
 public:
  // Joins the service `name` as one of its servers, making its mailbox if there is none.
  [[nodiscard]] static Result<Server> join(std::string_view name, const ServiceOptions& options = {});
  // Joins the service `name` only if it exists (Errc::not_found otherwise): for a server
  // that must not bring back a service that was removed. Of `options`, attempts and wait
  // count (the rest were fixed when the service was made).
  [[nodiscard]] static Result<Server> open(std::string_view name, const ServiceOptions& options = {});
  // Removes the service: waiting servers fail with Errc::closed, and so do clients waiting
  // for an answer (within 100 ms).
  [[nodiscard]] static Result<void> remove(std::string_view name);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();

  // The next request to answer. Requests whose client has died or whose deadline has
  // passed are dropped on the way, unanswered. Errc::closed once the service is removed.
  [[nodiscard]] Result<Request> next(Deadline deadline = forever);

  const std::string& name() const noexcept;

 private:
  Server() noexcept;
  std::shared_ptr<detail::ServerBackend> backend_;
};

// A request sent, its answers to come.
class Call {
 public:
  Call(Call&&) noexcept;
  Call& operator=(Call&&) noexcept;
  ~Call();

  // The next answer of a stream; nullopt once the server ended it. Errc::timeout at the
  // deadline (the call goes on: ask again); Errc::task_failed if the server failed it.
  [[nodiscard]] Result<std::optional<std::vector<std::byte>>> next_part(Deadline deadline = forever);
  // The whole answer: every part until the end, joined.
  [[nodiscard]] Result<std::vector<std::byte>> answer(Deadline deadline = forever);
  bool ended() const noexcept;
  std::uint64_t id() const noexcept;

 private:
  friend class Client;
  Call() noexcept;
  std::shared_ptr<detail::ClientBackend> client_;
  std::uint64_t id_ = 0;
  std::uint64_t next_part_ = 0;  // the index of the part it waits for
  bool ended_ = false;
  Deadline deadline_ = forever;  // the deadline it was sent with
};

class Client {
 public:
  // A client of the service `name`, which must exist (a server has joined it once).
  [[nodiscard]] static Result<Client> connect(std::string_view name, const ClientOptions& options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Sends `request` and waits for its whole answer, until `deadline` (no_wait: only an
  // answer there at once, which is rarely so).
  [[nodiscard]] Result<std::vector<std::byte>> call(std::span<const std::byte> request, Deadline deadline = forever);
  // Sends `request` (waiting for room until `deadline`) and returns at once; servers do
  // not take it up after `deadline`, and the Call waits for answers until then at most.
  // no_wait: sent only if there is room now, and then with no deadline. At most
  // ClientOptions::capacity calls may be open at once (Errc::invalid_argument): their
  // answers share one mailbox.
  [[nodiscard]] Result<Call> send(std::span<const std::byte> request, Deadline deadline = forever);

  const std::string& name() const noexcept;
  std::size_t max_request_size() const noexcept;

 private:
  Client() noexcept;
  std::shared_ptr<detail::ClientBackend> backend_;
};

}  // namespace shmbox
