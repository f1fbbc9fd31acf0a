/* Task "lm": next-token prediction on a text file.
 *
 * Tokenizer: "char" (default) — the vocabulary is the set of distinct bytes of the training file
 * (both splits), sorted, so tiny shakespeare has 65 tokens; it is stored in the checkpoint's
 * metadata ("lm_tokenizer", "lm_vocab" as hex) and a prompt byte outside it is refused at
 * generate. "byte" — the 256 byte values, nothing stored, any byte accepted. Multi-byte UTF-8
 * characters are several tokens in both (the tokenizer is byte-level; "char" means "the bytes
 * this text uses").
 * Data: the first 90% of the bytes train, the last 10% validate; the test split is the
 * validation split unless `--test FILE` names a separate text (tokenized with the same
 * vocabulary). A file that is empty, binary (a NUL byte, or more than 1% control bytes other
 * than tab, newline, CR, FF, VT, ESC) or too short for one window in each split is refused.
 * Examples: x = seq_len token ids, y = the same window shifted by one. Training windows start at
 * random offsets drawn per epoch from (seed, epoch) (begin_epoch), so resuming replays them; an
 * epoch is floor((train bytes - 1) / seq_len) windows, about one pass over the training text.
 * Validation/test windows are the non-overlapping ones from the split's start (the first tokens
 * of each window see a short context, as in nanoGPT's estimate).
 * Loss: mean cross-entropy in nats per token; metrics loss, bpc (loss / ln 2: bits per byte,
 * = bits per character for ASCII text) and perplexity (exp loss). */
#ifndef SF_TASKS_LM_H
#define SF_TASKS_LM_H

#include "tasks/task.h"

extern const sf_task_def sf_task_lm;

/* byte <-> token id maps of a checkpoint's tokenizer. */
typedef struct {
    int vocab;
    int id_of[256];             /* -1: a byte outside the vocabulary */
    unsigned char byte_of[256]; /* [vocab] */
} sf_lm_vocab;

/* From a checkpoint's metadata; SF_ERR when it was not trained by the lm task. */
int sf_lm_vocab_from_meta(const sf_meta *meta, sf_lm_vocab *v);
/* Mean cross-entropy (nats) of logits [n, V] against integer targets (as floats) [n]; dlogits
 * (may be NULL) = d mean / d logits. */
double sf_lm_cross_entropy(const float *logits, const float *targets, float *dlogits, long n, int V);

#endif
