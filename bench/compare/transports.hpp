// The transports shmbox-bench knows, each file adding its own.
#pragma once

#include <memory>
#include <vector>

#include "transport.hpp"

namespace bench {

void add_shmbox_transports(std::vector<std::unique_ptr<Transport>>& transports);
void add_system_transports(std::vector<std::unique_ptr<Transport>>& transports);  // pipe, Unix socket, POSIX mq
void add_nats_transports(std::vector<std::unique_ptr<Transport>>& transports);    // remote shmbox mailboxes
#ifdef SHMBOX_BENCH_BOOST
void add_boost_transports(std::vector<std::unique_ptr<Transport>>& transports);
#endif
#ifdef SHMBOX_BENCH_ZEROMQ
void add_zeromq_transports(std::vector<std::unique_ptr<Transport>>& transports);
#endif
#ifdef SHMBOX_BENCH_ICEORYX
void add_iceoryx_transports(std::vector<std::unique_ptr<Transport>>& transports);
#endif

}  // namespace bench
