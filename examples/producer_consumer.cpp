// Runs the consumer as a child process and the producer as its parent. The child
// starts first and sleeps until the segment appears.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "hello.hpp"

int main() {
  // A per-run name keeps two demos on one machine apart.
  const std::string name = std::string{hello::default_name} + "-" + std::to_string(::getpid());
  std::fflush(stdout);
  const pid_t consumer = ::fork();
  if (consumer < 0) {
    std::perror("fork");
    return 1;
  }
  if (consumer == 0) _exit(hello::consume(name, std::chrono::seconds{10}));

  const int produced = hello::produce(name);
  int status = 0;
  if (::waitpid(consumer, &status, 0) != consumer) {
    std::perror("waitpid");
    return 1;
  }
  const bool consumed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (produced != 0 || !consumed) {
    (void)shmbox::Segment::remove(name);
    return 1;
  }
  return 0;
}
