#include "mailbox/ring.hpp"

#include <climits>

#include "platform/futex.hpp"

namespace shmbox::detail {
namespace {

Error corrupt_slot(const MailboxState& state, std::uint64_t position, const char* what) {
  return state.corrupt("slot for position " + std::to_string(position) + " " + what);
}

}  // namespace

bool is_closed(const MailboxState& state) noexcept {
  return (state.header->tail.load(std::memory_order_acquire) & closed_bit) != 0;
}

std::uint64_t queued(const MailboxState& state) noexcept {
  const std::uint64_t head = state.header->head.load(std::memory_order_acquire);
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  const std::uint64_t count = tail - head;
  return count > state.geometry.slot_count ? 0 : count;
}

void wake_receivers(MailboxState& state, bool all) noexcept {
  Header& header = *state.header;
  // A seq_cst read-modify-write, not a load: it is ordered with the waiter's seq_cst
  // increment of the same counter, so either we see the waiter or the waiter's
  // re-check sees what we published (design.md, Waiting and waking).
  const std::uint32_t sleeping = header.receivers_sleeping.fetch_add(0, std::memory_order_seq_cst);
  const bool selectors = header.receive_selectors_sleeping.load(std::memory_order_seq_cst) != 0;
  if (sleeping == 0 && !selectors) return;
  header.data_epoch.fetch_add(1, std::memory_order_relaxed);
  platform::futex_wake(header.data_epoch, all || selectors ? INT_MAX : 1);
}

void wake_senders(MailboxState& state, bool all) noexcept {
  Header& header = *state.header;
  const std::uint32_t sleeping = header.senders_sleeping.fetch_add(0, std::memory_order_seq_cst);  // as above
  const bool selectors = header.send_selectors_sleeping.load(std::memory_order_seq_cst) != 0;
  if (sleeping == 0 && !selectors) return;
  header.space_epoch.fetch_add(1, std::memory_order_relaxed);
  platform::futex_wake(header.space_epoch, all || selectors ? INT_MAX : 1);
}

Result<std::optional<SendClaim>> try_claim_send(MailboxState& state) noexcept {
  Header& header = *state.header;
  const std::uint64_t n = state.geometry.slot_count;
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return std::unexpected(state.closed_error());
    SlotHeader& slot = state.slot(tail);
    std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    const std::int64_t distance = position_distance(current.position, tail);

    if (distance == 0) {
      const auto phase = static_cast<Phase>(current.phase);
      if (phase == Phase::free) {
        if (current.owner != 0) return std::unexpected(corrupt_slot(state, tail, "is free but has an owner"));
        // Claim: acq_rel pairs with the release store that freed the slot, so the
        // previous receiver's reads of the payload are done before we overwrite it.
        if (!slot.state.compare_exchange_strong(word, SlotState::pack(tail, Phase::writing, state.self),
                                                std::memory_order_acq_rel, std::memory_order_acquire)) {
          continue;
        }
        std::uint64_t expected = tail;
        if (!header.tail.compare_exchange_strong(expected, tail + 1, std::memory_order_acq_rel,
                                                 std::memory_order_acquire) &&
            expected == (tail | closed_bit)) {
          // Closed before our claim was counted: nobody will look at this slot again.
          slot.state.store(SlotState::pack(tail, Phase::free, 0), std::memory_order_release);
          return std::unexpected(state.closed_error());
        }
        return SendClaim{tail, &slot};
      }
      if (phase == Phase::writing || phase == Phase::full || phase == Phase::reading ||
          phase == Phase::cancelled) {
        // Claimed by a sender that has not moved tail yet: move it for them.
        std::uint64_t expected = tail;
        header.tail.compare_exchange_strong(expected, tail + 1, std::memory_order_acq_rel,
                                            std::memory_order_acquire);
        continue;
      }
      return std::unexpected(corrupt_slot(state, tail, "has an invalid phase"));
    }
    if (distance == -static_cast<std::int64_t>(n) && current.phase != static_cast<std::uint8_t>(Phase::free) &&
        current.phase <= static_cast<std::uint8_t>(Phase::cancelled)) {
      // The previous lap's message still occupies the slot: full, unless tail moved.
      if (header.tail.load(std::memory_order_acquire) != tail) continue;
      return std::nullopt;
    }
    if (distance > 0 && distance % static_cast<std::int64_t>(n) == 0 &&
        header.tail.load(std::memory_order_acquire) != tail) {
      continue;  // our tail was stale
    }
    return std::unexpected(corrupt_slot(state, tail, "holds a position that does not fit the ring"));
  }
}

void publish(MailboxState& state, const SendClaim& claim, std::uint32_t size) noexcept {
  claim.slot->size = size;
  // Release: the size and payload written before are visible to the receiver whose
  // acquire load (and CAS) sees FULL.
  claim.slot->state.store(SlotState::pack(claim.position, Phase::full, state.self), std::memory_order_release);
  wake_receivers(state, false);
}

bool cancel(MailboxState& state, const SendClaim& claim, Phase from) noexcept {
  std::uint64_t expected = SlotState::pack(claim.position, from, state.self);
  const bool cancelled = claim.slot->state.compare_exchange_strong(
      expected, SlotState::pack(claim.position, Phase::cancelled, state.self), std::memory_order_acq_rel,
      std::memory_order_acquire);
  // A receiver may be waiting for this slot to be published: let it move past.
  if (cancelled) wake_receivers(state, true);
  return cancelled;
}

bool still_published(const MailboxState& state, const SendClaim& claim) noexcept {
  return claim.slot->state.load(std::memory_order_acquire) ==
         SlotState::pack(claim.position, Phase::full, state.self);
}

Result<std::optional<ReceiveClaim>> try_claim_receive(MailboxState& state, std::size_t size_limit) noexcept {
  Header& header = *state.header;
  const std::uint64_t n = state.geometry.slot_count;
  for (;;) {
    const std::uint64_t head = header.head.load(std::memory_order_acquire);
    const std::uint64_t tail_word = header.tail.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_word & ~closed_bit;
    if (head == tail) {
      if ((tail_word & closed_bit) != 0) return std::unexpected(state.closed_error());
      return std::nullopt;
    }
    if (tail - head > n) {
      if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
      return std::unexpected(state.corrupt("head " + std::to_string(head) + " and tail " + std::to_string(tail) +
                                           " are further apart than the capacity"));
    }
    SlotHeader& slot = state.slot(head);
    std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    const std::int64_t distance = position_distance(current.position, head);

    if (distance == 0) {
      switch (static_cast<Phase>(current.phase)) {
        case Phase::full: {
          // Stable while FULL: the sender wrote it before its release store.
          const std::uint32_t size = slot.size;
          if (size > state.geometry.max_message_size) {
            return std::unexpected(corrupt_slot(state, head, "holds a size over the mailbox's maximum"));
          }
          if (size > size_limit) {
            return std::unexpected(Error{Errc::too_large, state.object,
                                         "next message is " + std::to_string(size) + " bytes, the buffer holds " +
                                             std::to_string(size_limit)});
          }
          // Claim: acq_rel pairs with the sender's release store of FULL.
          if (!slot.state.compare_exchange_strong(word, SlotState::pack(head, Phase::reading, state.self),
                                                  std::memory_order_acq_rel, std::memory_order_acquire)) {
            continue;
          }
          std::uint64_t expected = head;
          header.head.compare_exchange_strong(expected, head + 1, std::memory_order_acq_rel,
                                              std::memory_order_acquire);
          if (state.geometry.buffering == Buffering::zero) wake_senders(state, true);  // pick-up notice
          return ReceiveClaim{head, &slot, size};
        }
        case Phase::writing: return std::nullopt;  // claimed, not yet published
        case Phase::reading: {
          std::uint64_t expected = head;
          header.head.compare_exchange_strong(expected, head + 1, std::memory_order_acq_rel,
                                              std::memory_order_acquire);
          continue;
        }
        case Phase::cancelled: {
          // Claimed and freed like a message, so that FREE is stored only after head passed.
          if (!slot.state.compare_exchange_strong(word, SlotState::pack(head, Phase::reading, state.self),
                                                  std::memory_order_acq_rel, std::memory_order_acquire)) {
            continue;
          }
          std::uint64_t expected = head;
          header.head.compare_exchange_strong(expected, head + 1, std::memory_order_acq_rel,
                                              std::memory_order_acquire);
          release(state, ReceiveClaim{head, &slot, 0});
          continue;
        }
        case Phase::free:
          if (header.head.load(std::memory_order_acquire) != head) continue;
          return std::unexpected(corrupt_slot(state, head, "is free although the mailbox counts it as queued"));
      }
      return std::unexpected(corrupt_slot(state, head, "has an invalid phase"));
    }
    if (distance > 0 && distance % static_cast<std::int64_t>(n) == 0 &&
        header.head.load(std::memory_order_acquire) != head) {
      continue;  // our head was stale
    }
    return std::unexpected(corrupt_slot(state, head, "holds a position that does not fit the ring"));
  }
}

void release(MailboxState& state, const ReceiveClaim& claim) noexcept {
  // Release: our reads of the payload happen before the next lap's sender, whose
  // claim CAS (acquire) sees FREE, overwrites it.
  claim.slot->state.store(SlotState::pack(claim.position + state.geometry.slot_count, Phase::free, 0),
                          std::memory_order_release);
  wake_senders(state, false);
}

}  // namespace shmbox::detail
