// Services held by a NATS server or cluster: a name "nats://host:port/NAME" selects one.
// Requests travel over NATS request/reply to a queue group of servers; the client keeps a
// lease on each request it sent, and sends it again when its server goes quiet
// (service/nats_service.cpp gives the protocol).
#pragma once

#include <memory>
#include <string_view>

#include "remote/remote_name.hpp"
#include "service/service_backend.hpp"

namespace shmbox::detail {

inline bool is_nats_service(std::string_view name) noexcept { return is_remote_name(name); }

struct NatsServices {
  static Result<std::shared_ptr<ServerBackend>> join(std::string_view name, const ServiceOptions& options);
  static Result<std::shared_ptr<ServerBackend>> open(std::string_view name, const ServiceOptions& options);
  static Result<void> remove(std::string_view name);
  static Result<std::shared_ptr<ClientBackend>> connect(std::string_view name, const ClientOptions& options);
};

}  // namespace shmbox::detail
