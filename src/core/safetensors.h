/* Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [8 bytes]  N, the header length, unsigned 64-bit little-endian
 *   [N bytes]  JSON header, padded with spaces to a multiple of 8 bytes:
 *              {"__metadata__": {"key": "string value", ...},
 *               "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 *               ...}
 *   [rest]     raw little-endian tensor bytes; offsets are relative to the start of this
 *              buffer and the tensors tile it exactly (no gaps, no overlaps, no trailing bytes)
 *
 * Supported dtypes: F32 (the parameters) and I64 (counters, indices). The writer lays tensors
 * out contiguously in the order given, puts "__metadata__" first (omitted when there is no
 * metadata) and writes through core/fileio's atomic path, so an existing checkpoint is only
 * ever replaced by a complete new one. The reader copies the data into one 64-byte aligned
 * buffer (F32 pointers are therefore 4-byte aligned, the first tensor 64-byte aligned; I64
 * tensors are always returned 8-byte aligned) and validates the whole file up front: every
 * problem is reported as a one-line message "<path>: <problem>".
 *
 * Little-endian hosts only (checked at compile time where the compiler tells, else at run
 * time). */
#ifndef SF_CORE_SAFETENSORS_H
#define SF_CORE_SAFETENSORS_H

#include <stdint.h>

#define SF_ST_MAX_DIMS 8
/* Largest header the reader accepts (the reference implementation's limit). */
#define SF_ST_MAX_HEADER 100000000ull

typedef enum { SF_ST_F32 = 0, SF_ST_I64 = 1 } sf_st_dtype;

/* One tensor to write. Zero-initialised fields give an F32 tensor, so
 * {.name = "w", .ndim = 2, .shape = {3, 4}, .data = w} is enough. ndim = 0 is a scalar
 * (one element); a zero dimension is an empty tensor (data may be NULL). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[SF_ST_MAX_DIMS];
    const float *data;       /* used when dtype == SF_ST_F32 */
    sf_st_dtype dtype;       /* default SF_ST_F32 */
    const int64_t *data_i64; /* used when dtype == SF_ST_I64 */
} sf_st_tensor_in;

typedef struct {
    const char *key;
    const char *value;
} sf_st_meta;

/* Write a checkpoint atomically. Names must be unique, non-empty, valid UTF-8 and not
 * "__metadata__"; metadata keys unique; 0 <= ndim <= 8; dims >= 0. Violations return SF_ERR
 * (message names the file) before anything is written. */
int sf_safetensors_write(const char *path, const sf_st_tensor_in *t, int n_tensors,
                         const sf_st_meta *meta, int n_meta);

typedef struct sf_safetensors sf_safetensors; /* opaque */

/* Load and validate a file. On SF_ERR, *out = NULL and the message names path and problem. */
int sf_safetensors_open(const char *path, sf_safetensors **out);
void sf_safetensors_close(sf_safetensors *st); /* NULL is fine */

const char *sf_safetensors_path(const sf_safetensors *st);
/* Tensors, in the order their entries appear in the JSON header. */
int sf_safetensors_count(const sf_safetensors *st);
const char *sf_safetensors_name(const sf_safetensors *st, int i);
/* Index of a tensor by name, -1 if absent (binary search). */
int sf_safetensors_find(const sf_safetensors *st, const char *name);
sf_st_dtype sf_safetensors_dtype(const sf_safetensors *st, int i);
/* Fills shape[0..ndim) and returns ndim. */
int sf_safetensors_shape(const sf_safetensors *st, int i, int64_t shape[SF_ST_MAX_DIMS]);
int64_t sf_safetensors_numel(const sf_safetensors *st, int i);

/* F32 tensor by name: NULL if absent or not F32; fills *ndim and shape (either may be NULL)
 * when found. Empty tensors give a valid non-NULL pointer. Valid until close. */
const float *sf_safetensors_get(const sf_safetensors *st, const char *name, int *ndim,
                                int64_t shape[SF_ST_MAX_DIMS]);
/* Same for I64 tensors. */
const int64_t *sf_safetensors_get_i64(const sf_safetensors *st, const char *name, int *ndim,
                                      int64_t shape[SF_ST_MAX_DIMS]);
/* Checked load for model code: copies F32 tensor `name` into dst after checking that it
 * exists, is F32 and has exactly shape[0..ndim). SF_ERR with a message such as
 * "ckpt.safetensors: tensor 'enc.0.w' has shape [64, 32], expected [64, 16]". */
int sf_safetensors_load_f32(const sf_safetensors *st, const char *name, int ndim,
                            const int64_t *shape, float *dst);

/* Metadata value by key, NULL if absent. Keys in header order via meta_count/meta_key. */
const char *sf_safetensors_meta(const sf_safetensors *st, const char *key);
int sf_safetensors_meta_count(const sf_safetensors *st);
const char *sf_safetensors_meta_key(const sf_safetensors *st, int i);

#endif
