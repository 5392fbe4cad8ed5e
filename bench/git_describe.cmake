# Writes OUT (a header defining CS_GIT_DESCRIBE) from `git describe` of SRC, only when the
# text changes, so the bench's commit field follows each build without needless recompiles.
find_package(Git QUIET)
set(desc "unknown")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} describe --always --dirty --tags
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0 AND out)
    set(desc "${out}")
  endif()
endif()
set(text "#define CS_GIT_DESCRIBE \"${desc}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
