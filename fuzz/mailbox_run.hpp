// The mailbox targets' one run: a fresh mailbox, used, then overwritten in place by
// the input, then every operation once without waiting, from the handle that was
// attached before and from one attached after. Each must succeed or fail cleanly
// (design.md: everything read from shared memory is untrusted); a crash, a sanitizer
// report or a hang is a bug.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "local/layout.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::fuzz {

// The parts of a mailbox file, found from its identity as the library wrote it.
struct MailboxFileLayout {
  std::span<std::byte> file;
  std::uint64_t attach_offset, slots_offset, table_offset;
  std::uint32_t slot_stride, slot_count, attach_capacity, chunk_count, chunk_slots;

  explicit MailboxFileLayout(std::span<std::byte> bytes)
      : file(bytes),
        attach_offset(read_field<std::uint64_t>(bytes, offsetof(detail::Identity, placement) + offsetof(detail::Placement, attach_offset))),
        slots_offset(read_field<std::uint64_t>(bytes, offsetof(detail::Identity, placement) + offsetof(detail::Placement, slots_offset))),
        table_offset(read_field<std::uint64_t>(bytes, offsetof(detail::Header, chunks.table_offset))),
        slot_stride(read_field<std::uint32_t>(bytes, offsetof(detail::Identity, dimensions) + offsetof(detail::Dimensions, slot_stride))),
        slot_count(read_field<std::uint32_t>(bytes, offsetof(detail::Identity, dimensions) + offsetof(detail::Dimensions, slot_count))),
        attach_capacity(read_field<std::uint32_t>(bytes, offsetof(detail::Identity, dimensions) + offsetof(detail::Dimensions, attach_capacity))),
        chunk_count(read_field<std::uint32_t>(bytes, offsetof(detail::Header, chunks.count))),
        chunk_slots(read_field<std::uint32_t>(bytes, offsetof(detail::Header, chunks.slots))) {}

  Region identity() const { return region_of(file, 0, sizeof(detail::Identity)); }
  // Counters, wait words, chunk geometry, creator and owner.
  Region counters() const {
    return region_of(file, sizeof(detail::Identity), detail::header_bytes - sizeof(detail::Identity));
  }
  Region attach_table() const {
    return region_of(file, attach_offset, std::uint64_t{attach_capacity} * sizeof(detail::AttachEntry));
  }
  // `count` slots from slot `first`.
  Region slots(std::uint64_t first, std::uint64_t count) const {
    return region_of(file, slots_offset + first * slot_stride, count * slot_stride);
  }
  // `count` chunk words from chunk `first`.
  Region chunk_words(std::uint64_t first, std::uint64_t count) const {
    return region_of(file, table_offset + first * sizeof(detail::ChunkEntry), count * sizeof(detail::ChunkEntry));
  }
};

// `plan`: bits 0-2 messages sent and bits 3-4 received before the patches; bit 5 holds
// a message read in place, bit 6 a loan (committed after if bit 0, else abandoned) and
// bit 7 a second handle across them. `regions` says where the input's patches go.
inline void run_mailbox(Input& input, const MailboxOptions& options, std::uint8_t plan,
                        const std::function<std::vector<Region>(const MailboxFileLayout&)>& regions) {
  const std::string name = unique_name("mb");
  const std::string file_name = "shmbox.mb." + name;
  auto created = Mailbox::create(name, options);
  if (!created) return;
  std::optional<Mailbox> box{std::move(*created)};
  const bool zero = options.buffering == Buffering::zero;
  std::array<std::byte, 64> buffer{};
  const auto message = as_bytes("fuzz").first(std::min<std::size_t>(4, options.max_message_size));

  for (unsigned i = 0; i < (plan & 7u); ++i) (void)box->send(message, no_wait);
  for (unsigned i = 0; i < (plan >> 3 & 3u); ++i) (void)box->receive(buffer, no_wait);
  std::optional<ReceivedMessage> held;
  if ((plan & 0x20) != 0) {
    if (auto got = box->receive_in_place(no_wait)) held.emplace(std::move(*got));
  }
  // A zero-capacity commit waits 2 ms for a pick-up: only loans of buffered mailboxes.
  std::optional<SendLoan> loan;
  if ((plan & 0x40) != 0 && !zero) {
    if (auto got = box->loan(message.size(), no_wait)) loan.emplace(std::move(*got));
  }
  std::optional<Mailbox> early;
  if ((plan & 0x80) != 0) {
    if (auto opened = Mailbox::open(name)) early.emplace(std::move(*opened));
  }

  if (auto file = Segment::open(file_name, Access::read_write)) {
    apply_patches(input, regions(MailboxFileLayout{file->writable_bytes().value()}));
  }

  (void)Mailbox::stat(name);
  (void)box->queued();
  (void)box->closed();
  if (held) held->release();
  if (loan && (plan & 1) != 0) {
    (void)loan->commit(message.size(), no_wait);
  } else if (loan) {
    loan->abandon();
  }
  std::array<std::byte, 2> tiny{};
  (void)box->receive(tiny, no_wait);  // too small for most messages: they stay queued
  if (auto got = box->receive_in_place(no_wait)) got->requeue();  // first in line again
  for (int i = 0; i < 3; ++i) (void)box->receive(buffer, no_wait);
  (void)box->send(message, no_wait);
  if (auto got = box->receive_in_place(no_wait)) got->release();
  // A taker that fails puts the message back; one that succeeds takes it.
  (void)box->receive_with(
      [](const Delivery&) -> Result<void> {
        return std::unexpected(Error{Errc::system, "fuzz", "taker failed"});
      },
      no_wait);
  (void)box->receive_with([](const Delivery&) -> Result<void> { return {}; }, no_wait);
  if (!zero) {
    if (auto lent = box->loan(message.size(), no_wait)) (void)lent->commit(message.size(), no_wait);
  }
  std::vector<std::byte> received;
  (void)box->receive(received, no_wait);
  if (early) {
    (void)early->send(message, no_wait);
    (void)early->receive(buffer, no_wait);
    early.reset();
  }
  if (auto late = Mailbox::open(name)) {
    (void)late->send(message, no_wait);
    (void)late->receive(buffer, no_wait);
  }
  (void)box->close();
  (void)box->receive(buffer, no_wait);  // drains, then recovers what dead handles hold
  (void)box->send(message, no_wait);
  (void)Mailbox::stat(name);
  box.reset();
  (void)Mailbox::remove(name);
  remove_file(file_name);
}

}  // namespace shmbox::fuzz
