// Writes the seed corpora (fuzz/corpus/<target>/): inputs that build valid objects and
// a few that put them at the edges the fuzzers should start from, and, for the
// segment target, the bytes of freshly made mailbox and endpoint files.
//
//   build/fuzz/fuzz/fuzz_seeds fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <vector>

#include "endpoint/layout.hpp"
#include "fuzz_support.hpp"
#include "local/layout.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"

using namespace shmbox;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

// A patch as apply_patches reads it.
Bytes patch(std::uint8_t region, std::uint16_t offset, std::initializer_list<std::uint64_t> words) {
  Bytes out{region, static_cast<std::uint8_t>(offset), static_cast<std::uint8_t>(offset >> 8),
            static_cast<std::uint8_t>(words.size() * 8)};
  for (std::uint64_t word : words) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(word >> (8 * i)));
  }
  return out;
}

Bytes join(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

void write(const fs::path& file, const Bytes& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream{file, std::ios::binary}.write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

// The first `limit` bytes of a named file as they are now.
Bytes file_bytes(const std::string& file_name, std::size_t limit = SIZE_MAX) {
  auto file = Segment::open(file_name, Access::read_only).value();
  const auto bytes = file.bytes().first(std::min(limit, file.size()));
  const auto* first = reinterpret_cast<const std::uint8_t*>(bytes.data());
  return {first, first + bytes.size()};
}

// A segment-target input: the file as it is (flags 0) or `flags` as given.
Bytes segment_input(std::uint8_t flags, const Bytes& content, std::uint32_t size = 0) {
  Bytes out{flags, static_cast<std::uint8_t>(size), static_cast<std::uint8_t>(size >> 8),
            static_cast<std::uint8_t>(size >> 16), static_cast<std::uint8_t>(size >> 24)};
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

// Position 0, received (head 1), put back as a receiver does: its slot RETURNED and the
// hint set. `counters` and `slots` are the target's regions of the header after the
// identity and of the first slots.
Bytes returned_behind_head(std::uint8_t counters, std::uint8_t slots) {
  return join({patch(slots, 0, {detail::SlotState::pack(0, detail::Phase::returned, 0)}),
               patch(counters, offsetof(detail::Header, returned) - sizeof(detail::Identity), {1})});
}

// mailbox_fuzz.cpp: region 1 is the header after the identity (tail at 0, head at
// 64), region 2 the attach table, region 3 the slots.
void mailbox_seeds(const fs::path& dir) {
  constexpr std::uint8_t bounded4 = 3 << 1, bounded3 = 2 << 1, zero = 1, two_handles = 1 << 5;
  write(dir / "bounded-queued", {bounded4, 3});
  write(dir / "bounded3-wrapped", {bounded3, 7 | 2 << 3});
  write(dir / "bounded-held", {bounded4 | two_handles, 0xe3});
  write(dir / "zero", {zero | two_handles, 0x80});
  write(dir / "tail-far", join({{bounded4, 2}, patch(1, 0, {1000})}));
  write(dir / "slot-invalid-phase", join({{bounded4, 2}, patch(3, 0, {std::uint64_t{9} << 16})}));
  write(dir / "slot-returned", join({{bounded4, 2 | 1 << 3}, returned_behind_head(1, 3)}));
  // An attach entry naming a process that no longer exists (pid 1's start time is not 1).
  write(dir / "dead-attacher", join({{bounded4 | two_handles, 2}, patch(2, 64, {std::uint64_t{1} << 32 | 1, 1})}));
}

// chunks_fuzz.cpp: region 0 is the header after the identity, 2 the first chunk words,
// 3 the last two, 5 the slots where chunks 0 and 1 meet, 6 where a lap ends.
void chunks_seeds(const fs::path& dir) {
  const std::string name = fuzz::unique_name("seed");
  auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 48}).value();
  const Bytes bytes = file_bytes("shmbox.mb." + name, detail::header_bytes);
  (void)Mailbox::remove(name);
  std::uint32_t slot_count = 0, chunk_slots = 0;
  std::memcpy(&slot_count, bytes.data() + offsetof(detail::Identity, dimensions) + offsetof(detail::Dimensions, slot_count), sizeof slot_count);
  std::memcpy(&chunk_slots, bytes.data() + offsetof(detail::Header, chunks.slots), sizeof chunk_slots);
  const std::uint64_t edge = chunk_slots - 2;
  write(dir / "queued", {3});
  write(dir / "held", {0xe3});
  write(dir / "returned", join({{2 | 1 << 3}, returned_behind_head(0, 4)}));
  // Head and tail two slots before chunk 1: sends back chunk 1, receives give chunk 0 back.
  write(dir / "chunk-edge", join({{2}, patch(0, 0, {edge}), patch(0, 64, {edge}), patch(2, 0, {detail::ChunkWord::backed(0, edge).bits})}));
  // Two slots before the ring's end: the next lap starts in chunk 0, ready for lap 1.
  const std::uint64_t end = slot_count - 2;
  write(dir / "lap-edge", join({{2}, patch(0, 0, {end}), patch(0, 64, {end}),
                                patch(3, 8, {detail::ChunkWord::backed(0, chunk_slots - 2).bits}),
                                patch(2, 0, {detail::ChunkWord::ready_for(1).bits})}));
}

// endpoint_fuzz.cpp: regions 0-2 the endpoint file (identity, header, lane table),
// then the lane's counters, attach table, slots and chunk words.
void endpoint_seeds(const fs::path& dir) {
  constexpr std::uint8_t bounded = 0, zero = 1, unbounded = 2, two_peers = 1 << 4;
  write(dir / "bounded", {bounded | 3 << 2, 2});
  write(dir / "zero", {zero | two_peers, 0});
  write(dir / "unbounded", {unbounded, 3 | 4});
  write(dir / "lane-name-long", join({{bounded, 1}, patch(2, 16, {0xffff})}));
  write(dir / "endpoint-closed", join({{bounded | two_peers, 1}, patch(1, 0, {0, 1})}));
}

// segment_fuzz.cpp: whole files.
void segment_seeds(const fs::path& dir) {
  const std::string name = fuzz::unique_name("seed");
  {
    auto box = Mailbox::create(name, {.capacity = 2, .max_message_size = 48, .max_attached = 1}).value();
    (void)box.send(as_bytes("seed"));
    write(dir / "mailbox-bounded", segment_input(0, file_bytes("shmbox.mb." + name)));
  }
  (void)Mailbox::remove(name);
  {
    auto box = Mailbox::create(name, {.buffering = Buffering::zero, .max_message_size = 0, .max_attached = 2}).value();
    write(dir / "mailbox-zero", segment_input(0, file_bytes("shmbox.mb." + name)));
  }
  (void)Mailbox::remove(name);
  {
    // Its slots lie beyond any file this target makes: only the header is kept.
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 48, .max_attached = 1}).value();
    write(dir / "mailbox-unbounded-header",
          segment_input(0, file_bytes("shmbox.mb." + name, detail::header_bytes + sizeof(detail::AttachEntry))));
  }
  (void)Mailbox::remove(name);
  {
    auto endpoint = Endpoint::join(name, {.capacity = 2, .max_message_size = 48, .max_peers = 2}).value();
    auto peer = Endpoint::join(fuzz::unique_name("seed"), {.max_peers = 1}).value();
    (void)peer.send(name, as_bytes("seed"));
    write(dir / "endpoint-with-lane", segment_input(2, file_bytes("shmbox.ep." + name)));
  }
  write(dir / "empty", segment_input(1, {}, 0));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  mailbox_seeds(root / "mailbox");
  chunks_seeds(root / "chunks");
  endpoint_seeds(root / "endpoint");
  segment_seeds(root / "segment");
  return 0;
}
