// The C++ side of shmbox.Pool: a pool whose workers are programs it starts (Python
// interpreters serving it, shmbox/_pool_worker.py), and serve_pool for them. Tasks and
// results are bytes here; shmbox/pool.py pickles the functions and values.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "shmbox/pool.hpp"

namespace shmbox::python {
namespace {

struct PyPool {
  Pool pool;
  std::string object;
  OneThreadAtATime use;
};

// An outcome's result, or the pool's error naming the task that failed on every attempt.
py::bytes result_of(const PyPool& self, const TaskOutcome& outcome) {
  if (!outcome.ok) raise(self.pool.failure(outcome));
  return bytes_of(outcome.result);
}

}  // namespace

void bind_pool(py::module_& module) {
  py::class_<PyPool>(module, "_Pool",
                     "A pool of worker programs that serve it (shmbox.Pool is the interface to use).")
      .def_static(
          "exec",
          [](std::vector<std::string> command, const std::string& name, std::uint32_t workers, std::uint32_t attempts,
             std::size_t max_task_size, std::size_t max_result_size) {
            PoolOptions options{.name = name,
                                .workers = workers,
                                .attempts = attempts,
                                .max_task_size = max_task_size,
                                .max_result_size = max_result_size};
            auto pool = value_or_raise(Pool::exec(std::move(command), options));
            std::string object = "pool '" + pool.name() + "'";
            return PyPool{std::move(pool), std::move(object), {}};
          },
          py::arg("command"), py::kw_only(), py::arg("name") = "", py::arg("workers") = 0, py::arg("attempts") = 3,
          py::arg("max_task_size") = 64 * 1024, py::arg("max_result_size") = 64 * 1024)
      .def(
          "submit",
          [](PyPool& self, const py::object& task, Timeout timeout) {
            const ContiguousBytes bytes{task, self.object};
            const OneThreadAtATime::Use in_use{self.use, self.object};
            return value_or_raise(
                wait_without_gil(timeout, [&](Deadline deadline) { return self.pool.submit(bytes.view(), deadline); }),
                self.object);
          },
          py::arg("task"), py::arg("timeout") = py::none(), "Queues a task; its id (0, 1, 2, ...).")
      .def(
          "result",
          [](PyPool& self, std::uint64_t id, Timeout timeout) {
            auto outcome = [&] {
              const OneThreadAtATime::Use in_use{self.use, self.object};
              return wait_without_gil(timeout, [&](Deadline deadline) { return self.pool.result(id, deadline); });
            }();
            return result_of(self, value_or_raise(std::move(outcome), self.object));
          },
          py::arg("id"), py::arg("timeout") = py::none(),
          "Task `id`'s result, once it has one (TaskFailed if it failed on every attempt).")
      .def(
          "next_finished",
          [](PyPool& self, Timeout timeout) {
            auto outcome = [&] {
              const OneThreadAtATime::Use in_use{self.use, self.object};
              return wait_without_gil(timeout, [&](Deadline deadline) { return self.pool.next_finished(deadline); });
            }();
            const TaskOutcome finished = value_or_raise(std::move(outcome), self.object);
            // A failure is returned, not raised: it is the error of whoever submitted that task.
            try {
              return py::make_tuple(finished.task, result_of(self, finished));
            } catch (const py::error_already_set& error) {
              return py::make_tuple(finished.task, error.value());
            }
          },
          py::arg("timeout") = py::none(),
          "The next task to finish, as (id, its result, or the TaskFailed exception for a task that\n"
          "failed on every attempt); NotFound when none is out.")
      .def("cancel", [](PyPool& self) {
        const OneThreadAtATime::Use in_use{self.use, self.object};
        const py::gil_scoped_release unlocked;  // waits for the workers to go
        self.pool.cancel();
      })
      .def_property_readonly("name", [](const PyPool& self) { return self.pool.name(); })
      .def_property_readonly("worker_pids", [](const PyPool& self) { return self.pool.worker_pids(); })
      .def_property_readonly("progress", [](const PyPool& self) {
        const PoolProgress progress = self.pool.progress();
        py::dict counts;
        counts["done"] = progress.done;
        counts["failed"] = progress.failed;
        counts["submitted"] = progress.submitted;
        counts["workers_replaced"] = progress.workers_replaced;
        return counts;
      });

  module.def(
      "serve_pool",
      [](const std::string& name, const py::function& function) {
        const std::string object = "pool '" + name + "'";
        // Called with the GIL released by the loop below; a Python error ends the attempt
        // with its text (taken while the GIL is held: it is formatted lazily).
        const TaskFunction task = [&](std::span<const std::byte> bytes) {
          const py::gil_scoped_acquire held;
          try {
            const py::object result =
                function(bytes_of(bytes));
            const ContiguousBytes out{result, object};
            return std::vector<std::byte>(out.view().begin(), out.view().end());
          } catch (const py::error_already_set& error) {
            // One line, as every error (pybind11's what() adds the traceback).
            throw std::runtime_error(std::string{py::str(error.type().attr("__name__"))} + ": " +
                                     std::string{py::str(error.value())});
          }
        };
        Result<void> served = [&] {
          const py::gil_scoped_release unlocked;
          return serve_pool(name, task);
        }();
        value_or_raise(std::move(served), object);
      },
      py::arg("name"), py::arg("function"),
      "Serves pool `name` from this process: calls `function(task: bytes) -> bytes` on each\n"
      "task it takes, until the pool ends.");
  module.def("pool_to_serve", &pool_to_serve, "The name of the pool that started this process, if one did.");
}

}  // namespace shmbox::python
