// Usage: consumer [NAME]   (waits up to 10 s for the producer)
#include "hello.hpp"

int main(int argc, char** argv) {
  return hello::consume(argc > 1 ? argv[1] : hello::default_name, std::chrono::seconds{10});
}
