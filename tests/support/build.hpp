// What kind of build the tests run in.
#pragma once

namespace shmbox::test {

// Sanitizer builds run many times slower: stress tests that count on throughput scale
// their work down with this, so that they keep to their deadlines on a loaded machine.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

// ThreadSanitizer is the slowest of them: it checks memory orders, which a few hundred
// kills exercise as well as a thousand.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool thread_sanitized_build = true;
#else
inline constexpr bool thread_sanitized_build = false;
#endif

}  // namespace shmbox::test
