// What the verbs that move messages share (send, recv, topic pub, topic sub): where the
// messages to send come from, sending them with an exact report of a partial success,
// and how a received message is framed on the way out.
#pragma once

#include <fmt/core.h>
#include <sysexits.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "input.hpp"
#include "shmbox/error.hpp"

namespace shmbox::cli {

// How received messages are written out.
enum class Framing { lines, nul, json, raw };

std::string plural(std::uint64_t count, const char* noun);
// "; 2 of 5 written", or "; 2 written" when there is no count.
std::string written_so_far(std::uint64_t written, std::optional<std::uint64_t> count);

// The messages to send: the arguments, a file (one message), or standard input (each
// line, or NUL-ended record with `null`), read in bounded memory.
class MessageSource {
 public:
  MessageSource(const std::vector<std::string>& arguments, std::string file, bool null, std::size_t max_size);

  // The next message; nullopt when there are no more.
  Result<std::optional<std::span<const std::byte>>> next();
  // How many messages there are, when known before they are read.
  std::optional<std::size_t> total() const;

 private:
  const std::vector<std::string>& arguments_;
  std::string file_;
  bool from_file_;
  bool file_taken_ = false;
  std::vector<std::byte> file_message_;
  std::size_t max_size_;
  std::size_t index_ = 0;
  std::optional<RecordReader> reader_;
};

// Sends every message of `source` with `send_one`; on the first failure reports what
// was sent and what was not, in one line naming `object`.
template <class SendOne>
int send_all(MessageSource& source, const std::string& object, SendOne&& send_one) {
  std::uint64_t sent = 0;
  for (;;) {
    auto message = source.next();
    if (message && !*message) return EX_OK;
    Result<void> done = message ? send_one(**message) : Result<void>{std::unexpected(message.error())};
    if (done) {
      ++sent;
      continue;
    }
    const Error& failure = done.error();
    const std::string what_was_sent =
        sent == 0 ? "nothing was sent"
        : source.total()
            ? fmt::format("{} of {} were sent, message {} and those after it were not", sent, *source.total(), sent + 1)
            : fmt::format("{} sent, message {} and the rest of standard input were not", plural(sent, "message"),
                          sent + 1);
    // would_block carries no object (it is allocation-free): name the destination here.
    // One message given: its error says all, except that "is full" alone might leave a
    // doubt about whether it went.
    const bool say_what_was_sent = source.total() != 1 || failure.errc() == Errc::would_block;
    const Error report{failure.errc(), failure.object().empty() ? object : std::string{},
                       say_what_was_sent ? failure.message() + "; " + what_was_sent : failure.message()};
    if (!message && failure.errc() == Errc::system) return fail_io(report);
    return fail(report);
  }
}

// What is known of a received message besides its bytes.
struct Metadata {
  const char* kind;  // "mailbox", "endpoint" or "topic"
  const std::string& at;
  std::optional<std::uint64_t> sequence;  // mailboxes, topics
  const std::string* sender = nullptr;    // endpoints
  std::optional<std::uint64_t> lost;      // topics: lost just before this one
};

// One message as written out, with its framing.
std::string record_of(std::span<const std::byte> message, const Metadata& metadata, Framing framing);

}  // namespace shmbox::cli
