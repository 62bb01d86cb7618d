// Services on this machine: a mailbox of requests named after the service, and a mailbox
// of answers per client (docs/design.md, "Request/response").
#pragma once

#include <memory>
#include <string_view>

#include "service/service_backend.hpp"

namespace shmbox::detail {

struct LocalServices {
  static Result<std::shared_ptr<ServerBackend>> join(std::string_view name, const ServiceOptions& options);
  static Result<std::shared_ptr<ServerBackend>> open(std::string_view name, const ServiceOptions& options);
  static Result<void> remove(std::string_view name);
  static Result<std::shared_ptr<ClientBackend>> connect(std::string_view name, const ClientOptions& options);
};

}  // namespace shmbox::detail
