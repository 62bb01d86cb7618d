// Uses each part of the installed library, the NATS client included, so that a link
// missing any of it fails here.
#include <shmbox/endpoint.hpp>
#include <shmbox/mailbox.hpp>
#include <shmbox/segment.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

int fail(const char* what, const shmbox::Error& error) {
  std::fprintf(stderr, "%s: %s\n", what, error.message().c_str());
  return 1;
}

std::string text_of(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

int main() {
  using namespace shmbox;
  const std::string name = "shmbox-install-check-" + std::to_string(getpid());

  auto segment = Segment::create(name, 64);
  if (!segment) return fail("segment", segment.error());
  if (!Segment::remove(name)) return 1;

  auto box = Mailbox::create(name, {.capacity = 4, .max_message_size = 64});
  if (!box) return fail("mailbox", box.error());
  std::vector<std::byte> message;
  if (auto sent = box->send(as_bytes("ping"), no_wait); !sent) return fail("mailbox send", sent.error());
  if (auto got = box->receive(message, no_wait); !got) return fail("mailbox receive", got.error());
  if (text_of(message) != "ping" || !Mailbox::remove(name)) return 1;

  auto server = Endpoint::join(name + "-server");
  auto client = Endpoint::join(name + "-client");
  if (!server || !client) return fail("endpoint", server ? client.error() : server.error());
  if (auto sent = client->send(server->name(), as_bytes("hello"), no_wait); !sent) return fail("endpoint send", sent.error());
  auto from = server->receive(message, no_wait);
  if (!from) return fail("endpoint receive", from.error());
  if (*from != client->name() || text_of(message) != "hello") return 1;

  // Nothing listens on port 1: the answer proves the NATS client is linked and runs.
  auto remote = Mailbox::open("nats://127.0.0.1:1/install-check");
  if (remote || remote.error().errc() != Errc::unreachable ||
      remote.error().message().find("cannot reach the NATS server nats://127.0.0.1:1") == std::string::npos) {
    std::fprintf(stderr, "remote: %s\n", remote ? "opened" : remote.error().message().c_str());
    return 1;
  }

  std::puts("installed shmbox works");
  return 0;
}
