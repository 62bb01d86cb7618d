// shmbox.Lock: robust process-shared locks, exclusive or shared; a wait releases the GIL.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "binding.hpp"
#include "shmbox/lock.hpp"

namespace shmbox::python {
namespace {

struct PyLock {
  Lock lock;
  std::string object;
  OneThreadAtATime use;
};

PyLock python_lock(Result<Lock>&& opened) {
  Lock lock = value_or_raise(std::move(opened));
  std::string object = "lock '" + lock.name() + "'";
  return {std::move(lock), std::move(object), {}};
}

// The lock held; released by release() or at the end of a `with` block.
struct PyHeldLock {
  std::optional<HeldLock> held;
  std::string object;

  HeldLock& holding() {
    if (!held) raise(Error{Errc::invalid_argument, object, "was released already"});
    return *held;
  }
};

}  // namespace

void bind_lock(py::module_& module) {
  py::class_<PyHeldLock>(module, "HeldLock",
                         "A lock held by one Lock handle. If the previous holder died holding it,\n"
                         "owner_died is true: repair what it guards, then mark_consistent().")
      .def_property_readonly("owner_died", [](PyHeldLock& self) { return self.holding().owner_died(); })
      .def_property_readonly("died_holding", [](PyHeldLock& self) { return self.holding().died_holding(); },
                             "the pid of the holder that died (0 unless owner_died)")
      .def_property_readonly("shared", [](PyHeldLock& self) { return self.holding().mode() == LockMode::shared; })
      .def(
          "mark_consistent", [](PyHeldLock& self) { value_or_raise(self.holding().mark_consistent(), self.object); },
          "Declares the guarded data repaired after a holder died (else every later acquire\n"
          "raises NotRecoverable).")
      .def("release", [](PyHeldLock& self) { self.held.reset(); }, "Releases the lock (again: nothing).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyHeldLock& self, py::args) { self.held.reset(); });

  py::class_<PyLock>(module, "Lock",
                     "A robust lock that processes share, by name or inside a segment: a holder killed\n"
                     "at any instruction stops holding it, and the next taker is told (owner_died).\n"
                     "First come, first served; a waiting writer holds back later readers.")
      .def_static(
          "create",
          [](const std::string& name, unsigned mode, std::uint32_t max_handles) {
            return python_lock(Lock::create(name, {.mode = static_cast<mode_t>(mode), .max_handles = max_handles}));
          },
          py::arg("name"), py::kw_only(), py::arg("mode") = 0600, py::arg("max_handles") = 64,
          "Creates lock `name`. max_handles: handles that may hold or wait for it at once.")
      .def_static(
          "open", [](const std::string& name) { return python_lock(Lock::open(name)); }, py::arg("name"),
          "Opens lock `name`.")
      .def_static(
          "open_or_create",
          [](const std::string& name, unsigned mode, std::uint32_t max_handles) {
            return python_lock(
                Lock::open_or_create(name, {.mode = static_cast<mode_t>(mode), .max_handles = max_handles}));
          },
          py::arg("name"), py::kw_only(), py::arg("mode") = 0600, py::arg("max_handles") = 64,
          "The lock `name` if it exists (the options then unused), else a new one.")
      .def_static(
          "create_in",
          [](const std::string& segment, std::size_t offset, std::uint32_t max_handles) {
            return python_lock(Lock::create_in(segment, offset, {.max_handles = max_handles}));
          },
          py::arg("segment"), py::arg("offset"), py::kw_only(), py::arg("max_handles") = 64,
          "Writes a new lock into segment `segment` at `offset` (a multiple of 64; footprint()\n"
          "bytes), beside the data it guards.")
      .def_static(
          "open_in",
          [](const std::string& segment, std::size_t offset) { return python_lock(Lock::open_in(segment, offset)); },
          py::arg("segment"), py::arg("offset"), "Opens the lock in segment `segment` at `offset`.")
      .def_static("footprint", &Lock::footprint, py::arg("max_handles") = 64,
                  "Bytes a lock for `max_handles` handles takes in a segment.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Lock::remove(name)); }, py::arg("name"),
          "Removes lock `name`'s name; handles open on it keep working with each other.")
      .def_static("list", &Lock::list, "The names of this machine's standalone locks.")
      .def_property_readonly("name", [](const PyLock& self) { return self.lock.name(); })
      .def(
          "acquire",
          [](PyLock& self, bool shared, Timeout timeout) {
            const OneThreadAtATime::Use in_use{self.use, self.object};
            // In one piece: a wait given up and begun again would lose its place in line.
            auto held = wait_whole_without_gil(timeout, [&](Deadline deadline) {
              return self.lock.lock(shared ? LockMode::shared : LockMode::exclusive, deadline);
            });
            return PyHeldLock{value_or_raise(std::move(held), self.object), self.object};
          },
          py::arg("shared") = false, py::arg("timeout") = py::none(),
          "Takes the lock, exclusive (or shared with other readers); a HeldLock, a context\n"
          "manager that releases it. WouldBlock with timeout=0, Timeout after `timeout`\n"
          "seconds. The wait is one piece: Ctrl-C is seen when it ends.")
      .def("__repr__", [](const PyLock& self) { return "<shmbox.Lock '" + self.lock.name() + "'>"; });
}

}  // namespace shmbox::python
