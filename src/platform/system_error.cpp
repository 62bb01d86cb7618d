#include "platform/system_error.hpp"

#include <cerrno>

namespace shmbox::platform {

Error system_error(int err, std::string object, std::string_view action) {
  Errc code = Errc::system;
  std::string_view cause;
  switch (err) {
    case ENOENT: code = Errc::not_found; cause = "does not exist"; break;
    case EEXIST: code = Errc::already_exists; cause = "already exists"; break;
    case EACCES:
    case EPERM: code = Errc::permission_denied; cause = "permission denied"; break;
    case ENOSPC: code = Errc::no_space; cause = "not enough room in /dev/shm"; break;
    case EFBIG:
    case EOVERFLOW: code = Errc::too_large; cause = "size too large"; break;
    case ENOMEM: code = Errc::out_of_memory; cause = "out of memory"; break;
    case ENAMETOOLONG: code = Errc::invalid_name; cause = "name too long"; break;
    default: break;
  }
  std::string detail{action};
  if (!cause.empty()) {
    detail += ": ";
    detail += cause;
  }
  return Error{code, std::move(object), std::move(detail), err};
}

}  // namespace shmbox::platform
