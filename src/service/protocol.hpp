// What clients and servers of a service say to each other: a request in the service's
// mailbox, answers in the client's (over NATS, the same answers on the client's subject). docs/design.md ("Request/response") has the protocol.
// Everything read from a message is untrusted: a message that does not parse is dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "service/service_backend.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::detail {

inline constexpr std::uint32_t request_magic = 0x51524253;  // "SBRQ" little-endian
inline constexpr std::uint32_t answer_magic = 0x4e414253;   // "SBAN"
// A client's answer mailbox is named after the service and the client: room for that.
inline constexpr std::size_t max_answers_name_length = 255;
inline constexpr std::size_t max_service_name_length = 200;  // with ".answers-", 20 digits, "-", n: <= 255
inline constexpr std::uint32_t max_service_attempts = 100;
// A failure's text, whatever the client's maximum answer size: at most this long.
inline constexpr std::uint32_t max_failure_text = 1024;
// How often a waiting call (or server) looks whether the service was removed.
inline constexpr std::chrono::milliseconds service_check_interval{100};

// A request: this header, the name of the client's answer mailbox, the request's bytes.
struct RequestHeader {
  std::uint32_t magic;
  std::uint32_t takes;  // counted in place by each server that takes it: survives its death
  std::uint64_t id;     // the client's number for it
  std::uint64_t client;  // ProcessIdentity::packed() of the client
  std::int64_t deadline_ns;  // steady clock; 0: none
  std::uint32_t max_answer_size;
  std::uint32_t answers_name_size;
};

// An answer: this header and its bytes. part: its index in the stream, so that a client
// drops what a server that died had sent already when another answers afresh.
struct AnswerHeader {
  std::uint32_t magic;
  AnswerKind kind;
  std::uint64_t id;
  std::uint64_t part;
};

inline std::string service_object(std::string_view name) { return "service '" + std::string{name} + "'"; }

// Why a request failed whose servers died holding it, each of its `attempts`.
inline std::string servers_died(std::uint32_t attempts) {
  return "its server died during each of its " + std::to_string(attempts) + " attempts";
}

// Room is kept for the answer mailboxes' names, which add to the service's.
inline Result<void> check_service_name(std::string_view name) {
  if (name.size() <= max_service_name_length) return {};
  return std::unexpected(Error{Errc::invalid_name, service_object(name),
                               "name is " + std::to_string(name.size()) + " characters long, the limit is " +
                                   std::to_string(max_service_name_length)});
}

// The service's mailbox of requests, which must exist.
inline Result<Mailbox> open_service(std::string_view name, const WaitPolicy& wait) {
  auto requests = Mailbox::open(name, wait);
  if (!requests && requests.error() == Errc::not_found) {
    return std::unexpected(Error{Errc::not_found, service_object(name), "does not exist (no server has joined it)"});
  }
  return requests;
}

// A client's answer mailboxes are named "<service>.answers-<its packed identity>-<n>": a
// server answers only into a mailbox so named for the client the request says it is from.
inline std::string answers_name_prefix(std::string_view service, std::uint64_t client) {
  return std::string{service} + ".answers-" + std::to_string(client) + "-";
}

// A request message read: its parts, pointing into the message.
struct ParsedRequest {
  RequestHeader header;
  std::string_view answers_name;
  std::span<const std::byte> bytes;
};

inline std::optional<ParsedRequest> parse_request(std::span<const std::byte> message) {
  ParsedRequest parsed{};
  if (message.size() < sizeof parsed.header) return std::nullopt;
  std::memcpy(&parsed.header, message.data(), sizeof parsed.header);
  const RequestHeader& header = parsed.header;
  if (header.magic != request_magic || header.answers_name_size == 0 ||
      header.answers_name_size > max_answers_name_length ||
      header.answers_name_size > message.size() - sizeof header) {
    return std::nullopt;
  }
  parsed.answers_name = {reinterpret_cast<const char*>(message.data() + sizeof header), header.answers_name_size};
  parsed.bytes = message.subspan(sizeof header + header.answers_name_size);
  return parsed;
}

struct ParsedAnswer {
  AnswerHeader header;
  std::span<const std::byte> bytes;
};

inline std::optional<ParsedAnswer> parse_answer(std::span<const std::byte> message) {
  ParsedAnswer parsed{};
  if (message.size() < sizeof parsed.header) return std::nullopt;
  std::memcpy(&parsed.header, message.data(), sizeof parsed.header);
  const AnswerKind kind = parsed.header.kind;
  if (parsed.header.magic != answer_magic ||
      (kind != AnswerKind::part && kind != AnswerKind::last && kind != AnswerKind::failed &&
       kind != AnswerKind::working && kind != AnswerKind::queued)) {
    return std::nullopt;
  }
  parsed.bytes = message.subspan(sizeof parsed.header);
  return parsed;
}

// A service's mailbox holds a request of max_request_size with its header and the
// longest answer mailbox name.
inline std::uint32_t request_message_size(std::uint32_t max_request_size) {
  return max_request_size + static_cast<std::uint32_t>(sizeof(RequestHeader) + max_answers_name_length);
}

}  // namespace shmbox::detail
