#include "tasks/class_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int sf_argmax(const float *p, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

void sf_confusion_matrix(const float *p, const int *y, long n, int K, long *cm) {
    memset(cm, 0, (size_t)K * K * sizeof(long));
    for (long i = 0; i < n; i++) cm[(size_t)y[i] * K + sf_argmax(p + (size_t)i * K, K)]++;
}

typedef struct {
    double s;
    unsigned char pos;
} scored;

static int by_score_desc(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x > y ? -1 : x < y;
}

static scored *sorted(const double *s, const unsigned char *pos, long n, long *npos) {
    scored *v = sf_malloc((size_t)(n ? n : 1) * sizeof *v);
    *npos = 0;
    for (long i = 0; i < n; i++) {
        v[i].s = s[i];
        v[i].pos = pos[i];
        *npos += pos[i];
    }
    qsort(v, (size_t)n, sizeof *v, by_score_desc);
    return v;
}

/* Walk the distinct thresholds from the top: after each group of tied scores, the counts of
 * true and false positives above the threshold. */
long sf_roc_curve(const double *s, const unsigned char *pos, long n, double *fpr, double *tpr) {
    long P;
    scored *v = sorted(s, pos, n, &P);
    long N = n - P, tp = 0, fp = 0, k = 0;
    fpr[k] = 0;
    tpr[k++] = 0;
    for (long i = 0; i < n;) {
        long j = i;
        for (; j < n && v[j].s == v[i].s; j++) {
            tp += v[j].pos;
            fp += !v[j].pos;
        }
        fpr[k] = N ? (double)fp / N : NAN;
        tpr[k++] = P ? (double)tp / P : NAN;
        i = j;
    }
    free(v);
    return k;
}

long sf_pr_curve(const double *s, const unsigned char *pos, long n, double *recall,
                 double *precision) {
    long P;
    scored *v = sorted(s, pos, n, &P);
    long tp = 0, k = 0;
    for (long i = 0; i < n;) {
        long j = i;
        for (; j < n && v[j].s == v[i].s; j++) tp += v[j].pos;
        recall[k] = P ? (double)tp / P : NAN;
        precision[k++] = (double)tp / (double)j;
        i = j;
    }
    free(v);
    return k;
}

double sf_roc_auc(const double *s, const unsigned char *pos, long n) {
    long P;
    scored *v = sorted(s, pos, n, &P);
    long N = n - P;
    double area = 0, neg_above = 0;
    /* each positive beats the negatives below it and ties half of those at its score */
    for (long i = 0; i < n;) {
        long j = i, gp = 0, gn = 0;
        for (; j < n && v[j].s == v[i].s; j++) {
            gp += v[j].pos;
            gn += !v[j].pos;
        }
        area += (double)gp * ((double)N - neg_above - gn) + 0.5 * (double)gp * gn;
        neg_above += (double)gn;
        i = j;
    }
    free(v);
    return P && N ? area / ((double)P * N) : NAN;
}

double sf_average_precision(const double *s, const unsigned char *pos, long n) {
    long P;
    scored *v = sorted(s, pos, n, &P);
    double ap = 0, prev_recall = 0;
    long tp = 0;
    for (long i = 0; i < n;) {
        long j = i;
        for (; j < n && v[j].s == v[i].s; j++) tp += v[j].pos;
        double recall = P ? (double)tp / P : 0, precision = (double)tp / (double)j;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    free(v);
    return P ? ap : NAN;
}

static double clipped_nll(float p) {
    double q = p;
    if (q < 1e-15) q = 1e-15;
    if (q > 1 - 1e-15) q = 1 - 1e-15;
    return -log(q);
}

void sf_class_metrics_compute(const float *p, const int *y, long n, int K, sf_class_metrics *out) {
    long *count = sf_calloc((size_t)K, sizeof(long)), *right = sf_calloc((size_t)K, sizeof(long));
    double *nll = sf_calloc((size_t)K, sizeof(double));
    long correct = 0;
    double ll = 0;
    for (long i = 0; i < n; i++) {
        const float *pi = p + (size_t)i * K;
        int c = y[i], hit = sf_argmax(pi, K) == c;
        double e = clipped_nll(pi[c]);
        count[c]++;
        right[c] += hit;
        correct += hit;
        ll += e;
        nll[c] += e;
    }
    int present = 0;
    double recall = 0, cb = 0;
    for (int k = 0; k < K; k++)
        if (count[k]) {
            present++;
            recall += (double)right[k] / count[k];
            cb += nll[k] / count[k];
        }
    out->accuracy = n ? (double)correct / n : NAN;
    out->log_loss = n ? ll / n : NAN;
    out->balanced_accuracy = present ? recall / present : NAN;
    out->cb_log_loss = present ? cb / present : NAN;
    /* one-vs-rest per class, then pooled */
    double *s = sf_malloc((size_t)(n ? n : 1) * K * sizeof(double));
    unsigned char *pos = sf_malloc((size_t)(n ? n : 1) * K);
    double auc_sum = 0, ap_sum = 0;
    int auc_n = 0, ap_n = 0;
    for (int k = 0; k < K; k++) {
        for (long i = 0; i < n; i++) {
            s[i] = p[(size_t)i * K + k];
            pos[i] = y[i] == k;
        }
        double auc = sf_roc_auc(s, pos, n), ap = sf_average_precision(s, pos, n);
        if (!isnan(auc)) auc_sum += auc, auc_n++;
        if (!isnan(ap)) ap_sum += ap, ap_n++;
    }
    out->roc_auc_macro = auc_n ? auc_sum / auc_n : NAN;
    out->pr_auc_macro = ap_n ? ap_sum / ap_n : NAN;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            s[(size_t)i * K + k] = p[(size_t)i * K + k];
            pos[(size_t)i * K + k] = y[i] == k;
        }
    out->roc_auc_micro = sf_roc_auc(s, pos, n * K);
    out->pr_auc_micro = sf_average_precision(s, pos, n * K);
    free(s);
    free(pos);
    free(count);
    free(right);
    free(nll);
}
