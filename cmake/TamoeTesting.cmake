# Test registration helpers. Catch2 v2 (Debian) and v3 (Ubuntu) from one source: see tests/catch_compat.h.
find_package(Catch2 REQUIRED)
include(Catch)

add_library(tamoe_test_unit INTERFACE)
target_link_libraries(tamoe_test_unit INTERFACE Catch2::Catch2WithMain)
target_include_directories(tamoe_test_unit INTERFACE ${PROJECT_SOURCE_DIR}/tests)
target_compile_definitions(tamoe_test_unit INTERFACE CATCH_MAJOR=${Catch2_VERSION_MAJOR}
  TAMOE_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")

# tamoe_add_unit_test(NAME SOURCES ... LIBS ... [LABELS ...])
# One executable; each TEST_CASE becomes its own ctest test (label "unit").
function(tamoe_add_unit_test name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  tamoe_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${A_LIBS} tamoe_test_unit)
  catch_discover_tests(${name} TEST_PREFIX "${name}:" PROPERTIES LABELS "unit;${A_LABELS}" TIMEOUT 300)
endfunction()

# tamoe_add_mpi_test(NAME SOURCES ... LIBS ... RANKS 1 2 4 [ARGS ...] [ENV K=V ...])
# One executable run under mpiexec at each rank count (oversubscribed); tests/mpi/mpi_main.cc
# reduces the verdict across ranks so all agree.
function(tamoe_add_mpi_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;RANKS;ARGS;ENV;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  add_executable(${name} ${A_SOURCES} ${PROJECT_SOURCE_DIR}/tests/mpi/mpi_main.cc)
  tamoe_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${A_LIBS} MPI::MPI_CXX Catch2::Catch2)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${name} PRIVATE CATCH_MAJOR=${Catch2_VERSION_MAJOR}
    TAMOE_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  foreach(n IN LISTS A_RANKS)
    add_test(NAME ${name}:np${n}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} --oversubscribe --bind-to none
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${name}> ${A_ARGS})
    set_tests_properties(${name}:np${n} PROPERTIES PROCESSORS ${n} TIMEOUT ${A_TIMEOUT}
      LABELS "mpi;${A_LABELS}"
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl=self,vader,tcp;OMPI_MCA_pml=ob1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;TAMOE_TEST_RANKS=${n};${A_ENV}")
  endforeach()
endfunction()
