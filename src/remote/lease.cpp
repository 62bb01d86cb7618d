#include "remote/lease.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "mailbox/ownership.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

// The name the exit list knows a remote mailbox by (it keys local ones by file name).
std::string exit_key(const RemoteName& name) { return name.server + "/" + name.name; }

void publish_heartbeat(NatsConnection& connection, const RemoteName& name, const std::string& owner) {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = 1000;
  (void)js_Publish(nullptr, connection.jetstream, lease_subject_of(name).c_str(), owner.data(),
                   static_cast<int>(owner.size()), &options, nullptr);
}

// One thread per process renews every lease it keeps, over a connection per server.
class LeaseKeeper {
 public:
  static LeaseKeeper& instance() {
    static auto& keeper = *new LeaseKeeper;  // never destroyed: it is needed until exit
    return keeper;
  }

  void keep(const RemoteName& name) {
    const std::scoped_lock guard{lock_};
    adopt_after_fork();
    if (std::ranges::none_of(kept_, [&](const RemoteName& kept) { return exit_key(kept) == exit_key(name); })) {
      kept_.push_back(name);
    }
    if (!thread_started_) {
      thread_started_ = true;
      std::thread{[this] { renew_forever(); }}.detach();
    }
  }

  void drop(const RemoteName& name) {
    const std::scoped_lock guard{lock_};
    adopt_after_fork();
    std::erase_if(kept_, [&](const RemoteName& kept) { return exit_key(kept) == exit_key(name); });
  }

  bool keeps(const RemoteName& name) {
    const std::scoped_lock guard{lock_};
    adopt_after_fork();
    return std::ranges::any_of(kept_, [&](const RemoteName& kept) { return exit_key(kept) == exit_key(name); });
  }

 private:
  // A forked child inherits the list but neither the thread nor the right to use the
  // parent's connections (the client is not fork-safe): it starts afresh, and keeps
  // those unused and undestroyed.
  void adopt_after_fork() {
    if (pid_ == ::getpid()) return;
    pid_ = ::getpid();
    kept_.clear();
    for (auto& [server, connection] : connections_) inherited_.push_back(std::move(connection));
    connections_.clear();
    thread_started_ = false;
  }

  void renew_forever() {
    const std::string owner = this_owner();
    for (;;) {
      std::vector<RemoteName> kept;
      {
        const std::scoped_lock guard{lock_};
        kept = kept_;
      }
      for (const RemoteName& name : kept) {
        auto& connection = connections_[name.server];  // only this thread touches the map's values
        if (!connection) {
          auto opened = NatsConnection::open(name);
          if (!opened) continue;  // the server is away: try again next beat
          connection = std::move(*opened);
        }
        publish_heartbeat(*connection, name, owner);
      }
      std::this_thread::sleep_for(heartbeat_interval);
    }
  }

  std::mutex lock_;
  pid_t pid_ = ::getpid();
  std::vector<RemoteName> kept_;
  std::map<std::string, std::unique_ptr<NatsConnection>> connections_;
  std::vector<std::unique_ptr<NatsConnection>> inherited_;
  bool thread_started_ = false;
};

}  // namespace

std::string this_owner() {
  char host[256] = {};
  (void)::gethostname(host, sizeof host - 1);
  const auto me = platform::current_process();
  return std::to_string(me.pid) + " " + platform::process_name(me.packed()) + "@" + host;
}

Result<void> start_lease(NatsConnection& connection, const RemoteName& name, std::int64_t replicas) {
  const std::string stream = lease_stream_of(name), subject = lease_subject_of(name);
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.MaxMsgs = 1;  // the last heartbeat is all that counts
  config.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(lease_time).count();
  config.Storage = js_MemoryStorage;
  config.Replicas = replicas;  // as many copies as the mailbox: losing a server is no death
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_AddStream(&info, connection.jetstream, &config, nullptr, &code);
  jsStreamInfo_Destroy(info);
  if (status != NATS_OK && code == JSStreamNameExistErr) {
    // Left by a creator that died before making the mailbox: ours now.
    info = nullptr;
    status = js_UpdateStream(&info, connection.jetstream, &config, nullptr, &code);
    jsStreamInfo_Destroy(info);
  }
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name, "cannot create its owner's lease", status));
  publish_heartbeat(connection, name, this_owner());
  return {};
}

void keep_lease(const RemoteName& name) {
  LeaseKeeper::instance().keep(name);
  retire_at_exit(exit_key(name), platform::current_process().packed(), [name] {
    drop_lease(name);
    if (auto connection = NatsConnection::open(name)) (void)delete_mailbox_streams(**connection, name);
  });
}

void drop_lease(const RemoteName& name) {
  LeaseKeeper::instance().drop(name);
  forget_at_exit(exit_key(name));
}

bool keeps_lease(const RemoteName& name) { return LeaseKeeper::instance().keeps(name); }

LeaseState lease_state(NatsConnection& connection, const RemoteName& name) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&info, connection.jetstream, lease_stream_of(name).c_str(), nullptr, &code);
  const LeaseState state = status == NATS_OK                                            ? (info->State.Msgs > 0 ? LeaseState::live : LeaseState::lapsed)
                           : code == JSStreamNotFoundErr || status == NATS_NOT_FOUND ? LeaseState::lapsed
                                                                                      : LeaseState::unknown;
  jsStreamInfo_Destroy(info);
  return state;
}

bool delete_mailbox_streams(NatsConnection& connection, const RemoteName& name) {
  jsErrCode code = static_cast<jsErrCode>(0);
  const bool deleted = js_DeleteStream(connection.jetstream, stream_of(name).c_str(), nullptr, &code) == NATS_OK;
  (void)js_DeleteStream(connection.jetstream, lease_stream_of(name).c_str(), nullptr, nullptr);
  return deleted;
}

}  // namespace shmbox::detail
