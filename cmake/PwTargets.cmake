# Interface targets shared by every layer: warnings and sanitizers.
add_library(pw_warnings INTERFACE)
target_compile_options(pw_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
  -Wnon-virtual-dtor -Wno-missing-field-initializers
  # GCC 12 false positive on coroutine frames allocated by Asio (recycling allocator)
  -Wno-mismatched-new-delete)
if(PW_WERROR)
  target_compile_options(pw_warnings INTERFACE -Werror)
endif()

add_library(pw_sanitizers INTERFACE)
set(_pw_san "")
if(PW_ENABLE_ASAN)
  list(APPEND _pw_san address)
endif()
if(PW_ENABLE_UBSAN)
  list(APPEND _pw_san undefined)
endif()
if(PW_ENABLE_TSAN)
  # TSan and ASan each replace the allocator and shadow memory: one build, one of them.
  if(PW_ENABLE_ASAN)
    message(FATAL_ERROR "PW_ENABLE_TSAN and PW_ENABLE_ASAN cannot be combined (use the tsan or the asan preset)")
  endif()
  list(APPEND _pw_san thread)
  # GCC 12 warns that TSan does not model std::atomic_thread_fence, which Asio's fenced
  # blocks use around handlers it runs inline on the loop thread; the queue hand-offs
  # between threads are mutex-protected, which TSan does see.
  target_compile_options(pw_sanitizers INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
endif()
if(_pw_san)
  list(JOIN _pw_san "," _pw_san_list)
  target_compile_options(pw_sanitizers INTERFACE -fsanitize=${_pw_san_list} -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  target_link_options(pw_sanitizers INTERFACE -fsanitize=${_pw_san_list})
endif()
