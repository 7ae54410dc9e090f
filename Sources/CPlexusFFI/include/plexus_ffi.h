/* plexus_ffi.h — call a plugin's typed export through libffi.
** Host-internal: the Swift host converts JSON to plexus_ffi_value arguments
** and back; this file owns every libffi detail (cif, type objects, widening
** of narrow integer returns). */
#ifndef PLEXUS_FFI_H
#define PLEXUS_FFI_H

#include "plexus.h"

/* One argument or return value. Which member is live follows the
** plexus_type it is paired with. Strings and buffers are borrowed. */
typedef struct plexus_ffi_value {
    int64_t  i64;     /* BOOL, I32, I64 */
    uint64_t u64;     /* U32, U64; BUFFER: its length */
    double   f64;     /* F32, F64 */
    const void *ptr;  /* STRING, STRING_OWNED, BUFFER: the bytes */
} plexus_ffi_value;

/* Calls fn with argc arguments of types arg_types (each a plexus_type;
** BUFFER passes two C arguments) and stores the result in *out_ret according
** to return_type. A STRING_OWNED result is left in out_ret->ptr for the
** caller to copy and free(). INVALID_ARGUMENT or UNSUPPORTED with *out_what
** set when a type cannot be passed or libffi refuses the signature. */
plexus_status plexus_ffi_call(void (*fn)(void), uint8_t return_type,
                              const uint8_t *arg_types, uint32_t argc,
                              const plexus_ffi_value *args, plexus_ffi_value *out_ret,
                              const char **out_what);

#endif
