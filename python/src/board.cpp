// shmbox.Board: one shared value with a version, read by many; its waits release the GIL.
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "shmbox/board.hpp"

namespace shmbox::python {
namespace {

// A value and its version; `skipped`: versions that came and went before it (watch).
struct PyBoardValue {
  py::bytes data;
  std::uint64_t version = 0;
  std::uint64_t skipped = 0;
};

PyBoardValue python_value(const BoardValue& value) {
  return {bytes_of(value.bytes), value.version, value.skipped};
}

// A Board with its name for errors. Several threads may use one handle at once (the C++
// handle serialises its writers), so no OneThreadAtATime here.
struct PyBoard {
  Board board;
  std::string object;
};

PyBoard python_board(Result<Board>&& opened) {
  Board board = value_or_raise(std::move(opened));
  std::string object = "board '" + board.name() + "'";
  return {std::move(board), std::move(object)};
}

BoardOptions board_options(std::size_t max_size, std::uint32_t max_views, const std::string& ownership, unsigned mode) {
  return {.max_size = max_size, .max_views = max_views, .ownership = ownership_of(ownership), .mode = mode};
}

}  // namespace

void bind_board(py::module_& module) {
  py::class_<PyBoardValue>(module, "BoardValue", "A board's value and its version.")
      .def_readonly("data", &PyBoardValue::data, "its bytes")
      .def_readonly("version", &PyBoardValue::version, "0 for a new board's empty value, then one more per put")
      .def_readonly("skipped", &PyBoardValue::skipped, "watch: versions published and replaced before this one")
      .def("__repr__", [](const PyBoardValue& self) {
        return "<shmbox.BoardValue version=" + std::to_string(self.version) + " " +
               std::to_string(py::len(self.data)) + " bytes>";
      });

  py::class_<PyBoard>(module, "Board",
                      "One shared value with a version, that many processes read and some write. A reader\n"
                      "sees a whole value, never one a writer tore; a writer killed at any instruction leaves\n"
                      "the last complete version. Timeouts as for Mailbox.")
      .def_static(
          "create",
          [](const std::string& name, std::size_t max_size, std::uint32_t max_views, const std::string& ownership,
             unsigned mode) {
            return python_board(Board::create(name, board_options(max_size, max_views, ownership, mode)));
          },
          py::arg("name"), py::kw_only(), py::arg("max_size") = 64 * 1024, py::arg("max_views") = 8,
          py::arg("ownership") = "process", py::arg("mode") = 0600,
          "Creates board `name`, holding the empty value at version 0, for values of up to\n"
          "`max_size` bytes. ownership: 'process' (removed when this process exits) or 'system'.\n"
          "A 'nats://host:port/NAME' name puts it in that server's key-value store.")
      .def_static(
          "open", [](const std::string& name) { return python_board(Board::open(name)); }, py::arg("name"),
          "Opens board `name`.")
      .def_static(
          "open_or_create",
          [](const std::string& name, std::size_t max_size, std::uint32_t max_views, const std::string& ownership,
             unsigned mode) {
            return python_board(Board::open_or_create(name, board_options(max_size, max_views, ownership, mode)));
          },
          py::arg("name"), py::kw_only(), py::arg("max_size") = 64 * 1024, py::arg("max_views") = 8,
          py::arg("ownership") = "process", py::arg("mode") = 0600,
          "The board `name` if it exists (the options then unused), else a new one.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Board::remove(name)); }, py::arg("name"),
          "Removes board `name`: its handles get Closed, its watchers wake.")
      .def_static("list", &Board::list, "The names of this machine's boards.")
      .def_property_readonly("name", [](const PyBoard& self) { return self.board.name(); })
      .def_property_readonly("max_size", [](const PyBoard& self) { return self.board.max_size(); })
      .def_property_readonly(
          "version", [](PyBoard& self) { return value_or_raise(self.board.version(), self.object); },
          "The latest version.")
      .def(
          "put",
          [](PyBoard& self, const py::object& value, Timeout timeout) {
            const ContiguousBytes bytes{value, self.object};
            // In one piece: a wait for the writers' lock given up and begun again would lose
            // its place in line.
            return value_or_raise(wait_whole_without_gil(
                                      timeout, [&](Deadline deadline) { return self.board.put(bytes.view(), deadline); }),
                                  self.object);
          },
          py::arg("value"), py::arg("timeout") = py::none(),
          "Publishes `value` (any contiguous buffer) as the next version; that version. Waits for\n"
          "another writer only (never for readers), in one piece: Ctrl-C is seen when it ends.")
      .def(
          "put_if",
          [](PyBoard& self, std::uint64_t expected_version, const py::object& value, Timeout timeout) {
            const ContiguousBytes bytes{value, self.object};
            return value_or_raise(wait_whole_without_gil(timeout,
                                                         [&](Deadline deadline) {
                                                           return self.board.put_if(expected_version, bytes.view(),
                                                                                    deadline);
                                                         }),
                                  self.object);
          },
          py::arg("expected_version"), py::arg("value"), py::arg("timeout") = py::none(),
          "As put, only if the latest version is still `expected_version` (else Conflict, naming\n"
          "the latest).")
      .def(
          "update",
          [](PyBoard& self, const py::function& change, Timeout timeout) {
            // Called without the GIL by the C++ retry loop; a Python error in `change` ends it.
            const auto call_change = [&](std::span<const std::byte> old) {
              const py::gil_scoped_acquire held;
              const py::object changed = change(bytes_of(old));
              const ContiguousBytes bytes{changed, self.object};
              return std::vector<std::byte>(bytes.view().begin(), bytes.view().end());
            };
            return value_or_raise(wait_whole_without_gil(timeout,
                                                         [&](Deadline deadline) {
                                                           return self.board.update(call_change, deadline);
                                                         }),
                                  self.object);
          },
          py::arg("change"), py::arg("timeout") = py::none(),
          "Read-modify-write: publishes change(latest bytes), again on the new latest value\n"
          "each time another writer got there first; the version it published.")
      .def(
          "get",
          [](PyBoard& self) {
            auto value = [&] {
              const py::gil_scoped_release unlocked;
              return self.board.get();
            }();
            return python_value(value_or_raise(std::move(value), self.object));
          },
          "The latest complete value, a BoardValue (data, version).")
      .def(
          "watch",
          [](PyBoard& self, std::uint64_t after_version, Timeout timeout) {
            return python_value(value_or_raise(
                wait_without_gil(timeout, [&](Deadline deadline) { return self.board.watch(after_version, deadline); }),
                self.object));
          },
          py::arg("after_version"), py::arg("timeout") = py::none(),
          "Waits until a version after `after_version` exists, then the latest value (skipped: the\n"
          "versions that came between). Closed once the board is removed.")
      .def("__repr__", [](const PyBoard& self) { return "<shmbox.Board '" + self.board.name() + "'>"; });
}

}  // namespace shmbox::python
