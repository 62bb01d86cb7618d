// What a pool and its workers say to each other through the pool's two mailboxes, and the
// worker's side of it. docs/design.md ("Pools") has the protocol.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "shmbox/error.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/pool.hpp"

namespace shmbox::detail {

inline constexpr std::uint32_t max_attempts = 100;
// The exit status of a worker that cannot go on (its mailboxes failed): the pool stops.
inline constexpr int worker_failed = 71;
// Where a pool's workers look for its name when they were started by exec.
inline constexpr const char* pool_variable = "SHMBOX_POOL";

inline std::string tasks_name_of(std::string_view pool) { return std::string{pool} + "-tasks"; }
inline std::string results_name_of(std::string_view pool) { return std::string{pool} + "-results"; }

// Workers of a pool on NATS get no message in place: they take tasks with leases.
inline bool takes_with_leases(std::string_view pool) { return pool.starts_with("nats://"); }
// A worker's name in its reports, "host:pid": a host name of at most 255 bytes, a pid.
inline constexpr std::size_t max_worker_name_size = 255 + 1 + 10;
// What a took report adds to the task's bytes: the name's length (u32) and the name. The
// result mailbox of a pool with leases has room for a took report of the largest task.
inline constexpr std::size_t took_overhead = sizeof(std::uint32_t) + max_worker_name_size;

inline std::string result_too_large(std::size_t size, std::size_t max_result_size) {
  return "returned " + std::to_string(size) + " bytes, over the pool's max_result_size of " +
         std::to_string(max_result_size);
}

// How a failed task is told: "failed after 3 attempts: <its last error>".
inline std::string failed_after(std::uint32_t attempts, const std::string& error) {
  return "failed after " + std::to_string(attempts) + (attempts == 1 ? " attempt: " : " attempts: ") + error;
}

// A task message: its id, the takes so far (counted in the message itself by each worker
// that takes it in place, so that the count survives a worker's death and needs no other
// shared memory), the attempts allowed, then the task's bytes.
struct TaskHeader {
  std::uint64_t id;
  std::uint32_t takes;
  std::uint32_t attempts;
};

// What a message to the pool reports. The first two end a task; the others come from
// workers on a transport that lends no message in place (nats://), which cannot count
// takes in the message: the pool keeps a lease per task they took instead.
enum class Report : std::uint32_t {
  failed = 0,          // the task's last attempt failed; the error's text follows
  succeeded = 1,       // the result follows
  took = 2,            // a worker took it: the worker's name's length (u32), the name, the task
  alive = 3,           // the worker named next still works at its task
  attempt_failed = 4,  // an attempt failed (the error's text follows); the pool decides on another
};
// A message to the pool: the task's id, the report, the attempts it took; then the bytes.
struct ResultHeader {
  std::uint64_t id;
  Report report;
  std::uint32_t attempts;
};

// A flag the pool and its forked workers share without a name (nothing to leave behind):
// set when the pool is cancelled, so that a forked worker leaves before its next task.
// Workers started by exec or elsewhere see the task mailbox closed instead.
class CancelFlag {
 public:
  static Result<CancelFlag> make(const std::string& object) {
    void* memory = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      return std::unexpected(Error{Errc::out_of_memory, object, "cannot map its cancel flag", errno});
    }
    return CancelFlag{static_cast<std::uint32_t*>(memory)};
  }
  CancelFlag(CancelFlag&& other) noexcept : word_(std::exchange(other.word_, nullptr)) {}
  CancelFlag& operator=(CancelFlag&&) = delete;
  ~CancelFlag() {
    if (word_ != nullptr) ::munmap(word_, page);
  }
  std::atomic_ref<std::uint32_t> flag() const noexcept { return std::atomic_ref<std::uint32_t>{*word_}; }

 private:
  static constexpr std::size_t page = 4096;
  explicit CancelFlag(std::uint32_t* word) noexcept : word_(word) {}
  std::uint32_t* word_;
};

// A worker's life: takes the pool's tasks and runs `function` on each until the pool ends
// (its mailboxes closed, or `cancel`, shared with a forked worker's pool, set).
// `results_name` is the result mailbox's full name (a worker on NATS opens a second handle).
Result<void> serve(Mailbox& tasks, Mailbox& results, std::string_view results_name, const TaskFunction& function,
                   const CancelFlag* cancel);

}  // namespace shmbox::detail
