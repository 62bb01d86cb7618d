// A clipboard shared by every process of the user, on shmbox::Board: one value with a
// version, which any process may replace, read or wait on.
//
// Usage: clipboard [--board NAME] copy [TEXT]     TEXT, or all of standard input
//        clipboard [--board NAME] paste           the latest clip exactly, nothing added
//        clipboard [--board NAME] watch [--count N]   each new clip on its own line
//        clipboard [--board NAME] clear           removes the board
//
// NAME defaults to "clipboard"; a nats://host:port/NAME board is shared across machines.
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/board.hpp"

namespace {

constexpr std::string_view default_board = "clipboard";
// Only for a new board: an existing one keeps the size it was made with.
constexpr std::size_t clip_max_size = std::size_t{1} << 20;

constexpr const char* usage_text =
    "usage: clipboard [--board NAME] copy [TEXT]\n"
    "       clipboard [--board NAME] paste\n"
    "       clipboard [--board NAME] watch [--count N]\n"
    "       clipboard [--board NAME] clear\n";

int usage(const char* why) {
  std::fprintf(stderr, "clipboard: %s\n%s", why, usage_text);
  return EX_USAGE;
}

// Scripts can tell "nothing to paste" from a real failure.
int fail(const shmbox::Error& error) {
  std::fprintf(stderr, "clipboard: %s\n", error.message().c_str());
  switch (error.errc()) {
    case shmbox::Errc::invalid_name:
    case shmbox::Errc::invalid_argument: return EX_USAGE;
    case shmbox::Errc::not_found: return EX_NOINPUT;
    case shmbox::Errc::too_large: return EX_DATAERR;
    case shmbox::Errc::closed: return EX_UNAVAILABLE;
    case shmbox::Errc::permission_denied: return EX_NOPERM;
    default: return 1;
  }
}

int fail_io(const char* what) {
  std::fprintf(stderr, "clipboard: %s: %s\n", what, std::strerror(errno));
  return EX_IOERR;
}

bool write_out(std::span<const std::byte> bytes) {
  // Flushed at once: a watch feeds pipelines that act on each clip as it comes.
  // An empty clip may come with a null pointer, which fwrite must not be given.
  const bool written = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size();
  return written && std::fflush(stdout) == 0;
}

// Reads at most `limit` bytes, so that an endless input is refused as too large instead
// of filling memory.
bool read_stdin(std::vector<std::byte>& bytes, std::size_t limit) {
  std::array<std::byte, 65536> chunk;
  while (bytes.size() < limit) {
    const ssize_t got = ::read(STDIN_FILENO, chunk.data(), std::min(chunk.size(), limit - bytes.size()));
    if (got == 0) return true;
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.insert(bytes.end(), chunk.data(), chunk.data() + got);
  }
  return true;
}

shmbox::Result<shmbox::Board> open_or_create(const std::string& name) {
  // System-owned: the clip outlives the copy that put it there, as a clipboard should.
  return shmbox::Board::open_or_create(name,
                                       {.max_size = clip_max_size, .ownership = shmbox::Ownership::system});
}

int copy(const std::string& name, const std::optional<std::string>& text) {
  auto board = open_or_create(name);
  if (!board) return fail(board.error());
  std::vector<std::byte> bytes;
  if (text) {
    const auto given = shmbox::as_bytes(*text);
    bytes.assign(given.begin(), given.end());
  } else if (!read_stdin(bytes, board->max_size() + 1)) {
    return fail_io("standard input");
  }
  // Over max_size, put refuses it whole: the clipboard keeps its previous clip.
  auto version = board->put(bytes);
  return version ? EX_OK : fail(version.error());
}

int paste(const std::string& name) {
  // open, not open_or_create: pasting must not leave a board behind.
  auto board = shmbox::Board::open(name);
  if (!board) return fail(board.error());
  // A copy rather than view(): a stalled reader of our stdout must not pin one of the
  // board's view slots.
  auto clip = board->get();
  if (!clip) return fail(clip.error());
  return write_out(clip->bytes) ? EX_OK : fail_io("standard output");
}

int watch(const std::string& name, std::optional<std::uint64_t> count) {
  // Created if need be, so that a watch may start before the first copy.
  auto board = open_or_create(name);
  if (!board) return fail(board.error());
  auto after = board->version();
  if (!after) return fail(after.error());
  constexpr std::byte newline{'\n'};
  for (std::uint64_t seen = 0; !count || seen < *count; ++seen) {
    auto clip = board->watch(*after);
    if (!clip) return fail(clip.error());
    // A board keeps only its latest value: clips copied faster than we print are gone.
    if (clip->skipped > 0) {
      std::fprintf(stderr, "clipboard: skipped %llu clip(s), replaced before they could be printed\n",
                   static_cast<unsigned long long>(clip->skipped));
    }
    clip->bytes.push_back(newline);
    if (!write_out(clip->bytes)) return fail_io("standard output");
    *after = clip->version;
  }
  return EX_OK;
}

int clear(const std::string& name) {
  auto removed = shmbox::Board::remove(name);
  // Like rm -f: an already empty clipboard is what was asked for.
  if (!removed && removed.error() != shmbox::Errc::not_found) return fail(removed.error());
  return EX_OK;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value == 0) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name{default_board};
  std::optional<std::uint64_t> count;
  std::vector<std::string> words;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      words.emplace_back(arg);
    } else if (arg == "--") {
      options_done = true;  // so that `copy -- --text` copies "--text"
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(usage_text, stdout);
      return EX_OK;
    } else if (arg == "--board" || arg == "--count") {
      if (i + 1 == argc) return usage("an option needs a value");
      const std::string_view value = argv[++i];
      if (arg == "--board") {
        name = value;
      } else {
        count = parse_count(value);
        if (!count) return usage("--count takes a positive whole number");
      }
    } else {
      return usage("unknown option");
    }
  }
  if (words.empty()) return usage("no command");
  const std::string& command = words[0];
  if (count && command != "watch") return usage("only watch takes --count");
  if (command == "copy" && words.size() <= 2) {
    return copy(name, words.size() == 2 ? std::optional{words[1]} : std::nullopt);
  }
  if (words.size() > 1) return usage("too many arguments");
  if (command == "paste") return paste(name);
  if (command == "watch") return watch(name, count);
  if (command == "clear") return clear(name);
  return usage("unknown command");
}
