#include "shmbox/selector.hpp"

#include <array>
#include <utility>

#include "api/mailbox_access.hpp"
#include "local/mapped_mailbox.hpp"
#include "local/ring.hpp"
#include "local/wait_any.hpp"

namespace shmbox {
namespace {

bool ready(detail::MappedMailbox& mailbox, Interest interest) noexcept {
  return interest == Interest::receive ? detail::ready_to_receive(mailbox) : detail::ready_to_send(mailbox);
}

}  // namespace

Selector::Selector(Selector&& other) noexcept
    : wait_(other.wait_), watched_(std::exchange(other.watched_, {})), next_(std::exchange(other.next_, 0)) {}

Selector& Selector::operator=(Selector&& other) noexcept {
  if (this != &other) {
    wait_ = other.wait_;
    watched_ = std::exchange(other.watched_, {});
    next_ = std::exchange(other.next_, 0);
  }
  return *this;
}

Result<std::size_t> Selector::add(Mailbox& mailbox, Interest interest) {
  detail::MailboxBackend* backend = detail::MailboxAccess::backend(mailbox);
  if (backend == nullptr) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a moved-from mailbox cannot be watched"});
  }
  detail::MappedMailbox* mapped = backend->shared_memory();
  if (mapped == nullptr) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a remote mailbox cannot be watched; use a local one"});
  }
  if (watched_.size() >= max_mailboxes) {
    return std::unexpected(Error{Errc::invalid_argument, "selector",
                                 "watches " + std::to_string(max_mailboxes) + " mailboxes already, its limit"});
  }
  watched_.push_back({mapped, interest});
  return watched_.size() - 1;
}

std::size_t Selector::first_ready() const noexcept {
  for (std::size_t i = 0; i < watched_.size(); ++i) {
    const std::size_t index = (next_ + i) % watched_.size();
    if (ready(*watched_[index].mailbox, watched_[index].interest)) return index;
  }
  return watched_.size();
}

Result<std::size_t> Selector::wait(Deadline deadline) {
  if (watched_.empty()) return std::unexpected(Error{Errc::invalid_argument, "selector", "watches no mailbox"});
  // Registering as a selector makes wakers wake everyone on the word, so that no
  // wake-up meant for us goes to a lone receiver.
  std::array<detail::WatchedWord, max_mailboxes> words{};
  for (std::size_t i = 0; i < watched_.size(); ++i) {
    detail::MappedMailbox& mapped = *watched_[i].mailbox;
    detail::Header& header = *mapped.header;
    words[i] = watched_[i].interest == Interest::receive
                   ? detail::WatchedWord{&header.data_epoch, &header.receive_selectors_sleeping, &mapped}
                   : detail::WatchedWord{&header.space_epoch, &header.send_selectors_sleeping, &mapped};
  }
  const auto index = detail::wait_any(wait_, deadline, std::span{words.data(), watched_.size()}, [&] {
    const std::size_t ready = first_ready();
    return ready < watched_.size() ? std::optional{ready} : std::nullopt;
  });
  if (!index) {
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    return std::unexpected(Error{Errc::timeout, "selector", "no mailbox became ready in time"});
  }
  next_ = (*index + 1) % watched_.size();
  return *index;
}

}  // namespace shmbox
