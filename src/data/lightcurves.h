/* Irregular multi-band light curves in long format: one observation per row,
 *   object_id,time,band,mag,magerr      (or ...,flux,flux_err)
 * plus a labels table (one row per object: id and class). Plain or gzip files.
 *
 * Columns are found by header name (case-insensitive), in any order, extra columns ignored:
 *   object id : object_id | id | objid
 *   time      : time | mjd
 *   band      : band | filter | passband
 *   value     : mag (magnitudes) or flux (fluxes); a file with both is refused
 *   error     : magerr | mag_err | err (with mag); flux_err | flux_error | fluxerr | err (with flux)
 * Labels table: the id column is object_id | id | objid | num, the class column
 * label | class | type | target (the first found in that order); other columns (for
 * example the period in rrlyrae_periods.csv) are ignored.
 *
 * Magnitudes are converted to fluxes with f = 10^(-0.4 (m - ZP)), default ZP = 27.5 (the
 * SNANA/PLAsTiCC FLUXCAL convention of the data t2 was trained on; any ZP only rescales all
 * fluxes by one constant), and errors propagated to first order: sigma_f = f * 0.4 ln(10) *
 * sigma_m.
 *
 * Handling of awkward rows (every error names the file and line):
 *   - a row with the wrong number of fields, an empty or non-numeric time/value/error, NaN or
 *     infinity, an error <= 0, or a band not in the band list: error;
 *   - magnitude rows whose mag or magerr is >= the sentinel (default 99; SDSS writes 99.999
 *     for "no measurement"): dropped and counted (n_dropped_sentinel), not an error;
 *   - objects whose observations are not contiguous in the file are merged (rows keep file
 *     order within an object); each object's rows are then sorted by time (stable);
 *   - an object with fewer than min_obs observations (default 2: a GP over time needs a time
 *     span): error naming the object, unless drop_short is set (then dropped and counted);
 *   - an object without a label, a label for an object not in the data, a duplicate label
 *     row: errors naming the object.
 */
#ifndef SF_DATA_LIGHTCURVES_H
#define SF_DATA_LIGHTCURVES_H

#define SF_LC_MAX_BANDS 16

typedef struct {
    char *id;        /* object id as written */
    char *label;     /* class label (NULL when loaded without labels) */
    int n;           /* observations (sorted by time) */
    double *time;    /* [n] days (MJD) */
    double *flux;    /* [n] */
    double *flux_err;/* [n] > 0 */
    int *band;       /* [n] index into the band list */
} sf_lightcurve;

typedef struct {
    int n_bands;
    char *band_names[SF_LC_MAX_BANDS];
    double band_wavelength[SF_LC_MAX_BANDS]; /* Angstrom */
} sf_bandset;

typedef struct {
    const char *bands;   /* "name:wavelength,..." (Angstrom); NULL = SDSS ugriz (see below) */
    double zero_point;   /* magnitude zero point for flux conversion; 0 = 27.5 */
    double sentinel;     /* mag/magerr >= this = missing measurement; 0 = 99 */
    int min_obs;         /* 0 = 2 */
    int drop_short;      /* drop objects with < min_obs observations instead of failing */
} sf_lc_opts;

typedef struct {
    sf_bandset bands;
    int n_objects;
    sf_lightcurve *obj;
    int is_mag;              /* 1 when the input had magnitudes */
    long n_rows;             /* data rows read */
    long n_dropped_sentinel; /* rows dropped as missing measurements */
    int n_dropped_short;     /* objects dropped (drop_short) */
    int n_classes;           /* distinct labels, sorted (strcmp); 0 without labels */
    char **classes;
} sf_lc_set;

/* SDSS ugriz effective wavelengths in Angstrom, from the SDSS filter response curves
 * (J. Gunn, June 2001, sdss_jun2001_[ugriz]_atm.dat, header: "effective wavelengths"):
 * u 3551, g 4686, r 6166, i 7480, z 8932. */
#define SF_LC_SDSS_BANDS "u:3551,g:4686,r:6166,i:7480,z:8932"

void sf_lc_opts_init(sf_lc_opts *o);

/* Parse "name:wavelength,..." into a band set. SF_OK / SF_ERR (message names the entry). */
int sf_bandset_parse(const char *spec, sf_bandset *b);
void sf_bandset_free(sf_bandset *b);

/* Load observations (and labels when labels_path is not NULL). On SF_ERR *out is zeroed. */
int sf_lc_load(const char *obs_path, const char *labels_path, const sf_lc_opts *o,
               sf_lc_set *out);
void sf_lc_free(sf_lc_set *s);

/* Index of the object with this id, or -1. */
int sf_lc_find(const sf_lc_set *s, const char *id);
/* Index of a class label in s->classes, or -1. */
int sf_lc_class_index(const sf_lc_set *s, const char *label);

#endif
