// Owners for the NATS C client's handles: each is destroyed once, by its owner, on every
// path out (an error return, a continue, an exception from a caller's taker).
#pragma once

#include <nats/nats.h>

#include <memory>

namespace shmbox::detail {

template <auto destroy>
struct NatsDestroy {
  template <class Handle>
  void operator()(Handle* handle) const noexcept {
    destroy(handle);
  }
};

template <class Handle, auto destroy>
using NatsOwned = std::unique_ptr<Handle, NatsDestroy<destroy>>;

using OwnedConnection = NatsOwned<natsConnection, natsConnection_Destroy>;
using OwnedOptions = NatsOwned<natsOptions, natsOptions_Destroy>;
using OwnedJetStream = NatsOwned<jsCtx, jsCtx_Destroy>;
using OwnedSubscription = NatsOwned<natsSubscription, natsSubscription_Destroy>;
using OwnedMsg = NatsOwned<natsMsg, natsMsg_Destroy>;
using OwnedMsgMetaData = NatsOwned<jsMsgMetaData, jsMsgMetaData_Destroy>;
using OwnedStreamInfo = NatsOwned<jsStreamInfo, jsStreamInfo_Destroy>;
using OwnedStreamNames = NatsOwned<jsStreamNamesList, jsStreamNamesList_Destroy>;
using OwnedConsumerInfo = NatsOwned<jsConsumerInfo, jsConsumerInfo_Destroy>;
using OwnedPubAck = NatsOwned<jsPubAck, jsPubAck_Destroy>;
// A fetched natsMsgList is a caller's struct: natsMsgList_Destroy frees the messages and
// the array it points to, not the struct, so this owns the contents of one on the stack.
using OwnedMsgListContents = NatsOwned<natsMsgList, natsMsgList_Destroy>;

// The address a C function writes a new handle to, as std::out_ptr gives (not in GCC 12):
// `owner` drops what it held, and takes the new handle when the call's full expression
// ends. So the handle may be read in the next statement, not in the same expression.
template <class Owner>
class OutHandle {
 public:
  explicit OutHandle(Owner& owner) noexcept : owner_(owner) { owner_.reset(); }
  OutHandle(const OutHandle&) = delete;
  OutHandle& operator=(const OutHandle&) = delete;
  ~OutHandle() { owner_.reset(written_); }
  operator typename Owner::pointer*() noexcept { return &written_; }

 private:
  Owner& owner_;
  typename Owner::pointer written_ = nullptr;
};

template <class Owner>
OutHandle<Owner> out(Owner& owner) noexcept {
  return OutHandle<Owner>{owner};
}

}  // namespace shmbox::detail
