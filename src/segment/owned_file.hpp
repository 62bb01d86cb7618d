// What boards and topics do the same way with their files: a file named only once sized,
// whose validated header records its owner (0: the system) and can be marked removed.
// Retiring one unlinks its name (if it still names this file) and then marks it, so that
// every handle's calls fail and sleepers wake.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>

#include "base/name.hpp"
#include "segment/garbage.hpp"
#include "segment/segment_factory.hpp"
#include "shmbox/error.hpp"
#include "shmbox/segment.hpp"

namespace shmbox::detail {

struct OwnedFile {
  std::string file_name;
  std::string object;
  // The owner a valid file's header records, or why the file is not valid.
  std::function<Result<std::uint64_t>(const Segment&)> owner_of;
  // Marks a valid file removed.
  std::function<void(const Segment&)> mark_removed;

  // Unlinks the name if it still names `mapping`'s file, then marks it removed. A removal
  // the kernel refuses changes nothing.
  Result<void> retire(const Segment& mapping) const;
  // By name: a file that cannot be read as valid (corrupt, half-made) goes all the same.
  Result<void> remove() const;
  // Retires `mapping` if its owner has exited: the error an open then gives.
  std::optional<Error> retire_if_owner_exited(const Segment& mapping, std::uint64_t owner) const;
  // Removes the file if it is garbage (left empty, or its owner has exited), and says why.
  std::optional<Garbage> remove_if_garbage() const;
};

// An OwnedFile for a layout: `validate(mapping, object)` gives a record with an `owner`;
// `mark_removed(Header&)` marks a valid file's header.
template <class Header, class Validate>
OwnedFile owned_file(const std::string& file_name, const std::string& object, Validate validate,
                     void (*mark_removed)(Header&) noexcept) {
  return OwnedFile{.file_name = file_name,
                   .object = object,
                   .owner_of = [object, validate](const Segment& mapping) -> Result<std::uint64_t> {
                     auto record = validate(mapping, object);
                     if (!record) return std::unexpected(record.error());
                     return record->owner;
                   },
                   .mark_removed = [mark_removed](const Segment& mapping) {
                     mark_removed(*reinterpret_cast<Header*>(const_cast<std::byte*>(mapping.bytes().data())));
                   }};
}

// A file opened read-only to report on (stat), as its validated record and the file's facts.
template <class Record>
struct Inspected {
  Segment mapping;  // what `record` points into
  Record record;
  SegmentInfo info;
};

template <class Validate>
auto inspect(const FileNames& names, Validate validate)
    -> Result<Inspected<typename std::invoke_result_t<Validate, const Segment&, const std::string&>::value_type>> {
  auto mapping = SegmentFactory::open(names.file_name, names.object, Access::read_only);
  if (!mapping) return std::unexpected(mapping.error());
  auto record = validate(*mapping, names.object);
  if (!record) return std::unexpected(record.error());
  auto info = SegmentFactory::stat(names.file_name, names.object);
  if (!info) return std::unexpected(info.error());
  return Inspected<std::remove_cvref_t<decltype(*record)>>{std::move(*mapping), *record, *info};
}

// Why an owner record (0: the system) cannot be what its creator wrote: an implausible
// process, or another process than the creator (an object belongs to its creator or the
// system). "board", "topic": the kind, for the message.
std::optional<Error> implausible_owner(std::uint64_t owner, std::uint64_t creator, const std::string& object,
                                       const std::string& kind);

}  // namespace shmbox::detail
