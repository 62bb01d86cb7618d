# Clang with GCC's libstdc++ (Debian's default pairing). libstdc++ 12 and 13 offer
# <expected> only when __cpp_concepts >= 202002L, which clang before 19 does not
# claim although from clang 16 on it implements what <expected> needs of it
# (conditionally trivial special members, P0848). Clang 15 and older lack that,
# and would miscompile std::expected, so they are refused.
if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 16)
  message(FATAL_ERROR "shmbox needs clang 16 or later (std::expected); found ${CMAKE_CXX_COMPILER_VERSION}")
endif()
if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 19)
  add_compile_options(-U__cpp_concepts -D__cpp_concepts=202002L)
endif()
