// A bounded or zero-capacity mailbox's header, attach table and ring, overwritten by
// the input (mailbox_run.hpp). Input: a shape byte (buffering, capacity, attach
// entries, message size), a plan byte, then patches (fuzz_support.hpp).
#include "mailbox_run.hpp"

using namespace shmbox;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input input{data, size};
  const std::uint8_t shape = input.byte();
  const std::uint8_t plan = input.byte();
  const MailboxOptions options{
      .buffering = (shape & 1) != 0 ? Buffering::zero : Buffering::bounded,
      .capacity = 1 + (shape >> 1 & 7u),  // not always a power of two: both slot indexings
      .max_message_size = (shape & 0x10) != 0 ? 0u : 48u,
      .max_attached = 1 + (shape >> 5 & 3u),
      .ownership = Ownership::system,  // the owner field is the input's to set
  };
  fuzz::run_mailbox(input, options, plan, [](const fuzz::MailboxFileLayout& file) {
    return std::vector<fuzz::Region>{file.identity(), file.counters(), file.attach_table(),
                                     file.slots(0, file.slot_count)};
  });
  return 0;
}
