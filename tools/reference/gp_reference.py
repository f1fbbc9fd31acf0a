#!/usr/bin/python3
"""Independent float64 reference for seqformer's light-curve GP (src/data/gp.c).

Re-implements, with NumPy/SciPy only, what astronet's preprocess.py::fit_2d_gp computes with
george: kernel c * Matern32(r2), r2 = dt^2/M_t + dw^2/M_w (george's axis-aligned metric
divides by the metric entries, M = squared length-scales), data covariance + diag(yerr^2 +
1.25e-12), zero mean; parameters p = (log c, log M_t), log M_w = log(6000^2) frozen; the
starting point from the max-S/N flux; L-BFGS-B inside astronet's bounds.

Writes tests/fixtures/gp_rrlyrae.json for tests/test_gp.c: for a few real RR Lyrae stars, their
observations (as fluxes), log-likelihood and gradient at two parameter points, the optimum
found by SciPy's L-BFGS-B (tight tolerances; and with astronet's tol=1e-6 for information),
and the posterior mean/std on the 100-step x 5-band grid at that optimum.

usage: /usr/bin/python3 tools/reference/gp_reference.py [DATA.csv.gz] [OUT.json]
"""
import csv
import gzip
import json
import math
import sys

import numpy as np

try:
    import scipy.linalg as sla
    import scipy.optimize as sopt
except ImportError:  # pragma: no cover
    sys.exit("gp_reference.py needs SciPy: apt-get install python3-scipy")

BANDS = {"u": 3551.0, "g": 4686.0, "r": 6166.0, "i": 7480.0, "z": 8932.0}
BAND_ORDER = ["u", "g", "r", "i", "z"]
ZP = 27.5
TINY = 1.25e-12
OBJECTS = ["4099", "13350", "1013184"]  # ab, ab, and the first object of the file
STEPS = 100


def load(path, ids):
    rows = {i: [] for i in ids}
    with gzip.open(path, "rt") as f:
        for k, r in enumerate(csv.DictReader(f)):
            if r["object_id"] in rows:
                m, e = float(r["mag"]), float(r["magerr"])
                if m >= 99 or e >= 99:
                    continue  # SDSS "no measurement"
                rows[r["object_id"]].append((float(r["time"]), k, r["band"], m, e))
    out = {}
    for i, rr in rows.items():
        rr.sort(key=lambda x: (x[0], x[1]))
        t = np.array([x[0] for x in rr])
        mag = np.array([x[3] for x in rr])
        merr = np.array([x[4] for x in rr])
        flux = 10.0 ** (-0.4 * (mag - ZP))
        ferr = flux * 0.4 * math.log(10.0) * merr
        w = np.array([BANDS[x[2]] for x in rr])
        out[i] = (t - t[0], w, flux, ferr)
    return out


def matern32(r2):
    s = np.sqrt(3.0 * r2)
    return (1.0 + s) * np.exp(-s)


def kern(p, log_mw, t1, w1, t2, w2):
    r2 = (t1[:, None] - t2[None, :]) ** 2 / math.exp(p[1]) + (w1[:, None] - w2[None, :]) ** 2 / math.exp(log_mw)
    return math.exp(p[0]) * matern32(r2)


def loglik(p, log_mw, t, w, y, e):
    K = kern(p, log_mw, t, w, t, w) + np.diag(e**2 + TINY)
    cf = sla.cho_factor(K, lower=True)
    alpha = sla.cho_solve(cf, y)
    logdet = 2.0 * np.sum(np.log(np.diag(cf[0])))
    ll = -0.5 * (y @ alpha + logdet + len(y) * math.log(2 * math.pi))
    # gradient: 1/2 tr((a a^T - K^-1) dK/dp), with dK/dlog c = kernel part and
    # dK/dlog M_t = c * 1.5 exp(-s) dt^2 / M_t.
    Kinv = sla.cho_solve(cf, np.eye(len(y)))
    A = np.outer(alpha, alpha) - Kinv
    dt2 = (t[:, None] - t[None, :]) ** 2 / math.exp(p[1])
    r2 = dt2 + (w[:, None] - w[None, :]) ** 2 / math.exp(log_mw)
    s = np.sqrt(3.0 * r2)
    dKc = math.exp(p[0]) * (1 + s) * np.exp(-s)
    dKt = math.exp(p[0]) * 1.5 * np.exp(-s) * dt2
    g = np.array([0.5 * np.sum(A * dKc), 0.5 * np.sum(A * dKt)])
    return ll, g


def initial(y, e, length=20.0, wave=6000.0):
    sn = np.abs(y) / np.sqrt(e**2 + (1e-2 * np.max(y)) ** 2)
    scale = abs(y[int(np.argmax(sn))])
    return np.array([math.log((0.5 * scale) ** 2), math.log(length**2)]), math.log(wave**2)


def fit(p0, log_mw, t, w, y, e, tight):
    def f(p):
        try:
            ll, g = loglik(p, log_mw, t, w, y, e)
        except (np.linalg.LinAlgError, ValueError):
            return 1e25, np.zeros(2)
        return -ll, -g

    bounds = [(p0[0] - 10, p0[0] + 10), (0, math.log(1000**2))]
    opts = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000} if tight else {"ftol": 1e-6, "gtol": 1e-6}
    r = sopt.minimize(f, p0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
    return r


def predict(p, log_mw, t, w, y, e, tq, wq):
    K = kern(p, log_mw, t, w, t, w) + np.diag(e**2 + TINY)
    cf = sla.cho_factor(K, lower=True)
    Ks = kern(p, log_mw, t, w, tq, wq)
    mean = Ks.T @ sla.cho_solve(cf, y)
    var = math.exp(p[0]) - np.sum(Ks * sla.cho_solve(cf, Ks), axis=0)
    return mean, np.sqrt(np.maximum(var, 0))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/lightcurves/rrlyrae_sdss_stripe82.csv.gz"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/gp_rrlyrae.json"
    data = load(path, OBJECTS)
    fx = {"source": path, "zero_point": ZP, "bands": BANDS, "steps": STEPS, "objects": []}
    for oid in OBJECTS:
        t, w, y, e = data[oid]
        p0, log_mw = initial(y, e)
        ll0, g0 = loglik(p0, log_mw, t, w, y, e)
        p1 = p0 + np.array([-0.7, 1.3])
        ll1, g1 = loglik(p1, log_mw, t, w, y, e)
        # finite-difference check of this script's own gradient
        h = 1e-5
        for k in range(2):
            dp = np.zeros(2)
            dp[k] = h
            fd = (loglik(p1 + dp, log_mw, t, w, y, e)[0] - loglik(p1 - dp, log_mw, t, w, y, e)[0]) / (2 * h)
            assert abs(fd - g1[k]) <= 1e-5 * max(1.0, abs(g1[k])) + 1e-4, (oid, k, fd, g1[k])
        rt = fit(p0, log_mw, t, w, y, e, tight=True)
        ra = fit(p0, log_mw, t, w, y, e, tight=False)
        tq = np.concatenate([np.linspace(0, t[-1], STEPS) for _ in BAND_ORDER])
        wq = np.concatenate([np.full(STEPS, BANDS[b]) for b in BAND_ORDER])
        mean, std = predict(rt.x, log_mw, t, w, y, e, tq, wq)
        print(f"object {oid}: n={len(t)} ll(init)={ll0:.6f} opt p={rt.x} ll={-rt.fun:.6f} "
              f"({rt.nit} it, {rt.message}); astronet tol: p={ra.x} ll={-ra.fun:.6f}")
        fx["objects"].append({
            "id": oid, "n": len(t), "t": t.tolist(), "w": w.tolist(), "y": y.tolist(), "yerr": e.tolist(),
            "log_metric_w": log_mw,
            "p0": p0.tolist(), "ll0": ll0, "grad0": g0.tolist(),
            "p1": p1.tolist(), "ll1": ll1, "grad1": g1.tolist(),
            "p_opt": rt.x.tolist(), "ll_opt": -rt.fun, "p_opt_astronet_tol": ra.x.tolist(),
            "ll_opt_astronet_tol": -ra.fun,
            "grid_mean": mean.tolist(), "grid_std": std.tolist(),
        })
    with open(out, "w") as f:
        json.dump(fx, f, separators=(",", ":"))
    print("wrote", out)


if __name__ == "__main__":
    main()
