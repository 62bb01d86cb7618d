#include "shmbox/segment.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <limits>
#include <string>

#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

bool exists_in_dev_shm(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

// Each test gets its own name and leaves nothing behind in /dev/shm.
class SegmentTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Segment::remove(name); }
  std::string name = test::unique_name("segment");
};

void write_text(Segment& segment, std::string_view text) {
  auto memory = segment.writable_bytes().value();
  std::memcpy(memory.data(), text.data(), text.size());
}

std::string read_text(const Segment& segment, std::size_t length) {
  return {reinterpret_cast<const char*>(segment.bytes().data()), length};
}

TEST_F(SegmentTest, CreateWriteOpenReadAcrossProcesses) {
  auto segment = Segment::create(name, 4096);
  ASSERT_TRUE(segment) << segment.error().message();
  EXPECT_EQ(segment->size(), 4096u);
  EXPECT_EQ(segment->name(), name);
  write_text(*segment, "from parent");

  auto child = ChildProcess::spawn([&] {
    auto view = Segment::open(name, Access::read_only);
    if (!view || read_text(*view, 11) != "from parent") return 1;
    auto rw = Segment::open(name, Access::read_write);
    if (!rw) return 2;
    write_text(*rw, "from child!");
    return 0;
  });
  ASSERT_TRUE(child.wait().exited_with(0));
  EXPECT_EQ(read_text(*segment, 11), "from child!");
}

TEST_F(SegmentTest, LeadingSlashIsThePosixSpellingOfTheSameName) {
  ASSERT_TRUE(Segment::create("/" + name, 64));
  auto opened = Segment::open(name);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->name(), name);
  EXPECT_TRUE(exists_in_dev_shm(name));
}

TEST_F(SegmentTest, InteroperatesWithPlainShmOpen) {
  ASSERT_TRUE(Segment::create(name, 128));
  const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  ::close(fd);
}

TEST_F(SegmentTest, CreateIsExclusive) {
  ASSERT_TRUE(Segment::create(name, 64));
  auto again = Segment::create(name, 64);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errc(), Errc::already_exists);
  EXPECT_EQ(again.error().message(), "segment '" + name + "': cannot create: already exists (File exists)");
}

TEST_F(SegmentTest, OpenMissingIsNotFound) {
  auto opened = Segment::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::not_found);
  EXPECT_EQ(opened.error().system_errno(), ENOENT);
  EXPECT_EQ(opened.error().message(),
            "segment '" + name + "': cannot open: does not exist (No such file or directory)");
  EXPECT_EQ(Segment::stat(name).error().errc(), Errc::not_found);
}

TEST_F(SegmentTest, RemoveMissingIsNotFound) {
  auto removed = Segment::remove(name);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().errc(), Errc::not_found);
  EXPECT_EQ(removed.error().message(),
            "segment '" + name + "': cannot remove: does not exist (No such file or directory)");
}

TEST_F(SegmentTest, SizeZeroIsRejected) {
  auto created = Segment::create(name, 0);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().errc(), Errc::invalid_argument);
  EXPECT_EQ(created.error().message(), "segment '" + name + "': size must be at least 1 byte");
  EXPECT_FALSE(exists_in_dev_shm(name));
  EXPECT_EQ(Segment::open_or_create(name, 0).error().errc(), Errc::invalid_argument);
}

TEST_F(SegmentTest, ModeOutsidePermissionBitsIsRejected) {
  auto created = Segment::create(name, 64, {.mode = 04755});
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().errc(), Errc::invalid_argument);
  EXPECT_EQ(created.error().message(), "segment '" + name + "': mode must be permission bits within 0777");
}

TEST_F(SegmentTest, DefaultModeIs0600WhateverTheUmask) {
  const mode_t old_umask = ::umask(0);
  auto created = Segment::create(name, 64);
  ::umask(old_umask);
  ASSERT_TRUE(created);
  EXPECT_EQ(Segment::stat(name)->mode, 0600u);
}

TEST_F(SegmentTest, ModeOptionIsAppliedExactlyDespiteTheUmask) {
  const mode_t old_umask = ::umask(077);
  auto created = Segment::create(name, 64, {.mode = 0644});
  ::umask(old_umask);
  ASSERT_TRUE(created);
  auto info = Segment::stat(name);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->mode, 0644u);
  EXPECT_EQ(info->size, 64u);
  EXPECT_EQ(info->owner_uid, ::geteuid());
}

TEST_F(SegmentTest, ReadOnlyOpenMapsWithoutWritePermission) {
  ASSERT_TRUE(Segment::create(name, 64));
  auto view = Segment::open(name, Access::read_only);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->access(), Access::read_only);
  auto writable = view->writable_bytes();
  ASSERT_FALSE(writable);
  EXPECT_EQ(writable.error().errc(), Errc::permission_denied);
  EXPECT_EQ(writable.error().message(), "segment '" + name + "': was opened read-only");
  EXPECT_EQ(view->resize(128).error().errc(), Errc::permission_denied);

  // The mapping itself is PROT_READ: a write through a cast faults in a child.
  auto child = ChildProcess::spawn([&] {
    std::signal(SIGSEGV, SIG_DFL);  // sanitizers would turn the fault into an abort
    auto* byte = const_cast<std::byte*>(view->bytes().data());
    *static_cast<volatile std::byte*>(byte) = std::byte{1};
    return 0;
  });
  EXPECT_TRUE(child.wait().killed_by(SIGSEGV));
}

TEST_F(SegmentTest, InitializeRunsBeforeTheNameAppears) {
  test::Pipe progress;
  auto creator = ChildProcess::spawn([&] {
    auto created = Segment::create(name, 4096, {.initialize = [&](std::span<std::byte> memory) {
      progress.send("initializing");
      std::this_thread::sleep_for(300ms);
      std::memset(memory.data(), 'x', memory.size());
    }});
    return created ? 0 : 1;
  });
  ASSERT_EQ(progress.receive(), "initializing");
  EXPECT_EQ(Segment::open(name).error().errc(), Errc::not_found);
  auto opened = Segment::open_wait(name, Access::read_only, 10s);
  ASSERT_TRUE(opened) << opened.error().message();
  for (const std::byte b : opened->bytes()) ASSERT_EQ(b, std::byte{'x'});
  EXPECT_TRUE(creator.wait().exited_with(0));
}

TEST_F(SegmentTest, CreatorKilledBeforePublishingLeavesNothingBehind) {
  test::Pipe progress;
  auto creator = ChildProcess::spawn([&] {
    (void)Segment::create(name, 1 << 20, {.initialize = [&](std::span<std::byte>) {
      progress.send("initializing");
      ::pause();
    }});
    return 0;
  });
  ASSERT_EQ(progress.receive(), "initializing");
  creator.kill(SIGKILL);
  EXPECT_TRUE(creator.wait().killed_by(SIGKILL));
  EXPECT_FALSE(exists_in_dev_shm(name));
  EXPECT_TRUE(Segment::create(name, 64));
}

TEST_F(SegmentTest, OpenWaitSleepsUntilTheProducerCreates) {
  auto consumer = ChildProcess::spawn([&] {
    auto opened = Segment::open_wait(name, Access::read_only, 20s);
    return opened && read_text(*opened, 5) == "Hello" ? 0 : 1;
  });
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(Segment::create(name, 64, {.initialize = [](std::span<std::byte> memory) {
    std::memcpy(memory.data(), "Hello", 5);
  }}));
  EXPECT_TRUE(consumer.wait().exited_with(0));
}

TEST_F(SegmentTest, OpenWaitTimesOutWithoutSpinning) {
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto start = std::chrono::steady_clock::now();
  auto opened = Segment::open_wait(name, Access::read_only, 500ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::timeout);
  EXPECT_EQ(opened.error().message(), "segment '" + name + "': did not appear in time (cannot open: does not exist)");
  EXPECT_GE(waited, 500ms);
  auto cpu_us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1'000'000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  // A spinning wait would burn the whole 500 ms.
  EXPECT_LT(cpu_us(after) - cpu_us(before), 100'000L);
}

TEST_F(SegmentTest, EmptySegmentFromATextbookProducerIsNotReadyUntilSized) {
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  auto early = Segment::open(name);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().errc(), Errc::not_ready);
  EXPECT_EQ(early.error().message(), "segment '" + name + "': is empty: its creator has not sized it yet");

  auto consumer = ChildProcess::spawn([&] {
    auto opened = Segment::open_wait(name, Access::read_only, 20s);
    return opened && opened->size() == 4096 ? 0 : 1;
  });
  std::this_thread::sleep_for(100ms);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  ::close(fd);
  EXPECT_TRUE(consumer.wait().exited_with(0));
}

TEST_F(SegmentTest, OpenOrCreateOpensGrowsAndNeverShrinks) {
  {
    auto first = Segment::open_or_create(name, 64);
    ASSERT_TRUE(first);
    write_text(*first, "kept");
  }
  auto bigger = Segment::open_or_create(name, 8192);
  ASSERT_TRUE(bigger);
  EXPECT_EQ(bigger->size(), 8192u);
  EXPECT_EQ(read_text(*bigger, 4), "kept");
  auto smaller = Segment::open_or_create(name, 16);
  ASSERT_TRUE(smaller);
  EXPECT_EQ(smaller->size(), 8192u);
}

TEST_F(SegmentTest, ConcurrentOpenOrCreateYieldsOneSegment) {
  std::vector<ChildProcess> children;
  for (int i = 0; i < 6; ++i) {
    children.push_back(ChildProcess::spawn([&, i] {
      auto segment = Segment::open_or_create(name, 4096);
      if (!segment) return 1;
      auto memory = segment->writable_bytes().value();
      memory[static_cast<std::size_t>(i)] = std::byte{1};
      return 0;
    }));
  }
  for (auto& child : children) EXPECT_TRUE(child.wait().exited_with(0));
  auto segment = Segment::open(name, Access::read_only);
  ASSERT_TRUE(segment);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(segment->bytes()[i], std::byte{1}) << i;
}

TEST_F(SegmentTest, ResizeGrowsAndShrinksAndOthersRefresh) {
  auto segment = Segment::create(name, 4096);
  ASSERT_TRUE(segment);
  write_text(*segment, "abc");
  ASSERT_TRUE(segment->resize(1 << 20));
  EXPECT_EQ(segment->size(), 1u << 20);
  EXPECT_EQ(read_text(*segment, 3), "abc");
  segment->writable_bytes().value()[(1 << 20) - 1] = std::byte{7};

  auto child = ChildProcess::spawn([&] {
    auto other = Segment::open(name, Access::read_only);
    return other && other->size() == (1u << 20) && other->bytes()[(1 << 20) - 1] == std::byte{7} ? 0 : 1;
  });
  EXPECT_TRUE(child.wait().exited_with(0));

  auto other = Segment::open(name, Access::read_only);
  ASSERT_TRUE(other);
  ASSERT_TRUE(segment->resize(100));
  EXPECT_EQ(segment->size(), 100u);
  ASSERT_TRUE(other->refresh());
  EXPECT_EQ(other->size(), 100u);
  EXPECT_EQ(read_text(*other, 3), "abc");
  EXPECT_EQ(segment->resize(0).error().errc(), Errc::invalid_argument);
}

std::size_t dev_shm_capacity() {
  struct statvfs fs {};
  if (::statvfs("/dev/shm", &fs) != 0) return 0;
  return static_cast<std::size_t>(fs.f_blocks) * fs.f_frsize;
}

TEST_F(SegmentTest, CreateBeyondDevShmIsNoSpaceAndLeavesNothing) {
  const std::size_t capacity = dev_shm_capacity();
  if (capacity == 0) GTEST_SKIP() << "/dev/shm reports no size limit";
  const std::size_t size = capacity + (std::size_t{1} << 30);
  auto created = Segment::create(name, size);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().errc(), Errc::no_space);
  EXPECT_EQ(created.error().message(), "segment '" + name + "': cannot reserve " + std::to_string(size) +
                                           " bytes: not enough room in /dev/shm (No space left on device)");
  EXPECT_FALSE(exists_in_dev_shm(name));
}

TEST_F(SegmentTest, ResizeBeyondDevShmIsNoSpaceAndKeepsTheSegment) {
  const std::size_t capacity = dev_shm_capacity();
  if (capacity == 0) GTEST_SKIP() << "/dev/shm reports no size limit";
  auto segment = Segment::create(name, 4096);
  ASSERT_TRUE(segment);
  write_text(*segment, "intact");
  const std::size_t size = capacity + (std::size_t{1} << 30);
  auto resized = segment->resize(size);
  ASSERT_FALSE(resized);
  EXPECT_EQ(resized.error().errc(), Errc::no_space);
  EXPECT_EQ(resized.error().message(), "segment '" + name + "': cannot reserve " + std::to_string(size) +
                                           " bytes: not enough room in /dev/shm (No space left on device)");
  EXPECT_EQ(segment->size(), 4096u);
  EXPECT_EQ(Segment::stat(name)->size, 4096u);
  EXPECT_EQ(read_text(*segment, 6), "intact");
}

TEST_F(SegmentTest, AFullDevShmFailsAtCreateAndResizeNeverAtAWrite) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to mount a small /dev/shm";
  // A private mount namespace with a 1 MiB /dev/shm: the machine's own is untouched.
  auto child = ChildProcess::spawn([&] {
    if (!test::private_dev_shm("1m")) {
      return 10;
    }
    auto first = Segment::create(name, 768 << 10);
    if (!first) return 1;
    auto second = Segment::create(name + "-2", 512 << 10);
    if (second || second.error().errc() != Errc::no_space) return 2;
    if (exists_in_dev_shm(name + "-2")) return 3;
    auto grown = first->resize(2 << 20);
    if (grown || grown.error().errc() != Errc::no_space || first->size() != (768u << 10)) return 4;
    // Every page was reserved at create: filling the segment cannot SIGBUS.
    auto memory = first->writable_bytes().value();
    std::memset(memory.data(), 0xab, memory.size());
    return 0;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here (no CAP_SYS_ADMIN?)";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(SegmentTest, ResizeBeyondTheFileLimitIsTooLarge) {
  auto segment = Segment::create(name, 64);
  ASSERT_TRUE(segment);
  const std::size_t size = std::numeric_limits<std::size_t>::max();
  auto resized = segment->resize(size);
  ASSERT_FALSE(resized);
  EXPECT_EQ(resized.error().errc(), Errc::too_large);
  EXPECT_EQ(resized.error().message(),
            "segment '" + name + "': size " + std::to_string(size) + " is beyond the file size limit");
  EXPECT_EQ(segment->size(), 64u);
}

TEST_F(SegmentTest, RefreshOfASegmentTruncatedToNothingIsNotReady) {
  auto segment = Segment::create(name, 64);
  ASSERT_TRUE(segment);
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 0), 0);
  ::close(fd);
  auto refreshed = segment->refresh();
  ASSERT_FALSE(refreshed);
  EXPECT_EQ(refreshed.error().errc(), Errc::not_ready);
  EXPECT_EQ(refreshed.error().message(), "segment '" + name + "': was truncated to 0 bytes");
}

TEST_F(SegmentTest, OpenOrCreateOfAnEmptyTextbookSegmentIsNotReady) {
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto opened = Segment::open_or_create(name, 64);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().message(), "segment '" + name + "': is empty: its creator has not sized it yet");
  EXPECT_EQ(Segment::stat(name)->size, 0u);
  EXPECT_EQ(Segment::open_or_create(name, 64, {.mode = 01000}).error().errc(), Errc::invalid_argument);
}

TEST_F(SegmentTest, StatOfAMissingSegmentNamesIt) {
  auto info = Segment::stat(name);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().message(), "segment '" + name + "': cannot stat: does not exist (No such file or directory)");
}

TEST_F(SegmentTest, NoWaitDeadlineOpensOnlyWhatExists) {
  auto opened = Segment::open_wait(name, Access::read_only, no_wait);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::timeout);
  ASSERT_TRUE(Segment::create(name, 64));
  EXPECT_TRUE(Segment::open_wait(name, Access::read_only, no_wait));
  EXPECT_TRUE(Segment::open_wait(name, Access::read_only, std::chrono::milliseconds::max()));  // no overflow
}

TEST_F(SegmentTest, SizeBeyondTheFileLimitIsTooLarge) {
  auto created = Segment::create(name, std::numeric_limits<std::size_t>::max());
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().errc(), Errc::too_large);
  EXPECT_EQ(created.error().message(), "segment '" + name + "': size " +
                                           std::to_string(std::numeric_limits<std::size_t>::max()) +
                                           " is beyond the file size limit");
}

TEST_F(SegmentTest, AnotherUserIsDeniedByMode0600) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  ASSERT_TRUE(Segment::create(name, 64));
  auto child = ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    auto opened = Segment::open(name, Access::read_only);
    if (opened || opened.error().errc() != Errc::permission_denied) return 1;
    if (opened.error().message() != "segment '" + name + "': cannot open: permission denied (Permission denied)") {
      return 2;
    }
    auto removed = Segment::remove(name);  // /dev/shm is sticky: only the owner unlinks
    if (removed || removed.error().message() !=
                       "segment '" + name + "': cannot remove: permission denied (Operation not permitted)") {
      return 3;
    }
    auto waited = Segment::open_wait(name, Access::read_only, 10s);  // not worth waiting for: at once
    if (waited || waited.error().errc() != Errc::permission_denied) return 4;
    auto either = Segment::open_or_create(name, 64);
    if (either || either.error().errc() != Errc::permission_denied) return 5;
    // Metadata is public in /dev/shm, as `ls -l` shows it.
    auto stat = Segment::stat(name);
    if (!stat || stat->size != 64 || stat->owner_uid != 0) return 6;
    return 0;
  });
  const auto start = std::chrono::steady_clock::now();
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(exists_in_dev_shm(name));
}

TEST_F(SegmentTest, AnotherUserMayReadWhatTheModeAllows) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  auto segment = Segment::create(name, 64, {.mode = 0644});
  ASSERT_TRUE(segment);
  write_text(*segment, "shared");
  auto child = ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    auto view = Segment::open(name, Access::read_only);
    if (!view || read_text(*view, 6) != "shared") return 1;
    auto writable = Segment::open(name, Access::read_write);
    return !writable && writable.error().errc() == Errc::permission_denied ? 0 : 2;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(SegmentTest, AFifoPlantedUnderTheNameIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(("/dev/shm/" + name).c_str(), 0600), 0);
  auto opened = Segment::open(name, Access::read_only);
  ::unlink(("/dev/shm/" + name).c_str());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::corrupt);
  EXPECT_EQ(opened.error().message(), "segment '" + name + "': is not a shared-memory file");
}

TEST_F(SegmentTest, ASymlinkPlantedUnderTheNameIsRefused) {
  ASSERT_EQ(::symlink("/etc/passwd", ("/dev/shm/" + name).c_str()), 0);
  auto opened = Segment::open(name, Access::read_only);
  ::unlink(("/dev/shm/" + name).c_str());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::permission_denied);
  EXPECT_EQ(opened.error().message(), "segment '" + name + "': is a symbolic link, refused");
}

TEST_F(SegmentTest, RemovedSegmentStaysMappedForThoseWhoHaveIt) {
  auto segment = Segment::create(name, 64);
  ASSERT_TRUE(segment);
  write_text(*segment, "still here");
  ASSERT_TRUE(Segment::remove(name));
  EXPECT_FALSE(exists_in_dev_shm(name));
  EXPECT_EQ(read_text(*segment, 10), "still here");
}

TEST_F(SegmentTest, MoveTransfersTheMapping) {
  auto created = Segment::create(name, 64);
  ASSERT_TRUE(created);
  Segment moved = std::move(*created);
  EXPECT_EQ(moved.size(), 64u);
  EXPECT_EQ(created->size(), 0u);
  EXPECT_TRUE(created->bytes().empty());
  auto other = Segment::create(test::unique_name("other"), 32);
  ASSERT_TRUE(other);
  const std::string other_name = other->name();
  moved = std::move(*other);
  EXPECT_EQ(moved.size(), 32u);
  EXPECT_EQ(moved.name(), other_name);
  ASSERT_TRUE(Segment::remove(other_name));
}

struct BadName {
  std::string name;
  std::string detail;
};

class SegmentNameTest : public ::testing::TestWithParam<BadName> {};

TEST_P(SegmentNameTest, IsRejectedByEveryCall) {
  const auto& [name, detail] = GetParam();
  for (auto error : {Segment::create(name, 64).error(), Segment::open(name).error(),
                     Segment::open_or_create(name, 64).error(),
                     Segment::open_wait(name, Access::read_only, 10ms).error(), Segment::remove(name).error(),
                     Segment::stat(name).error()}) {
    EXPECT_EQ(error.errc(), Errc::invalid_name);
    EXPECT_EQ(error.detail(), detail);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Segment, SegmentNameTest,
    ::testing::Values(BadName{"", "name is empty"}, BadName{"/", "name is empty"},
                      BadName{"a/b", "name must be one path component (no '/' after the first character)"},
                      BadName{"//a", "name must be one path component (no '/' after the first character)"},
                      BadName{"..", "name may not be '.' or '..'"}, BadName{"/.", "name may not be '.' or '..'"},
                      BadName{"a b", "name may contain only letters, digits, '.', '_' and '-'"},
                      BadName{"caf\xc3\xa9", "name may contain only letters, digits, '.', '_' and '-'"},
                      BadName{std::string(256, 'a'), "name is 256 characters long, the limit is 255"}));

TEST(SegmentName, ErrorNamesTheObjectPrintably) {
  auto error = Segment::open("bad\nname").error();
  EXPECT_EQ(error.object(), "segment 'bad\\x0aname'");
  auto long_error = Segment::open(std::string(300, 'z')).error();
  EXPECT_EQ(long_error.object(), "segment '" + std::string(80, 'z') + "...'");
}

TEST(SegmentName, LongestValidNameWorks) {
  std::string name = test::unique_name("longest");
  name += std::string(255 - name.size(), 'n');
  ASSERT_EQ(name.size(), 255u);
  ASSERT_TRUE(Segment::create(name, 64));
  EXPECT_TRUE(Segment::remove(name));
}

}  // namespace
}  // namespace shmbox
