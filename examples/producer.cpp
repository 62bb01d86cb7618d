// Usage: producer [NAME]
#include "hello.hpp"

int main(int argc, char** argv) { return hello::produce(argc > 1 ? argv[1] : hello::default_name); }
