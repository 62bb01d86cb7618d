// Random words written into a live mailbox: whatever they break, every command of the
// tool ends within its timeout with a verdict (0, 65 corrupt, 75 try again, or 69 when
// a word happened to set the closed bit), never a hang or a signal.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <array>
#include <cstring>
#include <optional>
#include <random>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/build.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

TEST(CliProperty, EveryCommandEndsWithAVerdictWhateverWordsAreWrittenIntoAMailbox) {
  const std::string name = test::unique_name("property");
  const std::uint32_t seed = std::random_device{}();
  std::mt19937_64 random{seed};
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int trials = test::sanitized_build ? 9 : 20;  // each trial starts 8 tools
  for (int trial = 0; trial < trials; ++trial) {
    const Buffering buffering = std::array{Buffering::bounded, Buffering::zero, Buffering::unbounded}[static_cast<std::size_t>(trial % 3)];
    std::optional<Mailbox> box;
    auto created = Mailbox::create(name, {.buffering = buffering, .capacity = 4, .max_message_size = 64,
                                      .ownership = Ownership::system});
    ASSERT_TRUE(created) << created.error().message();
    box.emplace(std::move(*created));
    if (buffering != Buffering::zero) {
      for (const char* text : {"one", "two"}) ASSERT_TRUE(box->send(as_bytes(text)));
    }
    auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
    ASSERT_TRUE(raw);
    auto bytes = raw->writable_bytes().value();
    // Mostly the first pages (header, attach table, the first slots), where the words
    // that steer the algorithms are.
    const std::size_t span = std::min<std::size_t>(bytes.size(), 3 * 4096);
    for (int word = 0; word < 1 + static_cast<int>(random() % 4); ++word) {
      const std::size_t offset = (random() % (span / 8)) * 8;
      const std::uint64_t value = random() % 4 == 0 ? random() % 16 : random();
      std::memcpy(bytes.data() + offset, &value, sizeof value);
    }
    for (const std::vector<std::string>& command : std::vector<std::vector<std::string>>{
             {"stat", name},
             {"stat", name, "--json"},
             {"ls", "--json"},
             {"send", name, "x", "--timeout", "200ms"},
             {"recv", name, "--timeout", "200ms"},
             {"recv", name, "--count", "3", "--nonblock"},
             {"send", name, "--nonblock"},
             {"close", name}}) {
      auto result = test::shmbox_cli(command, "y\n");
      const bool verdict = result.status.exited_with(EX_OK) || result.status.exited_with(EX_DATAERR) ||
                           result.status.exited_with(EX_TEMPFAIL) || result.status.exited_with(EX_UNAVAILABLE);
      EXPECT_TRUE(verdict) << "trial " << trial << ": " << command[0] << " " << (command.size() > 2 ? command[2] : "")
                           << ": " << result.status.describe() << ": " << result.err;
    }
    box.reset();
    ASSERT_TRUE(Mailbox::remove(name));  // needs no understanding of the layout
  }
}

}  // namespace
}  // namespace shmbox
