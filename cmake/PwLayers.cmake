# Layers the build enforces. A layer's headers are included by their folder's name
# ("embedded_server/routes.hpp", "cli/context.hpp"); the folder holding them all (the repository
# root) is on no include path. Instead each layer gets an include root of its own in the build
# tree that holds one entry, a link to that layer's folder, and only the targets of that layer
# and those that link them see it. An include that points upward (the server including the
# CLI, the library including either) finds no such file and fails to build; the ctest
# `layers_enforced` (tests/layers/) checks that it does.
#
#   pw_layer_include_root(<target> <folder>)   <folder>: a top-level folder of the repository
function(pw_layer_include_root target folder)
  set(root ${CMAKE_BINARY_DIR}/layers/${folder})
  if(NOT EXISTS ${root}/${folder})
    file(MAKE_DIRECTORY ${root})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${folder} ${root}/${folder} SYMBOLIC)
  endif()
  target_include_directories(${target} PUBLIC ${root})
endfunction()
