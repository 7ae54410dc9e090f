/* libffi glue for typed exports. Everything libffi needs (the cif, the type
** array, the argument storage and pointers) lives on this stack frame for the
** whole call, as libffi requires. */
#include "plexus_ffi.h"

#include <ffi.h>
#include <string.h>

static ffi_type *ffi_type_for(uint8_t t) {
    switch (t) {
    case PLEXUS_TYPE_VOID: return &ffi_type_void;
    case PLEXUS_TYPE_BOOL: return &ffi_type_uint8;
    case PLEXUS_TYPE_I32: return &ffi_type_sint32;
    case PLEXUS_TYPE_I64: return &ffi_type_sint64;
    case PLEXUS_TYPE_U32: return &ffi_type_uint32;
    case PLEXUS_TYPE_U64: return &ffi_type_uint64;
    case PLEXUS_TYPE_F32: return &ffi_type_float;
    case PLEXUS_TYPE_F64: return &ffi_type_double;
    case PLEXUS_TYPE_STRING:
    case PLEXUS_TYPE_STRING_OWNED: return &ffi_type_pointer;
    default: return NULL;
    }
}

/* Native storage for one C argument, whatever its type. */
typedef union slot {
    uint8_t b; int32_t i32; int64_t i64; uint32_t u32; uint64_t u64;
    float f32; double f64; const void *ptr;
} slot;

static void fill_slot(slot *s, uint8_t t, const plexus_ffi_value *v) {
    switch (t) {
    case PLEXUS_TYPE_BOOL: s->b = v->i64 != 0; break;
    case PLEXUS_TYPE_I32: s->i32 = (int32_t)v->i64; break;
    case PLEXUS_TYPE_I64: s->i64 = v->i64; break;
    case PLEXUS_TYPE_U32: s->u32 = (uint32_t)v->u64; break;
    case PLEXUS_TYPE_U64: s->u64 = v->u64; break;
    case PLEXUS_TYPE_F32: s->f32 = (float)v->f64; break;
    case PLEXUS_TYPE_F64: s->f64 = v->f64; break;
    default: s->ptr = v->ptr; break;
    }
}

/* Room for any return value; integers narrower than ffi_arg come back widened. */
typedef union ret_word {
    ffi_arg word; ffi_sarg sword; uint64_t u64; int64_t i64; float f32; double f64; void *ptr;
} ret_word;

static void read_return(uint8_t t, const ret_word *r, plexus_ffi_value *out) {
    memset(out, 0, sizeof *out);
    switch (t) {
    /* libffi widens integer returns narrower than ffi_arg to a full ffi_arg */
    case PLEXUS_TYPE_BOOL: out->i64 = (uint8_t)r->word != 0; break;
    case PLEXUS_TYPE_I32: out->i64 = (int32_t)r->sword; break;
    case PLEXUS_TYPE_I64: out->i64 = r->i64; break;
    case PLEXUS_TYPE_U32: out->u64 = (uint32_t)r->word; break;
    case PLEXUS_TYPE_U64: out->u64 = r->u64; break;
    case PLEXUS_TYPE_F32: out->f64 = r->f32; break;
    case PLEXUS_TYPE_F64: out->f64 = r->f64; break;
    case PLEXUS_TYPE_STRING:
    case PLEXUS_TYPE_STRING_OWNED: out->ptr = r->ptr; break;
    default: break;
    }
}

plexus_status plexus_ffi_call(void (*fn)(void), uint8_t return_type,
                              const uint8_t *arg_types, uint32_t argc,
                              const plexus_ffi_value *args, plexus_ffi_value *out_ret,
                              const char **out_what) {
    enum { MAX_C_ARGS = 2 * PLEXUS_MAX_EXPORT_ARGS };
    if (!fn || !out_ret || (argc && (!arg_types || !args)) || argc > PLEXUS_MAX_EXPORT_ARGS) {
        if (out_what) *out_what = "missing function, arguments or result, or too many arguments";
        return PLEXUS_INVALID_ARGUMENT;
    }
    ffi_type *rtype = return_type == PLEXUS_TYPE_BUFFER ? NULL : ffi_type_for(return_type);
    if (!rtype) {
        if (out_what) *out_what = "return type cannot be returned by a C function (BUFFER or unknown)";
        return PLEXUS_UNSUPPORTED;
    }
    ffi_type *types[MAX_C_ARGS];
    slot storage[MAX_C_ARGS];
    void *values[MAX_C_ARGS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < argc; i++) {
        uint8_t t = arg_types[i];
        if (t == PLEXUS_TYPE_BUFFER) {          /* (const uint8_t *data, uint64_t len) */
            types[n] = &ffi_type_pointer; storage[n].ptr = args[i].ptr; values[n] = &storage[n]; n++;
            types[n] = &ffi_type_uint64;  storage[n].u64 = args[i].u64; values[n] = &storage[n]; n++;
            continue;
        }
        ffi_type *ft = (t == PLEXUS_TYPE_VOID || t == PLEXUS_TYPE_STRING_OWNED) ? NULL : ffi_type_for(t);
        if (!ft) {
            if (out_what) *out_what = "an argument type cannot be passed (VOID, STRING_OWNED or unknown)";
            return PLEXUS_UNSUPPORTED;
        }
        types[n] = ft;
        fill_slot(&storage[n], t, &args[i]);
        values[n] = &storage[n];
        n++;
    }
    ffi_cif cif;
    if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, n, rtype, types) != FFI_OK) {
        if (out_what) *out_what = "libffi could not prepare a call with this signature";
        return PLEXUS_UNSUPPORTED;
    }
    ret_word result;
    memset(&result, 0, sizeof result);
    ffi_call(&cif, fn, &result, values);
    read_return(return_type, &result, out_ret);
    return PLEXUS_OK;
}
