#include "remote/lease.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "mailbox/ownership.hpp"
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

bool delete_stream(NatsConnection& connection, const std::string& stream) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = delete_wait_ms;
  return js_DeleteStream(connection.jetstream, stream.c_str(), &options, nullptr) == NATS_OK;
}

// One thread per process renews every lease it keeps, on a fixed beat: the heartbeats
// are plain publishes (the stream stores them; nothing waits for an answer), so a server
// that is away delays no other server's leases.
class LeaseKeeper {
 public:
  static LeaseKeeper& instance() {
    static auto& keeper = *new LeaseKeeper;  // never destroyed: it is needed until exit
    return keeper;
  }

  void keep(const RemoteName& name, const OwnerMark& mark) {
    const std::scoped_lock guard{lock_};
    kept_.push_back({name, mark});
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
  };

  void renew_forever() {
    auto beat = std::chrono::steady_clock::now();
    for (;;) {
      std::vector<Kept> kept;
      {
        const std::scoped_lock guard{lock_};
        if (::getpid() != pid_) return;  // never in a forked child: it has no such thread
        kept = kept_;
      }
      std::vector<RemoteName> unconnected;
      for (const Kept& lease : kept) {
        if (NatsConnection* connection = connection_to(lease.name.server)) {
          const std::string subject = lease_subject_of(lease.name, lease.mark);
          const std::string body = lease.mark.owner;
          (void)natsConnection_Publish(connection->connection, subject.c_str(), body.data(), static_cast<int>(body.size()));
        } else if (std::ranges::none_of(unconnected, [&](const RemoteName& n) { return n.server == lease.name.server; })) {
          unconnected.push_back(lease.name);
        }
      }
      // Connecting may take its 2 s timeout: only after every connected lease is renewed.
      for (const RemoteName& name : unconnected) {
        if (auto opened = NatsConnection::open(name)) {
          const std::scoped_lock guard{lock_};
          connections_.emplace(name.server, std::move(*opened));
        }
      }
      beat += heartbeat_interval;
      const auto now = std::chrono::steady_clock::now();
      if (beat < now) beat = now;  // late: renew now, and keep the beat from here
      std::this_thread::sleep_until(beat);
    }
  }

  std::mutex lock_;
  const pid_t pid_ = ::getpid();
  std::vector<Kept> kept_;
  std::map<std::string, std::unique_ptr<NatsConnection>> connections_;  // by server; never erased
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
  return {std::to_string(me.pid) + " " + platform::process_name(me.packed()) + "@" + host, hex, me.pid};
}

std::string describe(const OwnerMark& mark) { return std::string{owner_mark} + mark.owner + " #" + mark.nonce; }

Result<void> start_lease(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark,
                         std::int64_t replicas) {
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
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_AddStream(&info, connection.jetstream, &config, nullptr, &code);
  jsStreamInfo_Destroy(info);
  // There already: an earlier mailbox's of this name, its subjects apart from ours.
  if (status != NATS_OK && code != JSStreamNameExistErr) {
    return std::unexpected(nats_error(Errc::system, name, "cannot create its owner's lease", status));
  }
  const std::string subject = lease_subject_of(name, mark);
  jsPubAck* ack = nullptr;
  status = js_Publish(&ack, connection.jetstream, subject.c_str(), mark.owner.data(), static_cast<int>(mark.owner.size()),
                      nullptr, &code);
  jsPubAck_Destroy(ack);
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name, "cannot store its owner's first heartbeat", status));
  return {};
}

void keep_lease(const RemoteName& name, const OwnerMark& mark) {
  LeaseKeeper::instance().keep(name, mark);
  retire_at_exit(exit_key(name), platform::current_process().packed(), [name, mark] {
    LeaseKeeper::instance().drop(name);
    // The renewing connection if there is one: a fresh one could take 2 s to fail.
    if (NatsConnection* connection = LeaseKeeper::instance().connection_to(name.server)) {
      (void)delete_mailbox_streams(*connection, name, mark);
    } else if (auto opened = NatsConnection::open(name)) {
      (void)delete_mailbox_streams(**opened, name, mark);
    }
  });
}

void drop_lease(const RemoteName& name) {
  LeaseKeeper::instance().drop(name);
  forget_at_exit(exit_key(name));
}

bool keeps_lease(const RemoteName& name, const OwnerMark& mark) { return LeaseKeeper::instance().keeps(name, mark); }

LeaseState lease_state(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  natsMsg* last = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetLastMsg(&last, connection.jetstream, lease_stream_of(name).c_str(),
                                          lease_subject_of(name, mark).c_str(), nullptr, &code);
  natsMsg_Destroy(last);
  if (status == NATS_OK) return LeaseState::live;
  if (status == NATS_NOT_FOUND || code == JSNoMessageFoundErr || code == JSStreamNotFoundErr) return LeaseState::lapsed;
  return LeaseState::unknown;
}

bool owner_has_gone(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  if (keeps_lease(name, mark) || lease_state(connection, name, mark) != LeaseState::lapsed) return false;
  std::this_thread::sleep_for(heartbeat_interval + std::chrono::milliseconds{500});
  return lease_state(connection, name, mark) == LeaseState::lapsed;
}

bool delete_mailbox_streams(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark) {
  if (!mark.nonce.empty()) {
    // Still the mailbox that mark's owner made? A new one of the name is not ours to delete.
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, connection.jetstream, stream_of(name).c_str(), nullptr, nullptr) != NATS_OK) return false;
    const bool same = owner_mark_in(info->Config->Description).nonce == mark.nonce;
    jsStreamInfo_Destroy(info);
    if (!same) return false;
  }
  const bool deleted = delete_stream(connection, stream_of(name));
  (void)delete_stream(connection, lease_stream_of(name));
  return deleted;
}

}  // namespace shmbox::detail
