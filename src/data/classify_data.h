/* Labelled time series for classification, from the two archive formats:
 *
 *   UCR 2018 univariate .tsv: one series per line, tab-separated, the class label first. Some UCR
 *     sets store unequal lengths by padding the shorter rows with NaN at the end: trailing NaNs
 *     are padding (the row's valid length ends before them); a NaN inside a series, a row with a
 *     different number of fields (a ragged row) or a non-number are errors naming file and line.
 *   UEA / sktime .ts: '#' comments, header directives (@problemName, @timeStamps, @missing,
 *     @univariate, @dimensions, @equalLength, @seriesLength, @classLabel, then @data; names are
 *     case-insensitive as sktime reads them), one case per line, dimensions separated by ':',
 *     values by ',', the label last. Unequal lengths (@equalLength false) are padded with zeros
 *     and each example keeps its valid length; the dimensions of one case must have one length.
 *     '?' (or NaN) marks a missing value: trailing ones are padding as in UCR, inside a series
 *     they are refused (we do not impute). Unknown directives, @timeStamps true, labels not
 *     declared in @classLabel, and a dimension count other than @dimensions are errors naming
 *     file and line.
 *
 * Both give x [n, T, C] (T = the longest valid length, padding 0), the valid lengths and class
 * indices into `class_names` (UCR: the labels sorted numerically when they are all numbers,
 * else as text; UEA: the @classLabel order). Values are kept as they are (no normalisation). */
#ifndef SF_DATA_CLASSIFY_DATA_H
#define SF_DATA_CLASSIFY_DATA_H

typedef struct {
    int n, T, C;        /* examples, padded length, channels */
    float *x;           /* [n, T, C] */
    int *len;           /* [n] valid steps (1..T) */
    int *label;         /* [n] index into class_names */
    int n_classes;
    char **class_names; /* [n_classes] */
} sf_class_data;

/* By extension: ".ts" is UEA, anything else (".tsv", ".txt") UCR. */
int sf_class_data_load(const char *path, sf_class_data *d);
int sf_ucr_load(const char *path, sf_class_data *d);
int sf_uea_load(const char *path, sf_class_data *d);
void sf_class_data_free(sf_class_data *d);

/* Re-express d's labels in the class list `names` (a checkpoint's or the training file's): a
 * class of d that is not in names is an error naming it and `path`. d->class_names becomes a
 * copy of names. */
int sf_class_data_relabel(sf_class_data *d, char *const *names, int n_names, const char *path);

#endif
