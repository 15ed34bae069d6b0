# Install rules: `cmake --install build --prefix P` gives
#   P/bin/damoyolo, P/bin/damoyolo-video          component "runtime"
#   P/<libdir>/libdamoyolo.a, P/include/damoyolo/  component "dev"
#   P/<libdir>/cmake/damoyolo/  (find_package(damoyolo) → damoyolo::damoyolo)
# The two components become the two Debian packages (cmake/package.cmake);
# a plain `cmake --install` installs both.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Both executables, side by side: `damoyolo video` execs the damoyolo-video
# next to it (tools/cli/main.cc, forward_to_video_binary), so they must never
# be installed apart.
install(TARGETS damoyolo_cli damoyolo_video_cli
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# The library, recorded in an export set so its usage requirements (include
# directory, C++20, and the link dependencies a static library passes on)
# are written to damoyoloTargets.cmake for users.
install(TARGETS damoyolo EXPORT damoyoloTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/damoyolo
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.h")

set(DAMOYOLO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/damoyolo)
install(EXPORT damoyoloTargets
  NAMESPACE damoyolo::
  DESTINATION ${DAMOYOLO_CMAKE_DIR} COMPONENT dev)

# configure_package_config_file makes the config relocatable (paths relative
# to where it is installed), so the same files serve any --prefix and the .deb.
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/damoyoloConfig.cmake.in
  ${PROJECT_BINARY_DIR}/damoyoloConfig.cmake
  INSTALL_DESTINATION ${DAMOYOLO_CMAKE_DIR})
# 0.x: the API may change between minor versions, so find_package(damoyolo
# 0.1) accepts 0.1.z only. The library is compiled code, so the version file
# also rejects a 32-bit consumer (write_basic_package_version_file checks
# CMAKE_SIZEOF_VOID_P unless ARCH_INDEPENDENT).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/damoyoloConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/damoyoloConfig.cmake
  ${PROJECT_BINARY_DIR}/damoyoloConfigVersion.cmake
  DESTINATION ${DAMOYOLO_CMAKE_DIR} COMPONENT dev)
