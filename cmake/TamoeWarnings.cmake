# tamoe_target_defaults(target): warnings, sanitizers and the include root for one of our targets.
add_library(tamoe_options INTERFACE)
target_compile_options(tamoe_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${TAMOE_WERROR}>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall --expt-relaxed-constexpr>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${TAMOE_WERROR}>>:-Werror=all-warnings>)
if(TAMOE_SANITIZE)
  target_compile_options(tamoe_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
  target_link_options(tamoe_options INTERFACE -fsanitize=address,undefined)
endif()
target_include_directories(tamoe_options INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>)
if(TAMOE_HAVE_CUDA)
  target_compile_definitions(tamoe_options INTERFACE TAMOE_HAVE_CUDA=1)
endif()
if(TAMOE_HAVE_CLP)
  target_compile_definitions(tamoe_options INTERFACE TAMOE_HAVE_CLP=1)
endif()

function(tamoe_target_defaults target)
  target_link_libraries(${target} PRIVATE tamoe_options)
endfunction()
