// The _shmbox extension: the C++ library's concepts for Python (the shmbox package wraps
// it; docs/python.md).
#include "binding.hpp"

PYBIND11_MODULE(_shmbox, module) {
  module.doc() = "shmbox: shared memory and message passing between processes (the C++ library's binding)";
  shmbox::python::bind_errors(module);
  shmbox::python::bind_segment(module);
  shmbox::python::bind_mailbox(module);
  shmbox::python::bind_topic(module);
  shmbox::python::bind_endpoint(module);
  shmbox::python::bind_board(module);
  shmbox::python::bind_lock(module);
  shmbox::python::bind_service(module);
  shmbox::python::bind_pool(module);
}
