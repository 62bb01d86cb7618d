#include "transports.hpp"

#include <stdexcept>

namespace bench {

void Link::throw_error(const std::string& what) { throw std::runtime_error(what); }

std::vector<std::unique_ptr<Transport>> make_transports() {
  std::vector<std::unique_ptr<Transport>> transports;
  add_shmbox_transports(transports);
  add_nats_transports(transports);
  add_system_transports(transports);
#ifdef SHMBOX_BENCH_BOOST
  add_boost_transports(transports);
#endif
#ifdef SHMBOX_BENCH_ZEROMQ
  add_zeromq_transports(transports);
#endif
#ifdef SHMBOX_BENCH_ICEORYX
  add_iceoryx_transports(transports);
#endif
  return transports;
}

std::vector<Availability> missing_transports() {
  std::vector<Availability> missing;
#ifndef SHMBOX_BENCH_BOOST
  missing.push_back({"Boost.Interprocess message_queue", "not built: Boost headers not found (libboost-dev)"});
#endif
#ifndef SHMBOX_BENCH_ZEROMQ
  missing.push_back({"ZeroMQ ipc://", "not built: cppzmq not found (libzmq3-dev, cppzmq-dev)"});
#endif
#ifndef SHMBOX_BENCH_ICEORYX
  missing.push_back({"iceoryx", "not built: iceoryx_posh not found (libiceoryx-posh-dev, iceoryx)"});
#endif
  return missing;
}

}  // namespace bench
