/* File I/O helpers: crash-safe (atomic) output and whole-file input.
 *
 * Atomic output writes to a temporary file "<path>.tmp.XXXXXX" in the same directory as the
 * target, then fflush + fsync, rename() over the target and fsync the directory. A reader of
 * <path> therefore sees either the complete old file or the complete new one, never a torn
 * write, even across a crash or power loss. On any error the temporary file is removed and an
 * existing target is left untouched.
 *
 * A new file gets mode 0666 & ~umask; replacing an existing file keeps that file's mode. A
 * symlink at <path> is replaced by a regular file (not written through).
 * All functions that can fail return SF_OK / SF_ERR and set a one-line message naming the
 * path (see core/error.h). */
#ifndef SF_CORE_FILEIO_H
#define SF_CORE_FILEIO_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *fp;       /* write here (fwrite/fprintf/...) between open and commit/abort */
    char *path;     /* final destination */
    char *tmp_path; /* the temporary file being written */
    int failed;     /* set to nonzero to make commit fail (e.g. after a failed write) */
    int err_no;     /* errno of the first failed sf_atomic_write (0 if none or unknown) */
} sf_atomic_file;

/* Create the temporary file for `path`. On SF_ERR, *f is zeroed and nothing is left behind. */
int sf_atomic_open(sf_atomic_file *f, const char *path);
/* fwrite wrapper: writes n bytes, marks f->failed on a short write. SF_OK / SF_ERR. */
int sf_atomic_write(sf_atomic_file *f, const void *data, size_t n);
/* Finish: checks f->failed and ferror, flushes, fsyncs, closes, renames over the target and
 * fsyncs the directory. Always releases f (zeroed afterwards); on SF_ERR the temporary file
 * is removed and the old target (if any) is unchanged -- except when only the final directory
 * fsync fails (EIO and the like): the new file is then in place but SF_ERR is still returned. */
int sf_atomic_commit(sf_atomic_file *f);
/* Give up: closes and removes the temporary file, releases f. Safe on a zeroed struct and
 * after commit/abort (does nothing then). */
void sf_atomic_abort(sf_atomic_file *f);

/* Write n bytes as the whole content of `path`, atomically. */
int sf_write_file_atomic(const char *path, const void *data, size_t n);

/* Read the whole file. On SF_OK, *data is a malloc'd buffer of *n bytes plus one extra '\0'
 * byte (so text can be used as a C string); free() it. On SF_ERR, *data = NULL, *n = 0. */
int sf_read_file(const char *path, void **data, size_t *n);

/* mkdir -p: create `dir` and any missing parents (mode 0777 & ~umask). An existing
 * directory is fine; an existing non-directory in the way is an error. */
int sf_mkdir_p(const char *dir);

#endif
