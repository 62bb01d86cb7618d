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
