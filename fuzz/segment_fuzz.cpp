// Whole files from the input, planted in /dev/shm as any program could (shm_open),
// then opened as a segment, as a mailbox and as an endpoint: a segment has no header
// of its own, but every object built on one reads its identity from the file's first
// bytes, and this is where those checks meet arbitrary bytes and arbitrary sizes
// (empty files among them). Each call must succeed or fail cleanly.
//
// Input: a flags byte, a size word (used when flag 1 is set: the file is that size,
// zero-filled past the content; otherwise the content's size), then the content.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"

using namespace shmbox;

namespace {

constexpr std::size_t max_file_size = 1 << 20;

// Creates `file_name` holding `content`, `size` bytes long.
bool plant(const std::string& file_name, std::size_t size, std::span<const std::uint8_t> content) {
  const int fd = ::shm_open(("/" + file_name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return false;
  content = content.first(std::min(content.size(), size));
  const bool written = ::ftruncate(fd, static_cast<off_t>(size)) == 0 &&
                       ::pwrite(fd, content.data(), content.size(), 0) == static_cast<ssize_t>(content.size());
  ::close(fd);
  return written;
}

void use_as_segment(const std::string& name, std::size_t size) {
  (void)Segment::stat(name);
  if (auto view = Segment::open(name, Access::read_only)) (void)view->refresh();
  if (auto grown = Segment::open_or_create(name, size + 64)) (void)grown->bytes();
}

void use_as_mailbox(const std::string& name) {
  (void)Mailbox::stat(name);
  if (auto box = Mailbox::open(name)) {
    std::array<std::byte, 64> buffer{};
    (void)box->receive(buffer, no_wait);
    (void)box->send(as_bytes("fuzz"), no_wait);
    (void)box->close();
  }
  (void)Mailbox::remove(name);
}

void use_as_endpoint(const std::string& name, bool send) {
  (void)Endpoint::stat(name);
  if (!send) return;
  // Sending opens the peer's file and may make a lane in it, or retire it.
  if (auto sender = Endpoint::join(fuzz::unique_name("ep"), {.max_peers = 1})) {
    (void)sender->send(name, as_bytes("fuzz"), no_wait);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input input{data, size};
  const std::uint8_t flags = input.byte();
  const std::uint32_t size_word = input.u32();
  const auto content = input.rest();
  const std::size_t file_size = (flags & 1) != 0 ? size_word % max_file_size : content.size();
  const std::string name = fuzz::unique_name("seg");
  const std::string files[] = {name, "shmbox.mb." + name, "shmbox.ep." + name};
  if (plant(files[0], file_size, content)) use_as_segment(name, file_size);
  if (plant(files[1], file_size, content)) use_as_mailbox(name);
  // Its lane options bounded (fuzz_support.hpp); the zeros added are the file's own.
  std::vector<std::uint8_t> endpoint_content(content.begin(), content.end());
  endpoint_content.resize(std::max(endpoint_content.size(), sizeof(detail::EndpointIdentity)));
  fuzz::bound_lane_options(std::as_writable_bytes(std::span{endpoint_content}));
  if (plant(files[2], file_size, endpoint_content)) use_as_endpoint(name, (flags & 2) != 0);
  for (const std::string& file : files) fuzz::remove_file(file);
  for (std::uint32_t i = 0; i < Endpoint::max_peers_limit; ++i) fuzz::remove_file("shmbox.ln." + name + "." + std::to_string(i));
  return 0;
}
