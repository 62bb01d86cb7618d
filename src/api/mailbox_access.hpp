// What the library's own code may do with a Mailbox that its users may not: reach its
// backend (a selector sleeps on a local one's memory), and make one of a backend.
#pragma once

#include "mailbox/backend.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::detail {

struct MailboxAccess {
  // nullptr for a moved-from handle.
  static MailboxBackend* backend(const Mailbox& mailbox) noexcept { return mailbox.backend_.get(); }
  static Mailbox make(std::unique_ptr<MailboxBackend> backend) noexcept { return Mailbox{std::move(backend)}; }
};

}  // namespace shmbox::detail
