/* Classification metrics over n examples with probabilities p [n, K] (rows sum to 1) and true
 * class indices y [n], as scikit-learn defines them:
 *   accuracy; balanced accuracy (mean per-class recall over the classes present in y);
 *   log-loss (mean -log p[i, y_i], p clipped to [1e-15, 1 - 1e-15]);
 *   class-balanced log-loss (t2 / PLAsTiCC with equal class weights: the mean over the classes
 *     present of each class's mean -log p);
 *   ROC-AUC (Mann-Whitney, ties counted half) and PR-AUC (average precision: sum over distinct
 *     thresholds of (R_k - R_{k-1}) P_k), one-vs-rest per class: macro = mean over the classes
 *     that have both positives and negatives (AUC) or positives (AP); micro = the same on all
 *     n*K (score, is-true-class) pairs pooled. NaN where no class qualifies.
 *   confusion matrix cm[true * K + predicted] (predicted = argmax, the first on ties). */
#ifndef SF_TASKS_CLASS_METRICS_H
#define SF_TASKS_CLASS_METRICS_H

typedef struct {
    double accuracy, balanced_accuracy, log_loss, cb_log_loss;
    double roc_auc_micro, roc_auc_macro, pr_auc_micro, pr_auc_macro;
} sf_class_metrics;

void sf_class_metrics_compute(const float *p, const int *y, long n, int K, sf_class_metrics *out);
void sf_confusion_matrix(const float *p, const int *y, long n, int K, long *cm);
int sf_argmax(const float *p, int K);

/* One binary problem: scores s[n], positives pos[n] (0/1). */
double sf_roc_auc(const double *s, const unsigned char *pos, long n);
double sf_average_precision(const double *s, const unsigned char *pos, long n);
/* The ROC (fpr, tpr) and PR (recall, precision) curves at every distinct threshold, from the
 * highest score down; (0, 0) starts the ROC. Arrays of n + 1 entries; returns the points. */
long sf_roc_curve(const double *s, const unsigned char *pos, long n, double *fpr, double *tpr);
long sf_pr_curve(const double *s, const unsigned char *pos, long n, double *recall,
                 double *precision);

#endif
