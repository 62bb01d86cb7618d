// An unbounded mailbox's chunk table and the slots where chunks and laps meet,
// overwritten by the input (mailbox_run.hpp), with its header counters so that head
// and tail can be put anywhere in the ring. Input: a plan byte, then patches
// (fuzz_support.hpp).
#include "mailbox_run.hpp"

using namespace shmbox;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input input{data, size};
  const std::uint8_t plan = input.byte();
  const MailboxOptions options{
      .buffering = Buffering::unbounded,
      .max_message_size = 48,
      .max_attached = 2,
      .ownership = Ownership::system,
  };
  fuzz::run_mailbox(input, options, plan, [](const fuzz::MailboxFileLayout& file) {
    const std::uint64_t chunk = file.chunk_slots;
    return std::vector<fuzz::Region>{
        file.counters(),
        file.attach_table(),
        file.chunk_words(0, 8),
        file.chunk_words(file.chunk_count - 2, 2),
        file.slots(0, 4),                                // the first chunk's first slots
        file.slots(chunk - 2, 4),                        // where chunks 0 and 1 meet
        file.slots(std::uint64_t{file.slot_count} - 2, 2),  // where a lap ends
        file.identity(),
    };
  });
  return 0;
}
