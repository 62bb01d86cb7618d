// Chaos: writers of a board killed with SIGKILL at random moments (most of them in the
// middle of a put) and restarted, beside readers that copy, readers that hold zero-copy
// views (killed too) and a watcher. Every value carries its version and a checksum of its
// bytes; checked throughout: no reader ever sees a torn value or a value whose version is
// not the one it was read as, versions never go backwards for any reader, views stay
// unchanged while held, and no call fails. At the end the board still takes puts.
//
// SHMBOX_CHAOS_SECONDS=N turns it into a soak of N seconds (default: 600 kills, at least 500
// of them inside a put).
#include <gtest/gtest.h>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "shmbox/board.hpp"
#include "support/chaos.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

constexpr int writers = 3;
constexpr int copiers = 1;
constexpr int viewers = 2;
constexpr int watchers = 1;
constexpr int workers = writers + copiers + viewers + watchers;
constexpr std::size_t max_payload = 32 * 1024;

// What each value starts with; its payload follows.
struct Stamp {
  std::uint64_t version;
  std::uint64_t payload_size;
  std::uint64_t checksum;
};
constexpr std::size_t max_value = sizeof(Stamp) + max_payload;

// FNV-1a over the version and the payload.
std::uint64_t checksum_of(std::uint64_t version, std::span<const std::byte> payload) {
  std::uint64_t hash = 0xcbf29ce484222325ull ^ version;
  for (const std::byte b : payload) hash = (hash ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ull;
  return hash;
}

// The test's own records, shared by the supervisor and every worker.
struct Ledger {
  std::atomic<bool> stop;
  test::Violations violations;
  std::atomic<std::uint64_t> reads;
  std::atomic<std::uint64_t> puts;
  std::atomic<std::int64_t> putting[writers];  // pid of the writer inside put(), 0 outside
};

// Whether `bytes` is a whole value of `version`; says what is wrong if not.
std::optional<std::string> fault_in(std::span<const std::byte> bytes, std::uint64_t version) {
  if (version == 0) return bytes.empty() ? std::nullopt : std::optional<std::string>{"version 0 is not empty"};
  Stamp stamp{};
  if (bytes.size() < sizeof stamp) return "a value of " + std::to_string(bytes.size()) + " bytes has no stamp";
  std::memcpy(&stamp, bytes.data(), sizeof stamp);
  if (stamp.version != version) {
    return "read as version " + std::to_string(version) + " but stamped " + std::to_string(stamp.version);
  }
  const auto payload = bytes.subspan(sizeof stamp);
  if (stamp.payload_size != payload.size()) return "version " + std::to_string(version) + " has a torn length";
  if (stamp.checksum != checksum_of(version, payload)) return "version " + std::to_string(version) + " is torn";
  return std::nullopt;
}

int run_writer(Board& board, Ledger& ledger, int writer) {
  std::mt19937_64 random{std::random_device{}()};
  std::vector<std::byte> value;
  while (!ledger.stop.load()) {
    auto latest = board.version();
    if (!latest) {
      ledger.violations.record("version() failed: " + latest.error().message());
      return 2;
    }
    const std::uint64_t next = *latest + 1;
    const std::size_t payload_size = random() % max_payload;
    value.resize(sizeof(Stamp) + payload_size);
    for (std::size_t i = sizeof(Stamp); i < value.size(); ++i) value[i] = static_cast<std::byte>(random());
    const Stamp stamp{next, payload_size, checksum_of(next, std::span{value}.subspan(sizeof(Stamp)))};
    std::memcpy(value.data(), &stamp, sizeof stamp);
    ledger.putting[writer] = ::getpid();
    auto published = board.put_if(*latest, value, 10s);
    ledger.putting[writer] = 0;
    if (published) {
      ledger.puts.fetch_add(1);
      if (*published != next) ledger.violations.record("put_if published another version than asked");
    } else if (published.error() != Errc::conflict) {
      ledger.violations.record("put_if failed: " + published.error().message());
      return 3;
    }
  }
  return 0;
}

// Copies, views or watches the board, checking each value and that versions never fall.
int run_reader(Board& board, Ledger& ledger, int role) {
  std::uint64_t last = 0;
  std::vector<std::byte> bytes;
  auto seen = [&](std::span<const std::byte> value, std::uint64_t version) {
    if (auto fault = fault_in(value, version)) ledger.violations.record(*fault);
    if (version < last) {
      ledger.violations.record("version went back from " + std::to_string(last) + " to " + std::to_string(version));
    }
    last = version;
    ledger.reads.fetch_add(1, std::memory_order_relaxed);
  };
  while (!ledger.stop.load()) {
    if (role < writers + copiers) {
      auto version = board.get(bytes);
      if (!version) return ledger.violations.record("get failed: " + version.error().message()), 2;
      seen(bytes, *version);
    } else if (role < writers + copiers + viewers) {
      auto view = board.view();
      if (!view) return ledger.violations.record("view failed: " + view.error().message()), 3;
      seen(view->bytes(), view->version());
      std::this_thread::sleep_for(200us);  // held while writers go on, and for kills to land in
      if (auto fault = fault_in(view->bytes(), view->version())) ledger.violations.record("a held view changed: " + *fault);
    } else {
      auto next = board.watch(last, 1s);
      if (!next) {
        if (next.error() == Errc::timeout) continue;
        return ledger.violations.record("watch failed: " + next.error().message()), 4;
      }
      seen(next->bytes, next->version);
    }
  }
  return 0;
}

int run_worker(const std::string& name, Ledger& ledger, int worker) {
  auto board = Board::open(name);
  if (!board) return 1;
  return worker < writers ? run_writer(*board, ledger, worker) : run_reader(*board, ledger, worker);
}

TEST(BoardChaos, KilledWritersAndViewersNeverTearAValueOrStopTheBoard) {
  const auto soak_for = test::chaos_soak_duration();
  const int target_kills = soak_for.count() > 0 ? 1 << 26 : 600;
  const int target_inside = soak_for.count() > 0 ? 0 : 500;
  const std::string name = test::unique_name("board-chaos");
  auto board = Board::create(name, {.max_size = max_value, .max_views = viewers, .ownership = Ownership::system});
  ASSERT_TRUE(board.has_value()) << board.error().message();
  auto& ledger = test::shared_with_workers<Ledger>();

  const auto start = [&](int w) { return ChildProcess::spawn([&, w] { return run_worker(name, ledger, w); }); };
  auto running = test::start_workers(workers, start);
  // Three kills in four go to a writer inside put(), the rest to any worker, viewers
  // holding views among them.
  const auto tally = test::kill_and_restart(
      running, writers, ledger.putting,
      start, ledger.violations,
      target_kills, target_inside, 4);
  const int kills = tally.kills;
  const int died_inside = tally.inside;
  EXPECT_TRUE(tally.all_killed_by_sigkill);
  ledger.stop = true;
  for (auto& child : running) EXPECT_TRUE(child.wait(30s).exited_with(0));
  EXPECT_EQ(ledger.violations.count.load(), 0u) << ledger.violations.first;

  // After it all the board still works, and what it holds is whole.
  auto last = board->get();
  ASSERT_TRUE(last.has_value()) << last.error().message();
  EXPECT_EQ(fault_in(last->bytes, last->version), std::nullopt);
  auto after = board->put(as_bytes("after the chaos"), 5s);
  ASSERT_TRUE(after.has_value()) << after.error().message();
  EXPECT_EQ(*after, last->version + 1);
  auto view = board->view();
  ASSERT_TRUE(view.has_value()) << view.error().message();
  EXPECT_EQ(view->version(), *after);

  std::printf("board chaos: %d kills (%d inside a put), %llu puts, %llu values read and checked, last version %llu\n",
              kills, died_inside, static_cast<unsigned long long>(ledger.puts.load()),
              static_cast<unsigned long long>(ledger.reads.load()), static_cast<unsigned long long>(last->version));
  EXPECT_GE(kills, soak_for.count() > 0 ? 1 : target_kills);
  EXPECT_GE(died_inside, target_inside);
  EXPECT_GT(ledger.reads.load(), 0u);
  (void)Board::remove(name);
}

}  // namespace
}  // namespace shmbox
