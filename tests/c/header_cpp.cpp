// The generated header compiles as C++17 (with -Wall -Wextra -Werror -pedantic) and its
// declarations are usable from C++ without casts.
#include "tandem.h"

#include <cstdint>

static_assert(TANDEM_ERR_CANCELLED == 12, "error codes are stable");
static_assert(TANDEM_ABI_VERSION >= 1, "ABI version macro");

int header_compiles_as_cpp() {
  tandem_options *o = tandem_options_new();
  tandem_error *e = tandem_options_set_threads(o, 1);
  std::uint32_t code = tandem_error_code(e);
  tandem_error_free(e);
  tandem_options_free(o);
  return static_cast<int>(code) + TANDEM_VERSION_MAJOR;
}
