include(CMakePackageConfigHelpers)

install(TARGETS shmbox EXPORT shmboxTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/shmbox DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(SHMBOX_BUILD_TOOLS)
  install(TARGETS shmbox-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(SHMBOX_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shmbox)
install(EXPORT shmboxTargets NAMESPACE shmbox:: DESTINATION ${SHMBOX_CMAKE_DIR})
configure_package_config_file(cmake/shmboxConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/shmboxConfig.cmake INSTALL_DESTINATION ${SHMBOX_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/shmboxConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmboxConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/shmboxConfigVersion.cmake
        DESTINATION ${SHMBOX_CMAKE_DIR})

# The .pc file finds the prefix from its own location, so that an install moved
# or made with `cmake --install --prefix` stays correct.
file(RELATIVE_PATH SHMBOX_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file(cmake/shmbox.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shmbox.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbox.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
