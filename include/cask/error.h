/*
** cask/error.h: the one error type and the error codes.
**
** Every fallible cask function returns 0 on success or a negative CASK_E*
** code, and fills a caller-allocated cask_error_t when one is given (NULL
** means "don't care"). Filling an error never allocates.
*/
#ifndef CASK_ERROR_H
#define CASK_ERROR_H

#include <stddef.h>

#if defined(_WIN32)
#define CASK_API __declspec(dllexport)
#elif defined(__GNUC__)
#define CASK_API __attribute__((visibility("default")))
#else
#define CASK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The codes and their texts, in one list (as libuv's UV_ERRNO_MAP). */
#define CASK_ERRNO_MAP(XX)                                       \
    XX(ENOMEM,    -1, "out of memory")                           \
    XX(EINVAL,    -2, "invalid argument")                        \
    XX(ECYCLE,    -3, "graph has a cycle")                       \
    XX(EMISSING,  -4, "input key not in graph")                  \
    XX(EDUPKEY,   -5, "duplicate key")                           \
    XX(ENOKERNEL, -6, "unknown kernel")                          \
    XX(EKERNEL,   -7, "kernel reported an error")                \
    XX(EWORKER,   -8, "worker process died")                     \
    XX(EPARSE,    -9, "malformed input")                         \
    XX(EIO,       -10, "input/output error")                     \
    XX(ETYPE,     -11, "wrong value type")                       \
    XX(ENOSCHED,  -12, "unknown scheduler")                      \
    XX(ECANCELED, -13, "compute was cancelled")                  \
    XX(ETIMEDOUT, -14, "timed out")                              \
    XX(ELIMIT,    -15, "a size limit was exceeded")

/* The error codes: CASK_ENOMEM, CASK_EINVAL, ... all negative. */
enum {
#define CASK_XX_ENUM(name, val, text) CASK_##name = (val),
    CASK_ERRNO_MAP(CASK_XX_ENUM)
#undef CASK_XX_ENUM
    CASK_OK = 0 /* success */
};

/* Details of a failure. The caller allocates it; fields have fixed sizes. */
typedef struct cask_error {
    int  code;          /* negative CASK_E*, or 0 */
    int  signal;        /* signal that killed a worker process, else 0 */
    char key[128];      /* failing task, e.g. "add-3f9c21e07a1b2c3d-4", or "" */
    char kernel[64];    /* its kernel, e.g. "mylib.square", or "" */
    char message[256];  /* the kernel's message, or the engine's */
} cask_error_t;

/*
** The text for an error code, e.g. "graph has a cycle"; "unknown error" for a
** code not in the list. Static storage. Threads: safe.
*/
CASK_API const char *cask_strerror(int code);

/* The name of an error code, e.g. "ECYCLE". Static storage. Threads: safe. */
CASK_API const char *cask_err_name(int code);

/* Reset *err to "no error". err may be NULL. Threads: safe on distinct errs. */
CASK_API void cask_error_clear(cask_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* CASK_ERROR_H */
