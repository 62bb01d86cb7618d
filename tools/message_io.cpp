#include "message_io.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "output.hpp"
#include "shmbox/mailbox_types.hpp"

namespace shmbox::cli {

std::string plural(std::uint64_t count, const char* noun) {
  return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s");
}

std::string written_so_far(std::uint64_t written, std::optional<std::uint64_t> count) {
  return count ? fmt::format("; {} of {} written", written, *count) : fmt::format("; {} written", written);
}

MessageSource::MessageSource(const std::vector<std::string>& arguments, std::string file, bool null,
                             std::size_t max_size)
    : arguments_(arguments), file_(std::move(file)), from_file_(!file_.empty()), max_size_(max_size) {
  if (arguments_.empty() && !from_file_) reader_.emplace(STDIN_FILENO, "standard input", null ? '\0' : '\n', max_size);
}

Result<std::optional<std::span<const std::byte>>> MessageSource::next() {
  if (reader_) return reader_->next();
  if (from_file_) {
    if (file_taken_) return std::nullopt;
    file_taken_ = true;
    auto read = read_whole_file(file_, max_size_);
    if (!read) return std::unexpected(read.error());
    file_message_ = std::move(*read);
    return std::span<const std::byte>{file_message_};
  }
  if (index_ == arguments_.size()) return std::nullopt;
  return as_bytes(arguments_[index_++]);
}

std::optional<std::size_t> MessageSource::total() const {
  if (reader_) return std::nullopt;
  return from_file_ ? 1 : arguments_.size();
}

std::string record_of(std::span<const std::byte> message, const Metadata& metadata, Framing framing) {
  if (framing == Framing::json) {
    nlohmann::json record{{metadata.kind, metadata.at}, {"size", message.size()}, {"data", base64(message)}};
    if (metadata.sequence) record["sequence"] = *metadata.sequence;
    if (metadata.sender != nullptr) record["sender"] = *metadata.sender;
    if (metadata.lost) record["lost"] = *metadata.lost;
    return record.dump() + "\n";
  }
  std::string record;
  if (metadata.sender != nullptr && framing == Framing::lines) record = *metadata.sender + ": ";
  record.append(reinterpret_cast<const char*>(message.data()), message.size());
  if (framing == Framing::lines) record += '\n';
  if (framing == Framing::nul) record += '\0';
  return record;
}

}  // namespace shmbox::cli
