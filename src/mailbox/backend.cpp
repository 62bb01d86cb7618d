#include "mailbox/backend.hpp"

namespace shmbox::detail {
namespace {

Error needs_local(const std::string& object, const char* what) {
  return Error{Errc::invalid_argument, object, std::string{what} + " needs a local mailbox"};
}

}  // namespace

Error MailboxBackend::too_large(std::size_t size) const {
  return Error{Errc::too_large, object(),
               "message of " + std::to_string(size) + " bytes is over the mailbox's maximum of " +
                   std::to_string(max_message_size())};
}

std::optional<Error> MailboxBackend::oversized(std::span<const std::span<const std::byte>> messages) const {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].size() > max_message_size()) {
      return Error{Errc::too_large, object(),
                   "message " + std::to_string(i) + " of the batch is " + std::to_string(messages[i].size()) +
                       " bytes, over the mailbox's maximum of " + std::to_string(max_message_size()) +
                       "; none was sent"};
    }
  }
  return std::nullopt;
}

Result<std::size_t> MailboxBackend::send_many(std::span<const std::span<const std::byte>> messages, Deadline deadline) {
  if (auto refused = oversized(messages)) return std::unexpected(std::move(*refused));
  std::size_t sent = 0;
  for (const auto message : messages) {
    if (auto done = send(message, deadline, {}); !done) {
      if (sent == 0) return std::unexpected(done.error());
      break;
    }
    ++sent;
  }
  return sent;
}

Result<std::size_t> MailboxBackend::receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                                 Deadline deadline) {
  std::size_t count = 0;
  std::size_t used = 0;
  for (; count < sizes.size(); ++count) {
    auto size = receive(buffer.subspan(used), count == 0 ? deadline : no_wait);
    if (!size) {
      if (count == 0) return std::unexpected(size.error());
      break;
    }
    sizes[count] = *size;
    used += *size;
  }
  return count;
}

Result<Lent> BackendWithoutLoans::loan(std::size_t, Deadline) {
  return std::unexpected(needs_local(object(), "a zero-copy loan"));
}
Result<Lent> BackendWithoutLoans::receive_in_place(Deadline) {
  return std::unexpected(needs_local(object(), "a zero-copy receive"));
}
// Never called: nothing is ever lent.
Result<void> BackendWithoutLoans::commit_loan(const Lent&, std::size_t, Deadline) {
  return std::unexpected(needs_local(object(), "a zero-copy loan"));
}
void BackendWithoutLoans::abandon_loan(const Lent&) noexcept {}
void BackendWithoutLoans::hand_back(const Lent&, bool) noexcept {}

}  // namespace shmbox::detail
