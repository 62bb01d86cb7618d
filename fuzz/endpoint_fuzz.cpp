// An endpoint's file (header and lane table) and its first lane's mailbox file,
// overwritten by the input after a peer has sent to it; then the receiver's and the
// sender's calls once each without waiting, a stat, and both leave. Each must succeed
// or fail cleanly; a crash, a sanitizer report or a hang is a bug.
//
// Input: a shape byte (lane buffering, capacity, peers), a plan byte (sends and
// receives before the patches), then patches (fuzz_support.hpp).
#include <array>
#include <optional>
#include <vector>

#include "endpoint/layout.hpp"
#include "fuzz_support.hpp"
#include "mailbox_run.hpp"
#include "shmbox/endpoint.hpp"

using namespace shmbox;

namespace {

// The endpoint file's parts: identity, the header's other words, the lane table.
std::vector<fuzz::Region> endpoint_regions(std::span<std::byte> file, std::uint32_t max_peers) {
  return {fuzz::region_of(file, 0, sizeof(detail::EndpointIdentity)),
          fuzz::region_of(file, sizeof(detail::EndpointIdentity),
                          detail::endpoint_header_bytes - sizeof(detail::EndpointIdentity)),
          fuzz::region_of(file, detail::endpoint_header_bytes, std::uint64_t{max_peers} * sizeof(detail::LaneEntry))};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input input{data, size};
  const std::uint8_t shape = input.byte();
  const std::uint8_t plan = input.byte();
  constexpr std::array bufferings{Buffering::bounded, Buffering::zero, Buffering::unbounded, Buffering::bounded};
  const EndpointOptions options{
      .buffering = bufferings[shape & 3u],
      .capacity = 1 + (shape >> 2 & 3u),
      .max_message_size = 48,
      .max_peers = 1 + (shape >> 4 & 3u),
  };
  const std::string receiver_name = fuzz::unique_name("ep");
  const std::string sender_name = fuzz::unique_name("ep");
  std::optional<Endpoint> receiver, sender;
  if (auto joined = Endpoint::join(receiver_name, options)) receiver.emplace(std::move(*joined));
  if (auto joined = Endpoint::join(sender_name, options)) sender.emplace(std::move(*joined));
  if (receiver && sender) {
    std::array<std::byte, 64> buffer{};
    const auto message = as_bytes("fuzz");
    // A rendezvous lane's non-blocking send fails, but the lane is made all the same.
    for (unsigned i = 0; i < 1 + (plan & 3u); ++i) (void)sender->send(receiver_name, message, no_wait);
    for (unsigned i = 0; i < (plan >> 2 & 1u); ++i) (void)receiver->receive(buffer, no_wait);

    std::optional<Segment> endpoint_file, lane_file;
    std::vector<fuzz::Region> regions;
    if (auto opened = Segment::open("shmbox.ep." + receiver_name, Access::read_write)) {
      endpoint_file.emplace(std::move(*opened));
      regions = endpoint_regions(endpoint_file->writable_bytes().value(), options.max_peers);
    }
    // The one sender took lane 0.
    if (auto opened = Segment::open("shmbox.ln." + receiver_name + ".0", Access::read_write)) {
      lane_file.emplace(std::move(*opened));
      const fuzz::MailboxFileLayout lane{lane_file->writable_bytes().value()};
      regions.insert(regions.end(), {lane.counters(), lane.attach_table(), lane.slots(0, 4), lane.chunk_words(0, 2)});
    }
    fuzz::apply_patches(input, regions);
    if (endpoint_file) fuzz::bound_lane_options(endpoint_file->writable_bytes().value());

    (void)Endpoint::stat(receiver_name);
    (void)receiver->receive(buffer, no_wait);
    (void)receiver->receive_from(sender_name, buffer, no_wait);
    (void)sender->send(receiver_name, message, no_wait);
    std::vector<std::byte> received;
    (void)receiver->receive(received, no_wait);
    std::array<std::byte, 2> tiny{};
    (void)receiver->receive(tiny, no_wait);
    (void)sender->send(receiver_name, message, no_wait);
    (void)receiver->receive_from(sender_name, received, no_wait);
    (void)Endpoint::stat(receiver_name);
    sender.reset();  // leaves: its lane is drained, then given back
    (void)receiver->receive(buffer, no_wait);
  }
  sender.reset();
  receiver.reset();
  for (const std::string& name : {receiver_name, sender_name}) {
    fuzz::remove_file("shmbox.ep." + name);
    for (std::uint32_t i = 0; i < options.max_peers; ++i) fuzz::remove_file("shmbox.ln." + name + "." + std::to_string(i));
  }
  return 0;
}
