# Sanitizer and fuzzing builds (docs/fuzzing.md). Both need clang and are
# configured in their own build folders (scripts/sanitize.sh, scripts/fuzz.sh):
#
#   DAMOYOLO_SANITIZE=address,undefined   ASan + UBSan (UBSan aborts on the first report)
#   DAMOYOLO_SANITIZE=thread              TSan
#   DAMOYOLO_FUZZ=ON                      also -fsanitize=fuzzer-no-link on every target
#                                         and the libFuzzer executables in fuzz/
#
# The normal build sets neither and is unaffected by this file.
set(DAMOYOLO_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined | thread | empty (none)")
set_property(CACHE DAMOYOLO_SANITIZE PROPERTY STRINGS "" "address,undefined" "thread")
option(DAMOYOLO_FUZZ "Build the libFuzzer targets in fuzz/ (clang only)" OFF)

if(NOT DAMOYOLO_SANITIZE AND NOT DAMOYOLO_FUZZ)
  return()
endif()

if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "DAMOYOLO_SANITIZE / DAMOYOLO_FUZZ need clang (Debian: clang libclang-rt-14-dev): "
                      "configure a separate build folder with -DCMAKE_CXX_COMPILER=clang++")
endif()

if(DAMOYOLO_SANITIZE STREQUAL "address,undefined")
  set(_damoyolo_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined)
elseif(DAMOYOLO_SANITIZE STREQUAL "thread")
  if(DAMOYOLO_FUZZ)
    message(FATAL_ERROR "DAMOYOLO_FUZZ goes with DAMOYOLO_SANITIZE=address,undefined (or none), not thread")
  endif()
  set(_damoyolo_sanitize_flags -fsanitize=thread)
elseif(DAMOYOLO_SANITIZE STREQUAL "")
  set(_damoyolo_sanitize_flags)
else()
  message(FATAL_ERROR "DAMOYOLO_SANITIZE: '${DAMOYOLO_SANITIZE}' is not one of: address,undefined | thread")
endif()

# Frame pointers and line tables: readable stacks in every report, at a
# fraction of the compile time of full -g.
add_compile_options(${_damoyolo_sanitize_flags} -fno-omit-frame-pointer -gline-tables-only
  # GCC-only warning names in the sources (#pragma GCC diagnostic) are no news.
  -Wno-unknown-warning-option)
add_link_options(${_damoyolo_sanitize_flags})
if(DAMOYOLO_FUZZ)
  # Coverage instrumentation for the library (and everything else built
  # here), so one build serves the unit tests and the fuzz targets; only the
  # fuzz executables link libFuzzer itself (-fsanitize=fuzzer, fuzz/).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# OpenMP: Debian's oneDNN runs on GCC's libgomp. Clang's own -fopenmp would
# bring LLVM's libomp (not installed, and a second runtime in the process), so
# the sanitizer builds link the same libgomp instead: clang cannot generate
# libgomp calls, so our own `#pragma omp` regions (the reference convolution,
# the CLI's FMA-peak measurement) run serially here, while
# omp_set_num_threads and oneDNN's threading are the production ones. GCC's omp.h does not compile with clang, hence the
# small standard one in cmake/libgomp-include.
file(GLOB _damoyolo_gcc_dirs LIST_DIRECTORIES true /usr/lib/gcc/${CMAKE_LIBRARY_ARCHITECTURE}/*)
find_library(DAMOYOLO_LIBGOMP NAMES gomp libgomp.so.1 HINTS ${_damoyolo_gcc_dirs} REQUIRED)
add_library(OpenMP::OpenMP_CXX INTERFACE IMPORTED)
set_target_properties(OpenMP::OpenMP_CXX PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES ${CMAKE_CURRENT_LIST_DIR}/libgomp-include
  # Without -fopenmp the pragma is "unknown" to clang: that is the point.
  INTERFACE_COMPILE_OPTIONS -Wno-unknown-pragmas
  INTERFACE_LINK_LIBRARIES ${DAMOYOLO_LIBGOMP})
set(OpenMP_CXX_FOUND TRUE)
set(OpenMP_FOUND TRUE)
message(STATUS "damoyolo: sanitizers '${DAMOYOLO_SANITIZE}', fuzz ${DAMOYOLO_FUZZ}, OpenMP = ${DAMOYOLO_LIBGOMP}")
