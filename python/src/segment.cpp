// shmbox.Segment: a named shared-memory segment, its bytes a memoryview (numpy reads them
// through the buffer protocol).
#include <memory>
#include <string>
#include <vector>

#include "binding.hpp"
#include "shmbox/segment.hpp"

namespace shmbox::python {
namespace {

// What a memoryview of a segment exports: it holds the mapping, so that the memory stays
// while a view of it lives, whatever happens to the Segment object.
struct SegmentMemory {
  std::shared_ptr<Segment> segment;
};

class PySegment {
 public:
  explicit PySegment(Segment segment)
      : segment_(std::make_shared<Segment>(std::move(segment))), name_(segment_->name()) {}
  const std::string& name() const noexcept { return name_; }

  const Segment& segment() const {
    if (!segment_) raise(Error{Errc::closed, "segment '" + name_ + "'", "this handle was closed"});
    return *segment_;
  }
  std::shared_ptr<Segment> shared() const {
    (void)segment();
    return segment_;
  }
  void close() noexcept { segment_.reset(); }

 private:
  std::shared_ptr<Segment> segment_;
  std::string name_;
};

}  // namespace

void bind_segment(py::module_& module) {
  py::class_<SegmentMemory>(module, "_SegmentMemory", py::buffer_protocol())
      .def_buffer([](SegmentMemory& memory) {
        Segment& segment = *memory.segment;
        const bool writable = segment.access() == Access::read_write;
        auto* data = const_cast<std::byte*>(segment.bytes().data());
        return py::buffer_info(data, 1, py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(segment.size())}, {1}, !writable);
      });

  py::class_<PySegment>(module, "Segment",
                        "A named segment of shared memory: create or open it by name, read and write its bytes\n"
                        "through `memory` (a memoryview). With shared memory the processes control concurrent\n"
                        "access themselves (a shmbox.Lock, or a protocol of their own).")
      .def_static(
          "create",
          [](const std::string& name, std::size_t size, unsigned mode) {
            return PySegment{value_or_raise(Segment::create(name, size, {.mode = static_cast<mode_t>(mode)}))};
          },
          py::arg("name"), py::arg("size"), py::arg("mode") = 0600,
          "Creates segment `name` of `size` bytes, zeroed, with permission bits `mode` (exactly).")
      .def_static(
          "open",
          [](const std::string& name, bool writable) {
            return PySegment{value_or_raise(Segment::open(name, writable ? Access::read_write : Access::read_only))};
          },
          py::arg("name"), py::arg("writable") = true, "Opens segment `name`, for reading and writing or reading only.")
      .def_static(
          "remove", [](const std::string& name) { value_or_raise(Segment::remove(name)); }, py::arg("name"),
          "Removes the name; the memory stays while a process has it mapped.")
      .def_static("list", &Segment::list, "The names of the segments on this machine.")
      .def_property_readonly("name", [](const PySegment& self) { return self.segment().name(); })
      .def_property_readonly("size", [](const PySegment& self) { return self.segment().size(); })
      .def_property_readonly("writable",
                             [](const PySegment& self) { return self.segment().access() == Access::read_write; })
      .def_property_readonly(
          "memory",
          [](const PySegment& self) {
            return py::memoryview(py::cast(SegmentMemory{self.shared()}));
          },
          "The segment's bytes: a memoryview (read-only if opened so), valid while it lives, even\n"
          "after close().")
      .def("close", &PySegment::close, "Lets go of the mapping (views of it keep it until they go).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySegment& self, py::args) { self.close(); })
      .def("__repr__", [](const PySegment& self) { return "<shmbox.Segment '" + self.name() + "'>"; });
}

}  // namespace shmbox::python
