/*
** collections/array_ops.c: the elementwise operations of arrays, one row
** each: a name, how it types its operands and result, and a loop per
** dtype. Building an expression (array_expr.c) reads the rules; the
** evaluator (array_eval.c) calls the loops, a tile at a time. Adding an
** operation is a row here and an enumerator in cask/array.h.
**
** Arithmetic on int64 wraps, as NumPy's does (computed in uint64: signed
** overflow is undefined in C).
*/
#include <math.h>
#include <string.h>

#include "array.h"

#define LOOP1(name, T, U, expr)                                              \
    static void name(const void *a, void *out, size_t len)                   \
    {                                                                        \
        const T *x_ = a;                                                     \
        U *y_ = out;                                                         \
        for (size_t j = 0; j < len; j++) {                                   \
            T v = x_[j];                                                     \
            y_[j] = (U)(expr);                                               \
        }                                                                    \
    }

#define LOOP2(name, T, U, expr)                                              \
    static void name(const void *a, const void *b, void *out, size_t len)   \
    {                                                                        \
        const T *x_ = a, *z_ = b;                                            \
        U *y_ = out;                                                         \
        for (size_t j = 0; j < len; j++) {                                   \
            T v = x_[j], w = z_[j];                                          \
            y_[j] = (U)(expr);                                               \
        }                                                                    \
    }

/* ---------------------------------------------------------------- unary */

LOOP1(neg_f64, double, double, -v)
LOOP1(neg_f32, float, float, -v)
LOOP1(neg_i64, int64_t, uint64_t, 0 - (uint64_t)v)
LOOP1(abs_f64, double, double, fabs(v))
LOOP1(abs_f32, float, float, fabsf(v))
LOOP1(abs_i64, int64_t, uint64_t, v < 0 ? 0 - (uint64_t)v : (uint64_t)v)
LOOP1(sqrt_f64, double, double, sqrt(v))
LOOP1(sqrt_f32, float, float, sqrtf(v))
LOOP1(exp_f64, double, double, exp(v))
LOOP1(exp_f32, float, float, expf(v))
LOOP1(log_f64, double, double, log(v))
LOOP1(log_f32, float, float, logf(v))
LOOP1(sin_f64, double, double, sin(v))
LOOP1(sin_f32, float, float, sinf(v))
LOOP1(cos_f64, double, double, cos(v))
LOOP1(cos_f32, float, float, cosf(v))

/* Loops by dtype: float64, float32, int64, bool. */
#define FLOATS(op) { op##_f64, op##_f32, NULL, NULL }
#define NUMBERS(op) { op##_f64, op##_f32, op##_i64, NULL }

const ar_unop_t cask__ar_unops[CASK_UNOP_COUNT] = {
    [CASK_NEG]  = { "neg", AR_SAME, AR_BOOL_REFUSE, NUMBERS(neg) },
    [CASK_ABS]  = { "abs", AR_SAME, AR_BOOL_SELF, NUMBERS(abs) },
    [CASK_SQRT] = { "sqrt", AR_FLOAT, AR_BOOL_FLOAT, FLOATS(sqrt) },
    [CASK_EXP]  = { "exp", AR_FLOAT, AR_BOOL_FLOAT, FLOATS(exp) },
    [CASK_LOG]  = { "log", AR_FLOAT, AR_BOOL_FLOAT, FLOATS(log) },
    [CASK_SIN]  = { "sin", AR_FLOAT, AR_BOOL_FLOAT, FLOATS(sin) },
    [CASK_COS]  = { "cos", AR_FLOAT, AR_BOOL_FLOAT, FLOATS(cos) },
};

/* --------------------------------------------------------------- binary */

LOOP2(add_f64, double, double, v + w)
LOOP2(add_f32, float, float, v + w)
LOOP2(add_i64, int64_t, uint64_t, (uint64_t)v + (uint64_t)w)
LOOP2(sub_f64, double, double, v - w)
LOOP2(sub_f32, float, float, v - w)
LOOP2(sub_i64, int64_t, uint64_t, (uint64_t)v - (uint64_t)w)
LOOP2(mul_f64, double, double, v * w)
LOOP2(mul_f32, float, float, v * w)
LOOP2(mul_i64, int64_t, uint64_t, (uint64_t)v * (uint64_t)w)
LOOP2(div_f64, double, double, v / w)
LOOP2(div_f32, float, float, v / w)
LOOP2(pow_f64, double, double, pow(v, w))
LOOP2(pow_f32, float, float, powf(v, w))

/* Comparisons, on every dtype. */
#define COMPARE(op, expr)                                                    \
    LOOP2(op##_f64, double, uint8_t, expr)                                   \
    LOOP2(op##_f32, float, uint8_t, expr)                                    \
    LOOP2(op##_i64, int64_t, uint8_t, expr)                                  \
    LOOP2(op##_b, uint8_t, uint8_t, expr)
COMPARE(lt, v < w)
COMPARE(le, v <= w)
COMPARE(gt, v > w)
COMPARE(ge, v >= w)
COMPARE(eq, v == w)
COMPARE(ne, v != w)
#define ALL4(op) { op##_f64, op##_f32, op##_i64, op##_b }

const ar_binop_t cask__ar_binops[CASK_BINOP_COUNT] = {
    [CASK_ADD] = { "add", AR_SAME, false, NUMBERS(add) },
    [CASK_SUB] = { "sub", AR_SAME, false, NUMBERS(sub) },
    [CASK_MUL] = { "mul", AR_SAME, false, NUMBERS(mul) },
    [CASK_DIV] = { "div", AR_FLOAT, true, FLOATS(div) },
    [CASK_POW] = { "pow", AR_FLOAT, false, FLOATS(pow) },
    [CASK_LT]  = { "lt", AR_COMPARE, true, ALL4(lt) },
    [CASK_LE]  = { "le", AR_COMPARE, true, ALL4(le) },
    [CASK_GT]  = { "gt", AR_COMPARE, true, ALL4(gt) },
    [CASK_GE]  = { "ge", AR_COMPARE, true, ALL4(ge) },
    [CASK_EQ]  = { "eq", AR_COMPARE, true, ALL4(eq) },
    [CASK_NE]  = { "ne", AR_COMPARE, true, ALL4(ne) },
};

/* ---------------------------------------------------------- cast, where */

void cask__ar_cast(int from, int to, const void *a, void *out, size_t len)
{
#define CAST(T, U, expr)                                                     \
    do {                                                                     \
        const T *x_ = a;                                                     \
        U *y_ = out;                                                         \
        for (size_t j = 0; j < len; j++) {                                   \
            T v = x_[j];                                                     \
            y_[j] = (U)(expr);                                               \
        }                                                                    \
    } while (0)
#define CAST_FROM(T, TO_I64)                                                 \
    switch (to) {                                                            \
    case CASK_F64: CAST(T, double, v); break;                                \
    case CASK_F32: CAST(T, float, v); break;                                 \
    case CASK_I64: CAST(T, int64_t, TO_I64(v)); break;                       \
    default: CAST(T, uint8_t, v != 0); break;                                \
    }
#define SAME(v) (v)
    switch (from) {
    case CASK_F64: CAST_FROM(double, ar_d2i); break;
    case CASK_F32: CAST_FROM(float, ar_d2i); break;
    case CASK_I64: CAST_FROM(int64_t, SAME); break;
    default: CAST_FROM(uint8_t, SAME); break;
    }
#undef SAME
#undef CAST_FROM
#undef CAST
}

void cask__ar_where(int dt, const uint8_t *c, const void *a, const void *b, void *out, size_t len)
{
    size_t sz = cask_dtype_size((cask_dtype_t)dt);
    for (size_t j = 0; j < len; j++)
        memcpy((char *)out + j * sz, (const char *)(c[j] ? a : b) + j * sz, sz);
}
