// shmbox board: create, put, get, watch and remove boards (one shared value with a
// version), local or on NATS.
#include <fmt/core.h>
#include <sysexits.h>
#include <unistd.h>

#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli_support.hpp"
#include "commands.hpp"
#include "input.hpp"
#include "message_io.hpp"
#include "output.hpp"
#include "shmbox/board.hpp"

namespace shmbox::cli {
namespace {

struct BoardArgs {
  std::string name;
  std::string max_size = "64KiB";
  std::optional<std::string> max_views;
  std::string mode = "600";
  bool mode_given = false;
  std::string replicas;
  std::optional<std::string> value;
  std::string file;
  std::optional<std::string> if_version;
  std::optional<std::string> timeout;
  bool version_only = false;
  bool json = false;
  bool null = false;
  std::optional<std::string> count;
  std::optional<std::string> after;
};

Error usage_error(std::string what) { return Error{Errc::invalid_argument, "usage", std::move(what)}; }

std::string board_object(const std::string& name) { return fmt::format("board '{}'", name); }

Result<Deadline> deadline_of(const BoardArgs& args) {
  return args.timeout ? parse_duration("--timeout", *args.timeout) : Result<Deadline>{forever};
}

int create(const BoardArgs& args) {
  auto max_size = parse_size("--max-size", args.max_size, max_board_size);
  if (!max_size) return fail(max_size.error());
  // A board made from the command line outlives the command: the system owns it.
  BoardOptions options{.max_size = *max_size, .ownership = Ownership::system};
  if (is_remote(args.name)) {
    if (args.mode_given) {
      return fail(Error{Errc::invalid_argument, "--mode",
                        "a nats:// board has no permission bits: the server's accounts decide who may use it"});
    }
    if (args.max_views) {
      return fail(Error{Errc::invalid_argument, "--max-views", "a nats:// board's views are copies: there is nothing to pin"});
    }
    if (!args.replicas.empty()) {
      auto replicas = parse_count("--replicas", args.replicas, 1, 5);
      if (!replicas) return fail(replicas.error());
      options.replicas = static_cast<std::uint32_t>(*replicas);
    }
  } else {
    if (!args.replicas.empty()) {
      return fail(Error{Errc::invalid_argument, "--replicas", "only a nats:// board is kept in copies"});
    }
    auto mode = parse_mode("--mode", args.mode);
    if (!mode) return fail(mode.error());
    options.mode = *mode;
    if (args.max_views) {
      auto views = parse_count("--max-views", *args.max_views, 1, max_board_views);
      if (!views) return fail(views.error());
      options.max_views = static_cast<std::uint32_t>(*views);
    }
  }
  auto board = Board::create(args.name, options);
  return board ? EX_OK : fail(board.error());
}

// The value to put: the argument, the file, or all of standard input; never more than
// the board takes (a longer input is refused before the rest of it is read).
Result<std::vector<std::byte>> value_of(const BoardArgs& args, std::size_t max_size) {
  if (args.value) {
    const auto bytes = as_bytes(*args.value);
    return std::vector<std::byte>{bytes.begin(), bytes.end()};
  }
  if (!args.file.empty()) return read_whole_file(args.file, max_size);
  return read_at_most(STDIN_FILENO, "standard input", max_size);
}

int put(const BoardArgs& args) {
  if (args.value && !args.file.empty()) return fail(usage_error("board put takes a VALUE or --file, not both"));
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  std::optional<std::uint64_t> expected;
  if (args.if_version) {
    auto version = parse_count("--if-version", *args.if_version, 0, std::numeric_limits<std::uint64_t>::max());
    if (!version) return fail(version.error());
    expected = *version;
  }
  auto board = Board::open(args.name);
  if (!board) return fail(board.error());
  auto value = value_of(args, board->max_size());
  if (!value) return fail_input(value.error(), board_object(args.name), "the value", board->max_size(), "nothing was put");
  auto version = expected ? board->put_if(*expected, *value, *deadline) : board->put(*value, *deadline);
  if (!version) return fail(version.error());
  auto written = Output::standard_output().write(fmt::format("{}\n", *version));
  return written ? EX_OK : fail_io(written.error());
}

int get(const BoardArgs& args) {
  if (args.version_only && args.json) return fail(usage_error("board get takes --version or --json, not both"));
  auto board = Board::open(args.name);
  if (!board) return fail(board.error());
  auto output = Output::standard_output();
  Result<void> written;
  if (args.version_only) {
    auto version = board->version();
    if (!version) return fail(version.error());
    written = output.write(fmt::format("{}\n", *version));
  } else {
    auto value = board->get();
    if (!value) return fail(value.error());
    written = args.json ? output.write(nlohmann::json{{"board", args.name},
                                                      {"version", value->version},
                                                      {"size", value->bytes.size()},
                                                      {"data", base64(value->bytes)}}
                                           .dump() +
                                       "\n")
                        : output.write(value->bytes);
  }
  return written ? EX_OK : fail_io(written.error());
}

std::string record_of(const std::string& name, const BoardValue& value, const BoardArgs& args) {
  if (args.json) {
    return nlohmann::json{{"board", name},
                          {"version", value.version},
                          {"skipped", value.skipped},
                          {"size", value.bytes.size()},
                          {"data", base64(value.bytes)}}
               .dump() +
           "\n";
  }
  std::string record{reinterpret_cast<const char*>(value.bytes.data()), value.bytes.size()};
  record += args.null ? '\0' : '\n';
  return record;
}

int watch(const BoardArgs& args) {
  if (args.json && args.null) return fail(usage_error("board watch takes --null or --json, not both"));
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  std::optional<std::uint64_t> count;
  if (args.count) {
    auto parsed = parse_count("--count", *args.count, 1, std::numeric_limits<std::uint64_t>::max());
    if (!parsed) return fail(parsed.error());
    count = *parsed;
  }
  auto board = Board::open(args.name);
  if (!board) return fail(board.error());
  std::uint64_t after = 0;
  if (args.after) {
    auto parsed = parse_count("--after", *args.after, 0, std::numeric_limits<std::uint64_t>::max());
    if (!parsed) return fail(parsed.error());
    after = *parsed;
  } else {
    auto latest = board->version();
    if (!latest) return fail(latest.error());
    after = *latest;
  }
  auto output = Output::standard_output();
  for (std::uint64_t written = 0; !count || written < *count; ++written) {
    auto next = board->watch(after, *deadline);
    if (!next) {
      const Error& cause = next.error();
      return fail(Error{cause.errc(), std::string{cause.object()}, cause.detail() + written_so_far(written, count)});
    }
    if (auto done = output.write(record_of(args.name, *next, args)); !done) {
      return fail_io(Error{Errc::system, "stdout", done.error().detail() + written_so_far(written, count)});
    }
    after = next->version;
  }
  return EX_OK;
}

int remove(const BoardArgs& args) {
  auto removed = Board::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

}  // namespace

void add_board_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<BoardArgs>();
  auto* board_cmd = app.add_subcommand("board", "Boards: one shared value with a version, read by many");
  board_cmd->require_subcommand(1);
  const char* name_help = "Board name, or nats://host:port/NAME";

  auto* create_cmd = board_cmd->add_subcommand(
      "create", "Create a board holding the empty value at version 0 (mode 0600 unless --mode; owned by the system)");
  create_cmd->add_option("name", args->name, name_help)->required();
  create_cmd->add_option("--max-size", args->max_size, "Largest value: 4096, 64KiB, 1MiB (default 64KiB)");
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal")->each([args](const std::string&) {
    args->mode_given = true;
  });
  create_cmd->add_option("--max-views", args->max_views, "Zero-copy views held at once, 1 to 64 (default 8)");
  create_cmd->add_option("--replicas", args->replicas, "nats:// only: copies the cluster keeps (1, 3 or 5)");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* put_cmd = board_cmd->add_subcommand(
      "put", "Publish VALUE, the --file, or all of stdin as the board's next version; print that version");
  put_cmd->add_option("name", args->name, name_help)->required();
  put_cmd->add_option("value", args->value, "The value (its bytes exactly)");
  put_cmd->add_option("--file", args->file, "Publish this file's bytes");
  put_cmd->add_option("--if-version", args->if_version,
                      "Only if the latest version is still this one; else exit 75, naming the latest");
  put_cmd->add_option("--timeout", args->timeout, "Wait at most this long for another writer (exit 75)");
  put_cmd->callback([args, &exit_status] { exit_status = put(*args); });

  auto* get_cmd = board_cmd->add_subcommand("get", "Print the latest value exactly, nothing added");
  get_cmd->add_option("name", args->name, name_help)->required();
  get_cmd->add_flag("--version", args->version_only, "Print the latest version number instead");
  get_cmd->add_flag("--json", args->json, "One JSON object: board, version, size, data (base64)");
  get_cmd->callback([args, &exit_status] { exit_status = get(*args); });

  auto* watch_cmd = board_cmd->add_subcommand(
      "watch", "Print each new value on its own line as it is published (a slow reader gets the latest)");
  watch_cmd->add_option("name", args->name, name_help)->required();
  watch_cmd->add_option("--count", args->count, "Stop after this many values (default: no limit)");
  watch_cmd->add_option("--timeout", args->timeout, "Stop after this long in all (exit 75)");
  watch_cmd->add_option("--after", args->after, "Start after this version (default: the latest now)");
  watch_cmd->add_flag("--null", args->null, "End each value with a NUL byte instead of a newline");
  watch_cmd->add_flag("--json", args->json,
                      "One JSON object per line: board, version, skipped, size, data (base64)");
  watch_cmd->callback([args, &exit_status] { exit_status = watch(*args); });

  auto* rm_cmd = board_cmd->add_subcommand("rm", "Remove a board: its watchers stop (exit 69, closed)");
  rm_cmd->add_option("name", args->name, name_help)->required();
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });
}

}  // namespace shmbox::cli
