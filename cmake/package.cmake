# Debian packages with CPack: `cpack -G DEB` in a build directory, or
# scripts/package.sh, which makes a portable Release build first.
#
# Two packages, from the install components (cmake/install.cmake):
#   damoyolo          the damoyolo and damoyolo-video executables. Its
#                     Depends come from dpkg-shlibdeps, i.e. exactly the
#                     shared libraries the binaries load (oneDNN, protobuf,
#                     ONNX, OpenCV, libgomp, ...).
#   libdamoyolo-dev   libdamoyolo.a, headers and the CMake package. A static
#                     library pulls nothing in at run time, but linking it
#                     needs its dependencies' -dev packages, so its Depends
#                     are written by hand below.
# Why not one package: then running the CLI would drag in every -dev package
# (and OpenCL headers), or building against the library would fail for lack
# of them.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME damoyolo)
set(CPACK_PACKAGE_VENDOR "damoyolo")
set(DAMOYOLO_PACKAGE_MAINTAINER "damoyolo developers <dev@damoyolo.invalid>"
  CACHE STRING "Maintainer field of the Debian packages (Name <email>)")
set(CPACK_PACKAGE_CONTACT ${DAMOYOLO_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${DAMOYOLO_PACKAGE_MAINTAINER})
# Files go to /usr (CPACK_PACKAGING_INSTALL_PREFIX's default for DEB). The
# library directory is GNUInstallDirs' choice at configure time: configure
# with -DCMAKE_INSTALL_PREFIX=/usr (scripts/package.sh does) to get Debian's
# multiarch lib/x86_64-linux-gnu rather than lib.

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
# <name>_<version>_<arch>.deb, e.g. damoyolo_0.1.0_amd64.deb (no Debian
# revision: CPACK_DEBIAN_PACKAGE_RELEASE is unset).
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Strip the executables' symbol tables as Debian packages do (a Release build
# has no debug info to lose). Installing a static library never strips it.
set(CPACK_STRIP_FILES ON)

set(_damoyolo_cpu_note "")
if(DAMOYOLO_NATIVE)
  # -march=native code (the compiler's own vectorisation of everything but
  # the run-time-dispatched SIMD kernels) dies with SIGILL on a CPU without
  # the build machine's instruction set; the description says so, for a
  # package built that way by hand.
  set(_damoyolo_cpu_note "\n\nBuilt with -march=native: runs only on CPUs with the instruction set of\nthe machine it was built on.")
endif()

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME damoyolo)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION science)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# First line: the summary; the rest: the long description, which CPack
# indents as Debian wants (a blank line becomes " ."). No
# CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would prepend it to both packages.
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "DAMO-YOLO object detection on the CPU
damoyolo runs DAMO-YOLO object detectors exported to ONNX on the CPU with
oneDNN: detect objects in images and videos (annotated output and JSON),
evaluate COCO mAP, inspect and benchmark models.

The video command is a separate executable, damoyolo-video, which damoyolo
runs from beside itself.${_damoyolo_cpu_note}")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libdamoyolo-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# Nothing for dpkg-shlibdeps to read in a static library and headers.
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
# What damoyoloConfig.cmake's find_dependency calls and the final link need:
# ONNX (onnx_proto) and protobuf, oneDNN and the OpenCL its CMake config
# requires, libpng, libjpeg. OpenMP (libgomp) comes with g++.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libonnx-dev, libprotobuf-dev, libdnnl-dev, ocl-icd-opencl-dev, libpng-dev, libjpeg-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "cmake (>= 3.20), g++ (>= 4:12)")
set(CPACK_DEBIAN_DEV_DESCRIPTION "DAMO-YOLO object detection on the CPU - development files
libdamoyolo is a C++20 runtime for DAMO-YOLO object detectors exported to
ONNX, on the CPU with oneDNN.

This package holds the static library, its headers and a CMake package:
find_package(damoyolo), then link damoyolo::damoyolo.${_damoyolo_cpu_note}")

include(CPack)
