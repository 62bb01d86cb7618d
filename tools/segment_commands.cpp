#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "cli_support.hpp"
#include "exit_codes.hpp"
#include "shmbox/segment.hpp"

namespace shmbox::cli {
namespace {

struct SegmentArgs {
  std::string name;
  std::size_t size = 0;
  std::string mode = "600";
  bool open_existing = false;
  std::size_t offset = 0;
  std::size_t length = 0;
  bool length_given = false;
  std::string text;
  bool text_given = false;
  bool json = false;
};

int create(const SegmentArgs& args) {
  auto mode = parse_mode(args.mode);
  if (!mode) return fail(mode.error());
  const SegmentOptions options{.mode = *mode};
  auto segment = args.open_existing ? Segment::open_or_create(args.name, args.size, options)
                                    : Segment::create(args.name, args.size, options);
  return segment ? EX_OK : fail(segment.error());
}

int write(const SegmentArgs& args) {
  auto segment = Segment::open(args.name, Access::read_write);
  if (!segment) return fail(segment.error());
  std::string data = args.text;
  if (!args.text_given) data.assign(std::istreambuf_iterator<char>{std::cin}, {});
  const std::size_t size = segment->size();
  if (args.offset > size || data.size() > size - args.offset) {
    return fail(Error{Errc::too_large, "segment '" + segment->name() + "'",
                      fmt::format("{} bytes at offset {} do not fit in its {} bytes", data.size(), args.offset, size)});
  }
  auto memory = segment->writable_bytes();
  if (!memory) return fail(memory.error());
  std::memcpy(memory->data() + args.offset, data.data(), data.size());
  return EX_OK;
}

int read(const SegmentArgs& args) {
  auto segment = Segment::open(args.name, Access::read_only);
  if (!segment) return fail(segment.error());
  const auto bytes = segment->bytes();
  if (args.offset > bytes.size()) {
    return fail(Error{Errc::invalid_argument, "segment '" + segment->name() + "'",
                      fmt::format("offset {} is past its end ({} bytes)", args.offset, bytes.size())});
  }
  const std::size_t available = bytes.size() - args.offset;
  const std::size_t length = args.length_given ? std::min(args.length, available) : available;
  std::fwrite(bytes.data() + args.offset, 1, length, stdout);
  return EX_OK;
}

int stat(const SegmentArgs& args) {
  auto info = Segment::stat(args.name);
  if (!info) return fail(info.error());
  if (args.json) {
    const nlohmann::json report{{"name", args.name}, {"size", info->size},
                                {"mode", fmt::format("{:04o}", info->mode)}, {"uid", info->owner_uid},
                                {"gid", info->owner_gid}};
    fmt::print("{}\n", report.dump());
  } else {
    fmt::print("segment {}\n  size  {} bytes\n  mode  {:04o}\n  owner uid {} gid {}\n", args.name, info->size,
               info->mode, info->owner_uid, info->owner_gid);
  }
  return EX_OK;
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
  create_cmd->add_option("size", args->size, "Size in bytes")->required()->check(CLI::NonNegativeNumber);
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal");
  create_cmd->add_flag("--open-existing", args->open_existing, "Open the segment if it exists already");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* write_cmd = segment->add_subcommand("write", "Write TEXT (or stdin) into a segment");
  write_cmd->add_option("name", args->name, "Segment name")->required();
  write_cmd->add_option("text", args->text, "Bytes to write; stdin when absent")
      ->each([args](const std::string&) { args->text_given = true; });
  write_cmd->add_option("--offset", args->offset, "Byte offset to write at")->check(CLI::NonNegativeNumber);
  write_cmd->callback([args, &exit_status] { exit_status = write(*args); });

  auto* read_cmd = segment->add_subcommand("read", "Copy a segment's bytes to stdout");
  read_cmd->add_option("name", args->name, "Segment name")->required();
  read_cmd->add_option("--offset", args->offset, "Byte offset to start at")->check(CLI::NonNegativeNumber);
  read_cmd->add_option("--length", args->length, "Bytes to read (default: to the end)")
      ->check(CLI::NonNegativeNumber)
      ->each([args](const std::string&) { args->length_given = true; });
  read_cmd->callback([args, &exit_status] { exit_status = read(*args); });

  auto* stat_cmd = segment->add_subcommand("stat", "Show a segment's size, mode and owner");
  stat_cmd->add_option("name", args->name, "Segment name")->required();
  stat_cmd->add_flag("--json", args->json, "Print JSON");
  stat_cmd->callback([args, &exit_status] { exit_status = stat(*args); });

  auto* rm_cmd = segment->add_subcommand("rm", "Remove a segment's name");
  rm_cmd->add_option("name", args->name, "Segment name")->required();
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });
}

}  // namespace shmbox::cli
