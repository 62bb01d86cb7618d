#include <shmbox/segment.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>

int main() {
  const std::string name = "shmbox-install-check-" + std::to_string(getpid());
  auto segment = shmbox::Segment::create(name, 64);
  if (!segment) return std::fprintf(stderr, "%s\n", segment.error().message().c_str()), 1;
  std::puts("installed shmbox works");
  return shmbox::Segment::remove(name) ? 0 : 1;
}
