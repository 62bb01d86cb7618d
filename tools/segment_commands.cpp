#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "cli_support.hpp"
#include "exit_codes.hpp"
#include "input.hpp"
#include "output.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"

namespace shmbox::cli {
namespace {

struct SegmentArgs {
  std::string name;
  std::string size;
  std::string mode = "600";
  bool open_existing = false;
  std::string offset = "0";
  std::string length;
  std::string text;
  bool text_given = false;
  bool json = false;
};

constexpr std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

std::string segment_object(const std::string& name) { return "segment '" + name + "'"; }

int print(const std::string& text) {
  auto written = Output::standard_output().write(text);
  return written ? EX_OK : fail_io(written.error());
}

int create(const SegmentArgs& args) {
  auto size = parse_size("size", args.size, no_limit);
  if (!size) return fail(size.error());
  auto mode = parse_mode("--mode", args.mode);
  if (!mode) return fail(mode.error());
  const SegmentOptions options{.mode = *mode};
  auto segment = args.open_existing ? Segment::open_or_create(args.name, *size, options)
                                    : Segment::create(args.name, *size, options);
  return segment ? EX_OK : fail(segment.error());
}

int write(const SegmentArgs& args) {
  auto offset = parse_size("--offset", args.offset, no_limit);
  if (!offset) return fail(offset.error());
  auto segment = Segment::open(args.name, Access::read_write);
  if (!segment) return fail(segment.error());
  const std::size_t size = segment->size();
  if (*offset > size) {
    return fail(Error{Errc::invalid_argument, segment_object(segment->name()),
                      fmt::format("offset {} is past its end ({} bytes)", *offset, size)});
  }
  // Standard input is read in bounded memory: at most what fits, plus one byte.
  std::vector<std::byte> data;
  if (args.text_given) {
    const auto text = as_bytes(args.text);
    data.assign(text.begin(), text.end());
  } else {
    auto read = read_at_most(STDIN_FILENO, "standard input", size - *offset);
    if (!read) return read.error().errc() == Errc::system ? fail_io(read.error()) : fail(read.error());
    data = std::move(*read);
  }
  if (data.size() > size - *offset) {
    return fail(Error{Errc::too_large, segment_object(segment->name()),
                      fmt::format("{} bytes at offset {} do not fit in its {} bytes", data.size(), *offset, size)});
  }
  auto memory = segment->writable_bytes();
  if (!memory) return fail(memory.error());
  std::memcpy(memory->data() + *offset, data.data(), data.size());
  return EX_OK;
}

int read(const SegmentArgs& args) {
  auto offset = parse_size("--offset", args.offset, no_limit);
  if (!offset) return fail(offset.error());
  auto length = args.length.empty() ? Result<std::uint64_t>{no_limit} : parse_size("--length", args.length, no_limit);
  if (!length) return fail(length.error());
  auto segment = Segment::open(args.name, Access::read_only);
  if (!segment) return fail(segment.error());
  const auto bytes = segment->bytes();
  if (*offset > bytes.size()) {
    return fail(Error{Errc::invalid_argument, segment_object(segment->name()),
                      fmt::format("offset {} is past its end ({} bytes)", *offset, bytes.size())});
  }
  const std::size_t shown = std::min<std::uint64_t>(*length, bytes.size() - *offset);
  auto written = Output::standard_output().write(bytes.subspan(*offset, shown));
  return written ? EX_OK : fail_io(written.error());
}

nlohmann::json to_json(const std::string& name, const SegmentInfo& info) {
  return {{"kind", "segment"}, {"name", name}, {"size", info.size}, {"mode", fmt::format("{:04o}", info.mode)},
          {"uid", info.owner_uid}, {"gid", info.owner_gid}};
}

int stat(const SegmentArgs& args) {
  auto info = Segment::stat(args.name);
  if (!info) return fail(info.error());
  if (args.json) return print(to_json(args.name, *info).dump() + "\n");
  return print(fmt::format("segment {}\n  size  {} bytes\n  mode  {:04o}\n  owner uid {} gid {}\n", args.name,
                           info->size, info->mode, info->owner_uid, info->owner_gid));
}

// Every shared-memory object that is not a mailbox's or an endpoint's: a segment may be
// any of them (shmbox's, or another program's opened by name).
int list(const SegmentArgs& args) {
  nlohmann::json rows = nlohmann::json::array();
  std::string text = fmt::format("{:<32} {:>14} {:>5} {:>6}\n", "NAME", "SIZE", "MODE", "UID");
  for (const auto& name : Segment::list()) {
    auto info = Segment::stat(name);
    if (args.json) {
      rows.push_back(info ? to_json(name, *info)
                          : nlohmann::json{{"kind", "segment"}, {"name", name}, {"error", info.error().message()},
                                           {"exit_code", exit_code(info.error().errc())}});
    } else {
      text += info ? fmt::format("{:<32} {:>14} {:>5o} {:>6}\n", name, info->size, info->mode, info->owner_uid)
                   : fmt::format("{:<32} {}\n", name, info.error().message());
    }
  }
  return print(args.json ? rows.dump() + "\n" : text);
}

int remove(const SegmentArgs& args) {
  auto removed = Segment::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

}  // namespace

void add_segment_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<SegmentArgs>();
  auto* segment = app.add_subcommand("segment", "Shared-memory segments in /dev/shm");
  segment->require_subcommand(1);

  auto* create_cmd = segment->add_subcommand("create", "Create a segment (exclusive; mode 0600 unless --mode)");
  create_cmd->add_option("name", args->name, "Segment name")->required();
  create_cmd->add_option("size", args->size, "Size: 4096, 64KiB, 1MiB")->required();
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal");
  create_cmd->add_flag("--open-existing", args->open_existing, "Open the segment if it exists already");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* write_cmd = segment->add_subcommand("write", "Write TEXT (or stdin) into a segment");
  write_cmd->add_option("name", args->name, "Segment name")->required();
  write_cmd->add_option("text", args->text, "Bytes to write; stdin when absent")
      ->each([args](const std::string&) { args->text_given = true; });
  write_cmd->add_option("--offset", args->offset, "Byte offset to write at");
  write_cmd->callback([args, &exit_status] { exit_status = write(*args); });

  auto* read_cmd = segment->add_subcommand("read", "Copy a segment's bytes to stdout");
  read_cmd->add_option("name", args->name, "Segment name")->required();
  read_cmd->add_option("--offset", args->offset, "Byte offset to start at");
  read_cmd->add_option("--length", args->length, "Bytes to read (default: to the end)");
  read_cmd->callback([args, &exit_status] { exit_status = read(*args); });

  auto* stat_cmd = segment->add_subcommand("stat", "Show a segment's size, mode and owner");
  stat_cmd->add_option("name", args->name, "Segment name")->required();
  stat_cmd->add_flag("--json", args->json, "Print JSON");
  stat_cmd->callback([args, &exit_status] { exit_status = stat(*args); });

  auto* ls_cmd = segment->add_subcommand("ls", "List the shared-memory objects that may be segments");
  ls_cmd->add_flag("--json", args->json, "Print one JSON array");
  ls_cmd->callback([args, &exit_status] { exit_status = list(*args); });

  auto* rm_cmd = segment->add_subcommand("rm", "Remove a segment's name");
  rm_cmd->add_option("name", args->name, "Segment name")->required();
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });
}

}  // namespace shmbox::cli
