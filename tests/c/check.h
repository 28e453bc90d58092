/* Tiny test helpers shared by the C tests: count failures, never abort early. */
#ifndef TANDEM_TEST_CHECK_H
#define TANDEM_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "tandem.h"

static int failures = 0;
static int checks = 0;

#define EXPECT(cond)                                                      \
  do {                                                                    \
    checks++;                                                             \
    if (!(cond)) {                                                        \
      failures++;                                                         \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
    }                                                                     \
  } while (0)

/* The call must succeed; an error is reported and freed. Evaluates to 1 on success. */
#define OK(call) expect_ok((call), #call, __FILE__, __LINE__)

/* The call must fail with `code`; the error is freed either way. */
#define ERR(call, code) expect_err((call), (code), #call, __FILE__, __LINE__)

static inline int expect_ok(tandem_error *e, const char *what, const char *file, int line) {
  checks++;
  if (e == NULL) return 1;
  failures++;
  fprintf(stderr, "%s:%d: %s failed: [%s] %s\n", file, line, what,
          tandem_error_code_name(tandem_error_code(e)), tandem_error_message(e));
  tandem_error_free(e);
  return 0;
}

static inline int expect_err(tandem_error *e, uint32_t code, const char *what, const char *file,
                      int line) {
  checks++;
  if (e == NULL) {
    failures++;
    fprintf(stderr, "%s:%d: %s succeeded, expected %s\n", file, line, what,
            tandem_error_code_name(code));
    return 0;
  }
  uint32_t got = tandem_error_code(e);
  const char *msg = tandem_error_message(e);
  int ok = got == code && msg != NULL && strlen(msg) > 0;
  if (!ok) {
    failures++;
    fprintf(stderr, "%s:%d: %s: expected %s, got [%s] %s\n", file, line, what,
            tandem_error_code_name(code), tandem_error_code_name(got), msg);
  }
  tandem_error_free(e);
  return ok;
}

static inline int finish(const char *name) {
  fprintf(stderr, "%s: %d checks, %d failures\n", name, checks, failures);
  return failures == 0 ? 0 : 1;
}

#endif
