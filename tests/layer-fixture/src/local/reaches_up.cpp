// A local backend that reaches up into the public handles: the layer check must refuse it.
#include "api/mailbox_access.hpp"
