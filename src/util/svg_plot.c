#include "util/svg_plot.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

/* ---- atomic output: temp file in the same directory, fsync, rename ---- */

typedef struct {
    FILE *fp;
    char *tmp;
    const char *path;
} atomic_out;

static int atomic_open(atomic_out *a, const char *path) {
    size_t n = strlen(path);
    a->path = path;
    a->fp = NULL;
    a->tmp = sf_malloc(n + 16);
    snprintf(a->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        return sf_errorf("cannot write '%s': %s", path, strerror(e));
    }
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) {
        /* not fatal: mkstemp's 0600 is merely stricter than an ordinary file's mode */
    }
    a->fp = fdopen(fd, "w");
    if (!a->fp) {
        int e = errno;
        close(fd);
        unlink(a->tmp);
        free(a->tmp);
        a->tmp = NULL;
        return sf_errorf("cannot write '%s': %s", path, strerror(e));
    }
    return SF_OK;
}

static void atomic_abort(atomic_out *a) {
    if (a->fp) fclose(a->fp);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    a->fp = NULL;
    a->tmp = NULL;
}

static int atomic_commit(atomic_out *a) {
    int e = 0;
    if (fflush(a->fp) != 0 || ferror(a->fp)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(a->fp)) != 0) e = errno;
    int c = fclose(a->fp);
    a->fp = NULL;
    if (!e && c != 0) e = errno;
    if (!e && rename(a->tmp, a->path) != 0) e = errno;
    if (e) {
        atomic_abort(a);
        return sf_errorf("cannot write '%s': %s", a->path, strerror(e));
    }
    free(a->tmp);
    a->tmp = NULL;
    return SF_OK;
}

/* ---- text ---- */

/* Length of a valid UTF-8 sequence starting at s, or 0 if invalid. */
static int utf8_len(const unsigned char *s) {
    int n;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogates */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
    return n;
}

/* XML-escaped text; control characters and invalid UTF-8 become '?' (they are not allowed
 * in XML 1.0, and a plot must stay well-formed whatever the column names contain). */
static void xml_text(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned c = *p;
        switch (c) {
        case '&': fputs("&amp;", f); p++; continue;
        case '<': fputs("&lt;", f); p++; continue;
        case '>': fputs("&gt;", f); p++; continue;
        case '"': fputs("&quot;", f); p++; continue;
        case '\'': fputs("&apos;", f); p++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7F) {
            fputc(c == '\t' ? ' ' : '?', f);
            p++;
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) {
            fputc('?', f);
            p++;
        } else {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        }
    }
}

/* Approximate rendered width in pixels of text at font-size 11-12 (sans-serif). */
/* The opening of a W x H picture on white, with an optional centred title at baseline title_y
 * (the confusion matrix and the heat maps). */
static void svg_begin(FILE *f, double W, double H, int font_size, const char *title, int title_y) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"%d\">\n",
            W, H, W, H, font_size);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (title) {
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\">", W / 2, title_y);
        xml_text(f, title);
        fprintf(f, "</text>\n");
    }
}

static double text_w(const char *s) {
    double n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if ((*p & 0xC0) != 0x80) n += 1; /* count code points, not bytes */
    return n * 6.8;
}

/* ---- ticks ---- */

typedef struct {
    double lo, hi, step; /* axis range and tick step; ticks at lo, lo+step, ... <= hi */
    int n;               /* number of ticks */
    int decimals;        /* for %.*f, or -1 to use %.*g with `prec` digits */
    int prec;
} axis;

static const double MAX_ABS = 1e300; /* beyond this a value is treated like inf (skipped) */

static int usable(double v) { return isfinite(v) && fabs(v) <= MAX_ABS; }

/* Widen an empty/degenerate range so that hi > lo. */
static void pad_range(double *lo, double *hi) {
    if (!(*lo <= *hi)) { /* no data */
        *lo = 0;
        *hi = 1;
        return;
    }
    if (*hi > *lo && isfinite(*hi - *lo)) return;
    if (*hi > *lo) { /* range overflows: shrink to what we can represent */
        *lo = *lo < -1e307 ? -1e307 : *lo;
        *hi = *hi > 1e307 ? 1e307 : *hi;
        return;
    }
    double d = fabs(*lo) * 0.1;
    if (!(d > 1e-300)) d = 1;
    *lo -= d;
    *hi += d;
}

/* Nice tick step ~ range/target from {1, 2, 2.5, 5} x 10^k; snap the range outward to whole
 * steps if `snap`. integer_only: step >= 1 and integral. */
static axis nice_axis(double lo, double hi, int target, int integer_only, int snap) {
    axis a;
    double raw = (hi - lo) / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag, nice;
    if (f <= 1)
        nice = 1;
    else if (f <= 2)
        nice = 2;
    else if (f <= 2.5 && !integer_only)
        nice = 2.5;
    else if (f <= 5)
        nice = 5;
    else
        nice = 10;
    double step = nice * mag;
    if (integer_only && step < 1) step = 1;
    if (!(step > 0) || !isfinite(step)) step = (hi - lo) > 0 ? (hi - lo) : 1;
    a.step = step;
    if (snap) {
        a.lo = floor(lo / step + 1e-9) * step;
        a.hi = ceil(hi / step - 1e-9) * step;
        if (!(a.hi > a.lo)) a.hi = a.lo + step;
    } else {
        a.lo = lo;
        a.hi = hi;
    }
    double t0 = ceil(a.lo / step - 1e-9) * step, t1 = floor(a.hi / step + 1e-9) * step;
    double nt = floor((t1 - t0) / step + 0.5) + 1;
    a.n = nt >= 1 && nt <= 100 ? (int)nt : 0;
    /* decimals needed to show the step exactly (%g for huge or tiny values) */
    double big = fmax(fabs(a.lo), fabs(a.hi));
    a.prec = 4;
    if (big >= 1e7 || step < 1e-6) {
        a.decimals = -1;
        /* enough digits that neighbouring ticks differ (e.g. 1.0000002e7 vs 1.0000004e7) */
        double p = big > 0 ? ceil(log10(big / step)) + 1 : 2;
        a.prec = p < 2 ? 2 : p > 15 ? 15 : (int)p;
    } else {
        int d = 0;
        while (d < 8) {
            double m = step * pow(10, d);
            if (fabs(m - floor(m + 0.5)) <= 1e-6 * m) break;
            d++;
        }
        a.decimals = d;
    }
    return a;
}

static double first_tick(const axis *a) { return ceil(a->lo / a->step - 1e-9) * a->step; }

static void tick_label(char *buf, size_t n, const axis *a, double v) {
    if (fabs(v) < a->step * 1e-9) v = 0; /* no "-0" */
    if (a->decimals < 0)
        snprintf(buf, n, "%.*g", a->prec, v);
    else
        snprintf(buf, n, "%.*f", a->decimals, v);
}

/* ---- plot ---- */

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_PALETTE ((int)(sizeof PALETTE / sizeof PALETTE[0]))

typedef struct {
    double px0, px1, py0, py1; /* plot area in pixels (py0 top) */
    double xlo, xhi, ylo, yhi; /* data range */
} frame;

static double map_x(const frame *f, double x) {
    return f->px0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->px1 - f->px0);
}
static double map_y(const frame *f, double y) {
    return f->py1 - (y - f->ylo) / (f->yhi - f->ylo) * (f->py1 - f->py0);
}

static double sx(const sf_series *s, int i) { return s->x ? s->x[i] : (double)i; }

void sf_plot_opts_init(sf_plot_opts *o) {
    memset(o, 0, sizeof *o);
    o->marker_x = NAN;
}

static void write_svg(FILE *f, const sf_plot_opts *o, const sf_series *s, int ns) {
    int W = o->width > 0 ? o->width : 800, H = o->height > 0 ? o->height : 450;
    if (W < 200) W = 200;
    if (H < 150) H = 150;

    /* data range */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int all_int_x = 1;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = sx(&s[k], i), y = s[k].y[i];
            if (!usable(x) || !usable(y)) continue;
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
            if (x != floor(x)) all_int_x = 0;
        }
    int have_marker = usable(o->marker_x);
    if (have_marker) { /* keep the marker visible (it does not affect integer ticks) */
        xlo = fmin(xlo, o->marker_x);
        xhi = fmax(xhi, o->marker_x);
    }
    int str_x = o->xtick_labels && o->n_xtick_labels > 0;
    pad_range(&xlo, &xhi);
    pad_range(&ylo, &yhi);

    axis ya = nice_axis(ylo, yhi, 6, 0, 1);
    axis xa = nice_axis(xlo, xhi, 8, all_int_x || str_x, !str_x);

    /* margins from the label sizes */
    char buf[64];
    double ytw = 0;
    for (int i = 0; i < ya.n; i++) {
        tick_label(buf, sizeof buf, &ya, ya.lo + i * ya.step);
        ytw = fmax(ytw, text_w(buf));
    }
    double max_xlab = 0;
    if (str_x)
        for (int i = 0; i < o->n_xtick_labels; i++) max_xlab = fmax(max_xlab, text_w(o->xtick_labels[i]));
    double left = 14 + ytw + (o->ylabel && *o->ylabel ? 22 : 0);
    double right = fmax(24, str_x ? max_xlab / 2 + 6 : 24);
    if (str_x) left = fmax(left, max_xlab / 2 + 6); /* room for a label centred on the edge */
    double top = o->title && *o->title ? 42 : 18;
    double bottom = 32 + (o->xlabel && *o->xlabel ? 22 : 0);
    if (left > W / 3.0) left = W / 3.0;
    if (right > W / 4.0) right = W / 4.0;

    frame fr = {left, W - right, top, H - bottom, xa.lo, xa.hi, ya.lo, ya.hi};

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
            "font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    if (o->title && *o->title) {
        fprintf(f, "<text x=\"%.2f\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" "
                   "font-weight=\"bold\">", W / 2.0);
        xml_text(f, o->title);
        fputs("</text>\n", f);
    }

    /* grid + ticks */
    fputs("<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n", f);
    for (int i = 0; i < ya.n; i++) {
        double py = map_y(&fr, ya.lo + i * ya.step);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr.px0, py, fr.px1, py);
    }
    /* x ticks: positions first */
    double xt[128];
    int nxt = 0;
    if (str_x) {
        double per_unit = (fr.px1 - fr.px0) / (fr.xhi - fr.xlo);
        /* label every k-th index, k the smallest "round" spacing that fits (the table
         * favours multiples of 12 and 24 for hourly data) */
        static const int KS[] = {1,   2,   3,   4,   5,   6,   8,   10,  12,  16,  20,  24,
                                 30,  40,  48,  50,  60,  72,  96,  100, 120, 144, 168, 192,
                                 200, 240, 288, 300, 336, 400, 480, 500};
        double need = (max_xlab + 14) / per_unit;
        int k = 0;
        for (size_t j = 0; j < sizeof KS / sizeof KS[0] && !k; j++)
            if (KS[j] >= need) k = KS[j];
        if (!k) k = need < 1e9 ? (int)ceil(need / 100) * 100 : 1000000000;
        double lo_i = ceil(fr.xlo), hi_i = floor(fr.xhi);
        if (lo_i < 0) lo_i = 0;
        if (hi_i > o->n_xtick_labels - 1) hi_i = o->n_xtick_labels - 1;
        /* never more than ~100 labels, whatever the estimate says */
        if (hi_i >= lo_i && (hi_i - lo_i) / k > 100) k = (int)ceil((hi_i - lo_i) / 100);
        double start = ceil(lo_i / k) * k;
        for (double v = start; v <= hi_i && nxt < 128; v += k) {
            double px = map_x(&fr, v), hw = text_w(o->xtick_labels[(int)v]) / 2;
            if (px - hw >= 0 && px + hw <= W) xt[nxt++] = v; /* drop labels that would be cut */
        }
    } else {
        double t0 = first_tick(&xa);
        for (int i = 0; i < xa.n && nxt < 128; i++) xt[nxt++] = t0 + i * xa.step;
    }
    for (int i = 0; i < nxt; i++) {
        double px = map_x(&fr, xt[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px, fr.py0, px, fr.py1);
    }
    fputs("</g>\n", f);

    /* axes frame and tick labels */
    fprintf(f, "<g class=\"axes\" stroke=\"#333333\" stroke-width=\"1\" fill=\"none\">\n"
               "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n",
            fr.px0, fr.py0, fr.px1 - fr.px0, fr.py1 - fr.py0);
    for (int i = 0; i < ya.n; i++) {
        double py = map_y(&fr, ya.lo + i * ya.step);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr.px0 - 4, py, fr.px0, py);
    }
    for (int i = 0; i < nxt; i++) {
        double px = map_x(&fr, xt[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px, fr.py1, px, fr.py1 + 4);
    }
    fputs("</g>\n", f);

    fputs("<g class=\"ticklabels\" fill=\"#333333\" font-size=\"11\">\n", f);
    for (int i = 0; i < ya.n; i++) {
        double v = ya.lo + i * ya.step;
        tick_label(buf, sizeof buf, &ya, v);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", fr.px0 - 7,
                map_y(&fr, v) + 4, buf);
    }
    for (int i = 0; i < nxt; i++) {
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", map_x(&fr, xt[i]), fr.py1 + 18);
        if (str_x) {
            xml_text(f, o->xtick_labels[(int)xt[i]]);
        } else {
            tick_label(buf, sizeof buf, &xa, xt[i]);
            fputs(buf, f);
        }
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);

    if (o->xlabel && *o->xlabel) {
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">",
                (fr.px0 + fr.px1) / 2, H - 10.0);
        xml_text(f, o->xlabel);
        fputs("</text>\n", f);
    }
    if (o->ylabel && *o->ylabel) {
        fprintf(f, "<text transform=\"translate(16,%.2f) rotate(-90)\" text-anchor=\"middle\" "
                   "font-size=\"13\">", (fr.py0 + fr.py1) / 2);
        xml_text(f, o->ylabel);
        fputs("</text>\n", f);
    }

    /* marker */
    if (have_marker) {
        double px = map_x(&fr, o->marker_x);
        fprintf(f, "<g class=\"marker\">\n<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                   "stroke=\"#555555\" stroke-width=\"1.2\" stroke-dasharray=\"5,4\"/>\n",
                px, fr.py0, px, fr.py1);
        if (o->marker_label && *o->marker_label) {
            int at_right = px + 8 + text_w(o->marker_label) > fr.px1;
            fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" fill=\"#555555\" "
                       "font-size=\"11\">", at_right ? px - 5 : px + 5, fr.py1 - 6,
                    at_right ? "end" : "start");
            xml_text(f, o->marker_label);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }

    /* series */
    fputs("<g class=\"series\" fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\" "
          "stroke-linecap=\"round\">\n", f);
    for (int k = 0; k < ns; k++) {
        const sf_series *sr = &s[k];
        sf_series_style st = o->styles ? o->styles[k] : (sf_series_style){0, SF_SERIES_LINE};
        const char *col = st.color > 0 ? PALETTE[(st.color - 1) % N_PALETTE] : PALETTE[k % N_PALETTE];
        int dots = sr->n <= 40 || st.style == SF_SERIES_DOTS;
        if (st.style == SF_SERIES_DASHED)
            fprintf(f, "<path stroke=\"%s\" stroke-width=\"1\" stroke-dasharray=\"4,3\" d=\"", col);
        else
            fprintf(f, "<path stroke=\"%s\" d=\"", col);
        int in_run = 0, any = 0;
        for (int i = 0; i < sr->n; i++) {
            double x = sx(sr, i), y = sr->y[i];
            if (!usable(x) || !usable(y) || st.style == SF_SERIES_DOTS) {
                in_run = 0;
                continue;
            }
            fprintf(f, "%s%c%.2f %.2f", any ? " " : "", in_run ? 'L' : 'M', map_x(&fr, x), map_y(&fr, y));
            in_run = 1;
            any = 1;
        }
        fputs("\"/>\n", f);
        /* dots: every point of short series, isolated points of long ones */
        for (int i = 0; i < sr->n; i++) {
            double x = sx(sr, i), y = sr->y[i];
            if (!usable(x) || !usable(y)) continue;
            int prev = i > 0 && usable(sx(sr, i - 1)) && usable(sr->y[i - 1]);
            int next = i + 1 < sr->n && usable(sx(sr, i + 1)) && usable(sr->y[i + 1]);
            if (dots || (!prev && !next))
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%s\" fill=\"%s\" stroke=\"none\"/>\n",
                        map_x(&fr, x), map_y(&fr, y), st.style == SF_SERIES_DOTS ? "1.8" : "2.6", col);
        }
    }
    fputs("</g>\n", f);

    /* legend: in the plot corner that covers the fewest points */
    int n_leg = 0;
    double name_w = 0;
    for (int k = 0; k < ns; k++)
        if (s[k].name && *s[k].name) {
            n_leg++;
            name_w = fmax(name_w, text_w(s[k].name));
        }
    if (n_leg > 0) {
        double lw = 36 + name_w + 10, lh = 10 + 18.0 * n_leg;
        double cx[4] = {fr.px1 - lw - 8, fr.px0 + 8, fr.px1 - lw - 8, fr.px0 + 8};
        double cy[4] = {fr.py0 + 8, fr.py0 + 8, fr.py1 - lh - 8, fr.py1 - lh - 8};
        long cnt[4] = {0, 0, 0, 0};
        for (int k = 0; k < ns; k++)
            for (int i = 0; i < s[k].n; i++) {
                double x = sx(&s[k], i), y = s[k].y[i];
                if (!usable(x) || !usable(y)) continue;
                double px = map_x(&fr, x), py = map_y(&fr, y);
                for (int c = 0; c < 4; c++)
                    if (px >= cx[c] - 4 && px <= cx[c] + lw + 4 && py >= cy[c] - 4 && py <= cy[c] + lh + 4)
                        cnt[c]++;
            }
        int best = 0;
        for (int c = 1; c < 4; c++)
            if (cnt[c] < cnt[best]) best = c;
        double lx = cx[best], ly = cy[best];
        fprintf(f, "<g class=\"legend\" font-size=\"12\">\n<rect x=\"%.2f\" y=\"%.2f\" "
                   "width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" fill-opacity=\"0.85\" "
                   "stroke=\"#cccccc\"/>\n", lx, ly, lw, lh);
        int row = 0;
        for (int k = 0; k < ns; k++) {
            if (!s[k].name || !*s[k].name) continue;
            double ry = ly + 14 + 18.0 * row++;
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                       "stroke-width=\"2.5\"/>\n", lx + 8, ry, lx + 28, ry,
                    o->styles && o->styles[k].color > 0 ? PALETTE[(o->styles[k].color - 1) % N_PALETTE]
                                                        : PALETTE[k % N_PALETTE]);
            fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" fill=\"#222222\">", lx + 34, ry + 4);
            xml_text(f, s[k].name);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
}

int sf_svg_plot(const char *path, const sf_plot_opts *o, const sf_series *s, int n_series) {
    SF_ASSERT(path && o && (n_series == 0 || s));
    for (int k = 0; k < n_series; k++) SF_ASSERT(s[k].n <= 0 || s[k].y);
    /* copy the series so that negative lengths become 0 once, here */
    sf_series *cs = sf_malloc(sizeof *cs * (size_t)(n_series > 0 ? n_series : 1));
    for (int k = 0; k < n_series; k++) {
        cs[k] = s[k];
        if (cs[k].n < 0) cs[k].n = 0;
    }
    atomic_out a;
    if (atomic_open(&a, path) != SF_OK) {
        free(cs);
        return SF_ERR;
    }
    write_svg(a.fp, o, cs, n_series > 0 ? n_series : 0);
    free(cs);
    return atomic_commit(&a);
}

int sf_svg_line_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                     const sf_series *s, int n_series, double marker_x, const char *marker_label) {
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.title = title;
    o.xlabel = xlabel;
    o.ylabel = ylabel;
    o.marker_x = marker_x;
    o.marker_label = marker_label;
    return sf_svg_plot(path, &o, s, n_series);
}

int sf_svg_loss_plot(const char *path, const char *title, const double *train_loss,
                     const double *val_loss, int n_epochs, int best_epoch) {
    if (n_epochs < 0) n_epochs = 0;
    double *x = sf_malloc(sizeof *x * (size_t)(n_epochs ? n_epochs : 1));
    for (int i = 0; i < n_epochs; i++) x[i] = i + 1;
    sf_series s[2] = {{"train", x, train_loss, train_loss ? n_epochs : 0},
                      {"val", x, val_loss, val_loss ? n_epochs : 0}};
    char lab[48];
    snprintf(lab, sizeof lab, "best epoch %d", best_epoch);
    int rc = sf_svg_line_plot(path, title ? title : "Loss", "epoch", "loss", s, val_loss ? 2 : 1,
                              best_epoch >= 1 ? (double)best_epoch : NAN, lab);
    free(x);
    return rc;
}

int sf_svg_forecast_plot(const char *path, const char *title, const char *ylabel,
                         const double *history, int n_hist, const double *forecast, int n_fc,
                         const double *actual, const char *const *xtick_labels) {
    if (n_hist < 0) n_hist = 0;
    if (n_fc < 0) n_fc = 0;
    int n = n_hist + n_fc;
    double *x = sf_malloc(sizeof *x * (size_t)(n + 1));
    for (int i = 0; i < n; i++) x[i] = i;
    /* the forecast line starts at the last history point so the two connect */
    int join = n_hist > 0 && n_fc > 0;
    double *fx = sf_malloc(sizeof *fx * (size_t)(n_fc + 1));
    double *fy = sf_malloc(sizeof *fy * (size_t)(n_fc + 1));
    int nf = 0;
    if (join) {
        fx[nf] = n_hist - 1;
        fy[nf++] = history[n_hist - 1];
    }
    for (int i = 0; i < n_fc; i++) {
        fx[nf] = n_hist + i;
        fy[nf++] = forecast[i];
    }
    sf_series s[3] = {{"history", x, history, n_hist}, {"forecast", fx, fy, nf},
                      {"actual", x + n_hist, actual, actual ? n_fc : 0}};
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.title = title ? title : "Forecast";
    o.xlabel = xtick_labels ? "time" : "step";
    o.ylabel = ylabel;
    o.marker_x = n_fc > 0 ? (double)n_hist - (join ? 0.5 : 0) : NAN;
    o.marker_label = "forecast start";
    o.xtick_labels = xtick_labels;
    o.n_xtick_labels = xtick_labels ? n : 0;
    int rc = sf_svg_plot(path, &o, s, actual ? 3 : 2);
    free(x);
    free(fx);
    free(fy);
    return rc;
}

/* ---- count matrix (confusion matrix) ---- */

int sf_svg_matrix_plot(const char *path, const char *title, const long *counts, int K,
                       const char *const *names) {
    double label_w = 16, cell = K <= 10 ? 48 : K <= 30 ? 24 : 12;
    for (int k = 0; k < K; k++)
        if (text_w(names[k]) > label_w) label_w = text_w(names[k]);
    if (label_w > 200) label_w = 200;
    double left = label_w + 40, top = 70 + label_w, W = left + K * cell + 20, H = top + K * cell + 40;
    if (title && text_w(title) * 14 / 12 + 40 > W) W = text_w(title) * 14 / 12 + 40;
    atomic_out a;
    if (atomic_open(&a, path)) return SF_ERR;
    FILE *f = a.fp;
    svg_begin(f, W, H, 12, title, 24);
    fprintf(f, "<text x=\"%.1f\" y=\"44\" text-anchor=\"middle\">predicted</text>\n",
            left + K * cell / 2);
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">"
               "true</text>\n", top + K * cell / 2, top + K * cell / 2);
    for (int k = 0; k < K; k++) {
        double c = left + (k + 0.5) * cell, r = top + (k + 0.5) * cell;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\" transform=\"rotate(-90 %.1f "
                   "%.1f)\">", c + 4, top - 6, c + 4, top - 6);
        xml_text(f, names[k]);
        fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, r + 4);
        xml_text(f, names[k]);
        fprintf(f, "</text>\n");
    }
    for (int i = 0; i < K; i++) {
        long row = 0;
        for (int j = 0; j < K; j++) row += counts[(size_t)i * K + j];
        for (int j = 0; j < K; j++) {
            long v = counts[(size_t)i * K + j];
            double share = row ? (double)v / (double)row : 0;
            int R = (int)(255 - share * (255 - 31)), G = (int)(255 - share * (255 - 119)),
                B = (int)(255 - share * (255 - 180));
            double x = left + j * cell, y = top + i * cell;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"rgb(%d,%d,%d)\" stroke=\"#999\"/>\n",
                    x, y, cell, cell, R, G, B);
            if (cell >= 24)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\">%ld"
                           "</text>\n",
                        x + cell / 2, y + cell / 2 + 4, share > 0.6 ? "white" : "black", v);
        }
    }
    fprintf(f, "</svg>\n");
    return atomic_commit(&a);
}

int sf_svg_heatmaps(const char *path, const char *title, const float *maps, int n_maps, int T,
                    int n, const char *const *panel_titles, int cols) {
    if (n < 1 || n > T || n_maps < 1) return sf_errorf("%s: nothing to draw (%d maps of %d of %d steps)", path, n_maps, n, T);
    if (cols < 1) cols = 1;
    if (cols > n_maps) cols = n_maps;
    int rows = (n_maps + cols - 1) / cols;
    const double side = 160, gap = 34, left = 20, top = 56;
    const double cell = side / n, W = left + cols * (side + gap), H = top + rows * (side + gap) + 10;
    atomic_out a;
    if (atomic_open(&a, path)) return SF_ERR;
    FILE *f = a.fp;
    svg_begin(f, W, H, 11, title, 20);
    fprintf(f, "<text x=\"%.1f\" y=\"38\" text-anchor=\"middle\">rows: query step, columns: key "
               "step (0..%d); shade: weight / the panel's largest</text>\n", W / 2, n - 1);
    for (int k = 0; k < n_maps; k++) {
        const float *m = maps + (size_t)k * T * T;
        double x0 = left + (k % cols) * (side + gap), y0 = top + (k / cols) * (side + gap) + 14;
        double mx = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (isfinite(m[(size_t)i * T + j]) && m[(size_t)i * T + j] > mx) mx = m[(size_t)i * T + j];
        char buf[64];
        snprintf(buf, sizeof buf, "%d", k);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x0 + side / 2, y0 - 4);
        xml_text(f, panel_titles && panel_titles[k] ? panel_titles[k] : buf);
        fprintf(f, " (max %.3g)</text>\n", mx);
        fprintf(f, "<g shape-rendering=\"crispEdges\">\n");
        for (int i = 0; i < n; i++) {
            int j = 0;
            while (j < n) {
                double v = m[(size_t)i * T + j];
                int q = mx > 0 && isfinite(v) ? (int)lround(8.0 * v / mx) : 0;
                int e = j + 1;
                while (e < n) {
                    double w = m[(size_t)i * T + e];
                    int qe = mx > 0 && isfinite(w) ? (int)lround(8.0 * w / mx) : 0;
                    if (qe != q) break;
                    e++;
                }
                if (q > 0) {
                    double s = q / 8.0;
                    int R = (int)(255 - s * (255 - 8)), G = (int)(255 - s * (255 - 48)),
                        B = (int)(255 - s * (255 - 107));
                    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                               "fill=\"rgb(%d,%d,%d)\"/>\n",
                            x0 + j * cell, y0 + i * cell, (e - j) * cell, cell, R, G, B);
                }
                j = e;
            }
        }
        fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                   "stroke=\"#999\"/>\n", x0, y0, side, side);
    }
    fprintf(f, "</svg>\n");
    return atomic_commit(&a);
}
