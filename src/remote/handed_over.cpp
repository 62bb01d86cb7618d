#include "remote/handed_over.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "remote/nats_handles.hpp"

namespace shmbox::detail {

bool HandedOver::contains(const Stored& message) const {
  // Deliveries come in stream order but for redeliveries: only those need a search.
  if (message.sequence == 0 || message.sequence > highest_) return false;
  return std::any_of(recent_.begin(), recent_.end(), [&](const auto& entry) { return entry.first == message; });
}

void HandedOver::add(const Stored& message) {
  constexpr auto kept_for = std::chrono::seconds{30};
  constexpr std::size_t most_kept = 65536;
  if (message.sequence == 0) return;
  const auto now = Deadline::clock::now();
  while (!recent_.empty() && (now - recent_.front().second > kept_for || recent_.size() >= most_kept)) recent_.pop_front();
  recent_.emplace_back(message, now);
  highest_ = std::max(highest_, message.sequence);
}

HandedOver::Stored stored_as(natsMsg* message) {
  OwnedMsgMetaData meta;
  if (natsMsg_GetMetaData(out(meta), message) != NATS_OK) return {};
  return {meta->Sequence.Stream, meta->Timestamp};
}

}  // namespace shmbox::detail
