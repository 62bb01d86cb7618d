#include "remote/lease.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "platform/exit_hooks.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

// The name the exit list knows a remote mailbox by (it keys local ones by file name).
std::string exit_key(const RemoteName& name) { return name.server + "/" + name.name; }

std::string lease_subject_of(const RemoteName& name, const OwnerMark& mark) {
  return lease_subject_prefix_of(name) + mark.nonce;
}

// How long a delete at exit or of an orphan waits for the server's answer.
constexpr std::int64_t delete_wait_ms = 1000;

jsOptions bounded_wait() {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = delete_wait_ms;
  return options;
}

// The lease stream, made if it is not there: shared by every mailbox ever made under the
// name, each owner on its own subject, so it is never deleted while the name is in use.
Result<void> ensure_lease_stream(NatsConnection& connection, const RemoteName& name, std::int64_t replicas) {
  const std::string stream = lease_stream_of(name), subjects = lease_subject_prefix_of(name) + "*";
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream.c_str();
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.MaxMsgsPerSubject = 1;  // each owner's last heartbeat is all that counts
  config.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(lease_time).count();
  config.Storage = js_MemoryStorage;
  config.Replicas = replicas;  // as many copies as the mailbox: losing a server is no death
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_AddStream(out(info), connection.jetstream.get(), &config, nullptr, &code);
  if (status != NATS_OK && code != JSStreamNameExistErr) {
    return std::unexpected(nats_error(Errc::system, name, "cannot create its owner's lease", status));
  }
  return {};
}

// A heartbeat the server confirms it stored.
natsStatus store_heartbeat(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  const std::string subject = lease_subject_of(name, mark);
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = delete_wait_ms;
  OwnedPubAck ack;
  return js_Publish(out(ack), connection.jetstream.get(), subject.c_str(), mark.owner.data(),
                    static_cast<int>(mark.owner.size()), &options, nullptr);
}

enum class Standing { ours, gone, unknown };
// Whether the mailbox of `name` is still the one `mark` describes.
Standing standing_of(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsOptions options = bounded_wait();
  const natsStatus status = js_GetStreamInfo(out(info), connection.jetstream.get(), stream_of(name).c_str(), &options, &code);
  if (status != NATS_OK) {
    // A cluster's member still loading the stream says "not found" too: only the meta
    // leader's word lets a live lease go.
    const bool removed = stream_removed(status, code, connection.jetstream.get(), stream_of(name), &options);
    return removed ? Standing::gone : Standing::unknown;
  }
  return owner_mark_in(info->Config->Description).nonce == mark.nonce ? Standing::ours : Standing::gone;
}

// One thread per process renews every lease it keeps, on a fixed beat: the heartbeats
// are plain publishes (the stream stores them; nothing waits for an answer), and servers
// it is not connected to are connected to by threads of their own, so that an absent
// server delays no other server's leases. Every third beat it also checks, with answers,
// that each mailbox is still there and its heartbeat stored: a mailbox removed by another
// process is let go, and a lease stream deleted under it is made again.
class LeaseKeeper {
 public:
  static LeaseKeeper& instance() {
    static auto& keeper = *new LeaseKeeper;  // never destroyed: it is needed until exit
    return keeper;
  }

  void keep(const RemoteName& name, const OwnerMark& mark, std::int64_t replicas) {
    const std::scoped_lock guard{lock_};
    std::erase_if(kept_, [&](const Kept& kept) { return exit_key(kept.name) == exit_key(name); });
    kept_.push_back({name, mark, replicas});
    if (!thread_started_) {
      thread_started_ = true;
      std::thread{[this] { renew_forever(); }}.detach();
    }
  }

  void drop(const RemoteName& name) {
    const std::scoped_lock guard{lock_};
    std::erase_if(kept_, [&](const Kept& kept) { return exit_key(kept.name) == exit_key(name); });
  }

  bool keeps(const RemoteName& name, const OwnerMark& mark) {
    const std::scoped_lock guard{lock_};
    return std::ranges::any_of(kept_, [&](const Kept& kept) {
      return exit_key(kept.name) == exit_key(name) && kept.mark.nonce == mark.nonce;
    });
  }

  // The renewing connection to `server`, if there is one (connections are thread-safe).
  NatsConnection* connection_to(const std::string& server) {
    const std::scoped_lock guard{lock_};
    const auto found = connections_.find(server);
    return found == connections_.end() ? nullptr : found->second.get();
  }

 private:
  struct Kept {
    RemoteName name;
    OwnerMark mark;
    std::int64_t replicas = 1;
  };

  void connect_in_background(const RemoteName& name) {
    {
      const std::scoped_lock guard{lock_};
      if (!connecting_.insert(name.server).second) return;
    }
    std::thread{[this, name] {
      auto opened = NatsConnection::open(name);
      const std::scoped_lock guard{lock_};
      if (opened) connections_.emplace(name.server, std::move(*opened));
      connecting_.erase(name.server);
    }}.detach();
  }

  void check(NatsConnection& connection, const Kept& lease) {
    switch (standing_of(connection, lease.name, lease.mark)) {
      case Standing::gone:
        drop(lease.name);
        forget_at_exit(exit_key(lease.name));
        return;
      case Standing::unknown:
        return;
      case Standing::ours:
        break;
    }
    const natsStatus status = store_heartbeat(connection, lease.name, lease.mark);
    if (status == NATS_NO_RESPONDERS || status == NATS_NOT_FOUND) {
      if (ensure_lease_stream(connection, lease.name, lease.replicas)) (void)store_heartbeat(connection, lease.name, lease.mark);
    }
  }

  void renew_forever() {
    auto beat = std::chrono::steady_clock::now();
    for (std::uint64_t round = 1;; ++round) {
      std::vector<Kept> kept;
      {
        const std::scoped_lock guard{lock_};
        kept = kept_;
      }
      for (const Kept& lease : kept) {
        NatsConnection* connection = connection_to(lease.name.server);
        if (connection == nullptr) {
          connect_in_background(lease.name);
          continue;
        }
        const std::string subject = lease_subject_of(lease.name, lease.mark);
        (void)natsConnection_Publish(connection->connection.get(), subject.c_str(), lease.mark.owner.data(),
                                     static_cast<int>(lease.mark.owner.size()));
      }
      if (round % 3 == 0) {
        for (const Kept& lease : kept) {
          if (NatsConnection* connection = connection_to(lease.name.server)) check(*connection, lease);
        }
      }
      beat += heartbeat_interval;
      const auto now = std::chrono::steady_clock::now();
      if (beat < now) beat = now;  // late: renew now, and keep the beat from here
      std::this_thread::sleep_until(beat);
    }
  }

  std::mutex lock_;
  std::vector<Kept> kept_;
  std::map<std::string, std::unique_ptr<NatsConnection>> connections_;  // by server; never erased
  std::set<std::string> connecting_;
  bool thread_started_ = false;
};

}  // namespace

OwnerMark owner_mark_in(const char* description) {
  if (!marked(description, owner_mark)) return {};
  std::string_view text{description};
  text.remove_prefix(text.find(owner_mark) + owner_mark.size());
  text = text.substr(0, text.find(';'));
  OwnerMark mark;
  const auto hash = text.rfind(" #");
  mark.owner = std::string{text.substr(0, hash)};
  if (hash != std::string_view::npos) mark.nonce = std::string{text.substr(hash + 2)};
  mark.pid = static_cast<pid_t>(std::strtol(mark.owner.c_str(), nullptr, 10));
  return mark;
}

OwnerMark new_owner_mark() {
  char host[256] = {};
  (void)::gethostname(host, sizeof host - 1);
  const auto me = platform::current_process();
  std::random_device random;
  const std::uint64_t nonce = (std::uint64_t{random()} << 32) ^ random();
  char hex[17] = {};
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(nonce));
  // The description's own separators may not appear in what it records.
  std::string owner = std::to_string(me.pid) + " " + platform::process_name(me.packed()) + "@" + host;
  std::ranges::replace_if(owner, [](char c) { return c == ';' || c == '#'; }, '_');
  return {std::move(owner), hex, me.pid};
}

std::string describe(const OwnerMark& mark) { return std::string{owner_mark} + mark.owner + " #" + mark.nonce; }

std::string describe_owner(const OwnerMark& mark) {
  const auto space = mark.owner.find(' ');
  if (space == std::string::npos) return "process " + mark.owner;
  return "process " + mark.owner.substr(0, space) + " (" + mark.owner.substr(space + 1) + ")";
}

Result<void> start_lease(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark,
                         std::int64_t replicas) {
  if (auto made = ensure_lease_stream(connection, name, replicas); !made) return made;
  if (const natsStatus status = store_heartbeat(connection, name, mark); status != NATS_OK) {
    return std::unexpected(nats_error(Errc::system, name, "cannot store its owner's first heartbeat", status));
  }
  return {};
}

void keep_lease(const RemoteName& name, const OwnerMark& mark, std::int64_t replicas) {
  LeaseKeeper::instance().keep(name, mark, replicas);
  run_at_exit(exit_key(name), platform::current_process().packed(), [name, mark] {
    LeaseKeeper::instance().drop(name);
    // Over the renewing connection while it is up (each request waits at most 1 s);
    // else a new one, which gives up after its 2 s connect timeout if the server is
    // away: then the lease lapses and others remove the mailbox.
    NatsConnection* connection = LeaseKeeper::instance().connection_to(name.server);
    if (connection != nullptr && natsConnection_Status(connection->connection.get()) == NATS_CONN_STATUS_CONNECTED) {
      (void)delete_mailbox_stream(*connection, name, mark);
    } else if (auto opened = NatsConnection::open(name)) {
      (void)delete_mailbox_stream(**opened, name, mark);
    }
  });
}

void drop_lease(const RemoteName& name) {
  LeaseKeeper::instance().drop(name);
  forget_at_exit(exit_key(name));
}

bool keeps_lease(const RemoteName& name, const OwnerMark& mark) { return LeaseKeeper::instance().keeps(name, mark); }

LeaseState lease_state(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  if (mark.nonce.empty()) return LeaseState::unknown;  // a description someone else wrote
  OwnedMsg last;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetLastMsg(out(last), connection.jetstream.get(), lease_stream_of(name).c_str(),
                                          lease_subject_of(name, mark).c_str(), nullptr, &code);
  if (status == NATS_OK) return LeaseState::live;
  if (code == JSNoMessageFoundErr) return LeaseState::lapsed;
  if (stream_removed(status, code, connection.jetstream.get(), lease_stream_of(name))) return LeaseState::lapsed;
  return LeaseState::unknown;
}

bool owner_has_gone(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  if (keeps_lease(name, mark) || lease_state(connection, name, mark) != LeaseState::lapsed) return false;
  std::this_thread::sleep_for(heartbeat_interval + std::chrono::milliseconds{500});
  return lease_state(connection, name, mark) == LeaseState::lapsed;
}

bool delete_mailbox_stream(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  // Still the mailbox that mark's owner made? A new one of the name is not ours to delete.
  if (standing_of(connection, name, mark) != Standing::ours) return false;
  jsOptions options = bounded_wait();
  return js_DeleteStream(connection.jetstream.get(), stream_of(name).c_str(), &options, nullptr) == NATS_OK;
}

}  // namespace shmbox::detail
