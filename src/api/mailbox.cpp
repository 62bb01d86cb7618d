// Mailbox: a handle that forwards every call to its transport's backend
// (mailbox/backend.hpp), and the operations on names, resolved to a transport.
#include "shmbox/mailbox.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "api/mailbox_access.hpp"
#include "local/local_mailbox.hpp"
#include "mailbox/backend.hpp"
#include "remote/nats_mailbox.hpp"

namespace shmbox {

namespace detail {

const Transport& transport_for(std::string_view name) noexcept {
  // One line per transport; the local one last, since it takes every name.
  static constexpr std::array transports{&remote_transport, &local_transport};
  for (const Transport* transport : transports) {
    if (transport->claims(name)) return *transport;
  }
  return local_transport;
}

}  // namespace detail

namespace {

Result<Mailbox> wrap(Result<std::unique_ptr<detail::MailboxBackend>> backend) {
  if (!backend) return std::unexpected(backend.error());
  return detail::MailboxAccess::make(std::move(*backend));
}

}  // namespace

Result<Mailbox> Mailbox::create(std::string_view name, const MailboxOptions& options, const WaitPolicy& wait) {
  return wrap(detail::transport_for(name).create(name, options, wait));
}

Result<Mailbox> Mailbox::open(std::string_view name, const WaitPolicy& wait) {
  return wrap(detail::transport_for(name).open(name, wait));
}

Result<Mailbox> Mailbox::open_wait(std::string_view name, Deadline deadline, const WaitPolicy& wait) {
  // Set up before the first attempt, so that a creation between the attempt and the
  // nap still ends the nap. The cap bounds the cost of a missed event.
  auto nap_until_appearance = detail::transport_for(name).appearance_waiter(name);
  if (!nap_until_appearance) return std::unexpected(nap_until_appearance.error());
  for (;;) {
    auto opened = open(name, wait);
    if (opened || (opened.error() != Errc::not_found && opened.error() != Errc::not_ready)) return opened;
    if (deadline.expired()) {
      return std::unexpected(Error{Errc::timeout, opened.error().object(),
                                   "did not appear in time (" + opened.error().detail() + ")"});
    }
    auto nap = std::chrono::milliseconds{100};
    if (!deadline.is_forever()) {
      nap = std::min(nap, std::chrono::ceil<std::chrono::milliseconds>(deadline.until() - Deadline::clock::now()));
    }
    (*nap_until_appearance)(std::max(nap, std::chrono::milliseconds{0}));
  }
}

Result<void> Mailbox::remove(std::string_view name) { return detail::transport_for(name).remove(name); }

Result<MailboxStatus> Mailbox::stat(std::string_view name) { return detail::transport_for(name).stat(name); }

std::vector<std::string> Mailbox::list() {
  return detail::local_transport.list({}).value();  // local names: a directory listing, which cannot fail
}

Result<std::vector<std::string>> Mailbox::list(std::string_view server) {
  return detail::transport_for(server).list(server);
}

Mailbox::Mailbox(std::unique_ptr<detail::MailboxBackend> backend) noexcept : backend_(std::move(backend)) {}
Mailbox::Mailbox(Mailbox&& other) noexcept = default;
Mailbox& Mailbox::operator=(Mailbox&& other) noexcept {
  if (this != &other) backend_ = std::move(other.backend_);
  return *this;
}
Mailbox::~Mailbox() = default;

Error Mailbox::moved_from() {
  return Error{Errc::invalid_argument, "mailbox", "this handle was moved from: it refers to no mailbox"};
}

// A moved-from handle answers as an empty, closed mailbox.
const std::string& Mailbox::name() const noexcept {
  static const std::string none;
  return backend_ ? backend_->name() : none;
}
Buffering Mailbox::buffering() const noexcept { return backend_ ? backend_->buffering() : Buffering::bounded; }
std::uint32_t Mailbox::capacity() const noexcept { return backend_ ? backend_->capacity() : 0; }
std::size_t Mailbox::max_message_size() const noexcept { return backend_ ? backend_->max_message_size() : 0; }
bool Mailbox::closed() const noexcept { return !backend_ || backend_->closed(); }
std::uint64_t Mailbox::queued() const noexcept { return backend_ ? backend_->queued() : 0; }

Result<void> Mailbox::close() {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->close();
}

Result<void> Mailbox::send(std::span<const std::byte> message, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->send(message, deadline, {});
}

Result<void> Mailbox::send(std::span<const std::byte> message, Deadline deadline, std::string_view id) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->send(message, deadline, id);
}

Result<std::size_t> Mailbox::send_many(std::span<const std::span<const std::byte>> messages, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->send_many(messages, deadline);
}

Result<std::size_t> Mailbox::receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                          Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->receive_many(buffer, sizes, deadline);
}

Result<std::size_t> Mailbox::receive(std::span<std::byte> buffer, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->receive(buffer, deadline);
}

Result<void> Mailbox::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->receive(message, deadline);
}

Result<void> Mailbox::receive_with(const DeliveryTaker& take, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  return backend_->receive_with(take, deadline);
}

Result<SendLoan> Mailbox::loan(std::size_t size, Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  auto lent = backend_->loan(size, deadline);
  if (!lent) return std::unexpected(lent.error());
  return SendLoan{backend_.get(), lent->position, lent->bytes};
}

Result<ReceivedMessage> Mailbox::receive_in_place(Deadline deadline) {
  if (!backend_) [[unlikely]] return std::unexpected(moved_from());
  auto lent = backend_->receive_in_place(deadline);
  if (!lent) return std::unexpected(lent.error());
  return ReceivedMessage{backend_.get(), lent->position, lent->bytes};
}

Error Mailbox::wrong_size_error(std::size_t got, std::size_t expected) const {
  return Error{Errc::invalid_argument, backend_ ? backend_->object() : std::string{"mailbox"},
               "received a message of " + std::to_string(got) + " bytes where " + std::to_string(expected) +
                   " were expected"};
}

Result<void> SendLoan::commit(std::size_t size, Deadline deadline) {
  if (mailbox_ == nullptr) return std::unexpected(Error{Errc::invalid_argument, {}, "loan was already committed or abandoned"});
  if (size > data_.size()) {
    return std::unexpected(Error{Errc::too_large, mailbox_->object(),
                                 "commit of " + std::to_string(size) + " bytes exceeds the loan of " +
                                     std::to_string(data_.size())});
  }
  const detail::Lent lent{position_, data_};
  detail::MailboxBackend& mailbox = *std::exchange(mailbox_, nullptr);
  data_ = {};  // the slot is the receivers' now
  return mailbox.commit_loan(lent, size, deadline);
}

void SendLoan::abandon() noexcept {
  if (mailbox_ == nullptr) return;
  std::exchange(mailbox_, nullptr)->abandon_loan(detail::Lent{position_, data_});
  data_ = {};
}

void ReceivedMessage::release() noexcept { hand_back(false); }
void ReceivedMessage::requeue() noexcept { hand_back(true); }

void ReceivedMessage::hand_back(bool put_back) noexcept {
  if (mailbox_ == nullptr) return;
  std::exchange(mailbox_, nullptr)->hand_back(detail::Lent{position_, {}}, put_back);
  position_ = 0;
  data_ = {};
}

}  // namespace shmbox
