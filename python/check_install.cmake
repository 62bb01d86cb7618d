# Installs the build into a fresh prefix and imports the installed Python package from
# there, with nothing of the build tree on its path: the package must be complete, and its
# extension must find the installed libshmbox by its own RPATH.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
  RESULT_VARIABLE status OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${err}")
endif()
set(check [=[
import os, sys
import shmbox
prefix = sys.argv[1]
assert shmbox.__file__.startswith(prefix), shmbox.__file__
libraries = {line.split()[-1] for line in open("/proc/self/maps") if "libshmbox.so" in line}
assert all(path.startswith(prefix) for path in libraries), libraries
with shmbox.Mailbox.create(f"install-check-{os.getpid()}") as box:
    box.send(b"installed")
    assert box.receive(timeout=5) == b"installed"
print("installed shmbox imports and works")
]=])
# From the work directory: the current directory is first on the path of `python -c`.
set(environment PYTHONPATH=${prefix}/${SITE_DIR})
if(PRELOAD)
  list(APPEND environment LD_PRELOAD=${PRELOAD})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env ${environment} ${PYTHON} -c "${check}" ${prefix}
  WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT status EQUAL 0 OR NOT out MATCHES "installed shmbox imports and works")
  message(FATAL_ERROR "the installed package failed: ${out}\n${err}")
endif()
