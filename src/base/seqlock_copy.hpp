// Copies in and out of shared buffers that a writer may be filling while a reader copies
// (a seqlock: the reader checks a stamp before and after, and throws a torn copy away).
// Boards and topics use them.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace shmbox::detail {

// Buffers are read while a writer may be filling them (a reader finds out afterwards and
// reads again). The seqlock's fences (Boehm, "Can seqlocks get along with programming
// language memory models?") keep the copy between the two stamp accesses, and the copy is
// a plain memcpy, as in the kernel's seqcount: a torn copy is never used, and a buffer in
// memory that another process maps is nothing the compiler can reason about. Under
// ThreadSanitizer, which neither models fences nor accepts the racing memcpy, both sides
// move whole words with ordered atomic accesses instead: slower, same guarantee. Buffers
// are whole lines, so the last word never reaches past one.
#if defined(__SANITIZE_THREAD__)
constexpr std::memory_order length_load_order = std::memory_order_acquire;
constexpr std::memory_order length_store_order = std::memory_order_release;
inline void fence_before_copy_in() noexcept {}
inline void fence_after_copy_out() noexcept {}

inline void copy_out(const std::byte* buffer, std::byte* target, std::size_t length) noexcept {
  const auto* words = reinterpret_cast<const std::uint64_t*>(buffer);
  for (std::size_t i = 0; i * 8 < length; ++i) {
    const std::uint64_t word = __atomic_load_n(words + i, __ATOMIC_ACQUIRE);
    std::memcpy(target + i * 8, &word, std::min<std::size_t>(8, length - i * 8));
  }
}

inline void copy_in(std::span<const std::byte> value, std::byte* buffer) noexcept {
  auto* words = reinterpret_cast<std::uint64_t*>(buffer);
  for (std::size_t i = 0; i * 8 < value.size(); ++i) {
    std::uint64_t word = 0;
    std::memcpy(&word, value.data() + i * 8, std::min<std::size_t>(8, value.size() - i * 8));
    __atomic_store_n(words + i, word, __ATOMIC_RELEASE);
  }
}
#else
constexpr std::memory_order length_load_order = std::memory_order_relaxed;
constexpr std::memory_order length_store_order = std::memory_order_relaxed;
inline void fence_before_copy_in() noexcept { std::atomic_thread_fence(std::memory_order_release); }
inline void fence_after_copy_out() noexcept { std::atomic_thread_fence(std::memory_order_acquire); }

// An empty value may come with a null pointer, which memcpy must not be given.
inline void copy_out(const std::byte* buffer, std::byte* target, std::size_t length) noexcept {
  if (length != 0) std::memcpy(target, buffer, length);
}

inline void copy_in(std::span<const std::byte> value, std::byte* buffer) noexcept {
  if (!value.empty()) std::memcpy(buffer, value.data(), value.size());
}
#endif

}  // namespace shmbox::detail
