/* The three parts of a data set every task uses. */
#ifndef SF_DATA_SPLIT_H
#define SF_DATA_SPLIT_H

typedef enum { SF_TRAIN = 0, SF_VAL = 1, SF_TEST = 2 } sf_split;
const char *sf_split_name(sf_split split); /* "train", "val", "test" */

#endif
