# Installs a build of shmbox into a fresh prefix, then builds and runs a consumer project
# against it twice: with find_package(shmbox) and with pkg-config. SHARED says which
# library the build makes; with STATIC_BUILD the script first builds the static library
# alone from SOURCE_DIR, so that both variants are checked.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(libdir ${prefix}/${LIBDIR})
# A sanitizer build's library needs the same flags in its consumer.
separate_arguments(consumer_flags UNIX_COMMAND "${CONSUMER_FLAGS}")
find_program(READELF readelf REQUIRED)
find_program(PKG_CONFIG pkg-config REQUIRED)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGV}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# Runs a consumer (with any environment before it) and checks which library it uses.
function(check_consumer program)
  run(${CMAKE_COMMAND} -E env ${ARGN} ${program})
  if(NOT last_output MATCHES "installed shmbox works")
    message(FATAL_ERROR "${program} printed: ${last_output}")
  endif()
  run(${READELF} -d ${program})
  string(FIND "${last_output}" "[libshmbox.so.0]" needs_shared)
  if(SHARED AND needs_shared EQUAL -1)
    message(FATAL_ERROR "${program} does not load libshmbox.so.0:\n${last_output}")
  elseif(NOT SHARED AND NOT needs_shared EQUAL -1)
    message(FATAL_ERROR "${program} loads a shared libshmbox instead of the static one")
  endif()
endfunction()

if(STATIC_BUILD)
  set(BUILD_DIR ${WORK_DIR}/build)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR} -G Ninja -DSHMBOX_BUILD_SHARED=OFF
      -DSHMBOX_BUILD_TOOLS=OFF -DCMAKE_INSTALL_LIBDIR=${LIBDIR} -DCMAKE_CXX_COMPILER=${CONSUMER_CXX}
      "-DCMAKE_CXX_FLAGS=${CONSUMER_FLAGS}")
  run(${CMAKE_COMMAND} --build ${BUILD_DIR})
endif()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

if(SHARED)
  run(${READELF} -d ${libdir}/libshmbox.so)
  if(NOT last_output MATCHES "SONAME\\)[^\n]*\\[libshmbox\\.so\\.0\\]")
    message(FATAL_ERROR "libshmbox.so has no SONAME libshmbox.so.0:\n${last_output}")
  endif()
  # The installed tool finds its library through its own RPATH, without help.
  if(EXISTS ${prefix}/bin/shmbox)
    run(${prefix}/bin/shmbox --version)
  endif()
elseif(NOT EXISTS ${libdir}/libshmbox.a OR EXISTS ${libdir}/libshmbox.so)
  message(FATAL_ERROR "the static build did not install libshmbox.a alone")
endif()

run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/consumer -G Ninja -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_CXX_COMPILER=${CONSUMER_CXX} "-DCMAKE_CXX_FLAGS=${CONSUMER_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
check_consumer(${WORK_DIR}/consumer/consumer)

# As a user of a custom prefix would: PKG_CONFIG_PATH to build, LD_LIBRARY_PATH to run.
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
if(SHARED)
  run(${PKG_CONFIG} --cflags --libs shmbox)
else()
  run(${PKG_CONFIG} --static --cflags --libs shmbox)
endif()
string(STRIP "${last_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${CONSUMER_CXX} ${consumer_flags} ${CONSUMER_DIR}/main.cpp ${flags} -o ${WORK_DIR}/pkgconfig-consumer)
check_consumer(${WORK_DIR}/pkgconfig-consumer LD_LIBRARY_PATH=${libdir})
message(STATUS "find_package and pkg-config consumers both work")
