#!/usr/bin/env python3
# Why kernels/fft.c works in double: the rpe attention output (T = 512, 4096; M = Dv = 4; bias
# N(0, 0.7)) computed with float32 FFTs against float64 ones, torch.fft standing in for a float
# version of our FFT. Run: /usr/bin/python3 bench/rpe_fft_precision.py
import torch, math
torch.manual_seed(0)
for causal in (True, False):
  for L in (512, 4096):
    M, Dv = 4, 4
    fq = torch.rand(L, M, dtype=torch.float64) + 0.1
    fk = torch.rand(L, M, dtype=torch.float64) + 0.1
    v = torch.randn(L, Dv, dtype=torch.float64)
    b = 0.7 * torch.randn(2 * L - 1, dtype=torch.float64)
    N = 2 * L
    g = torch.zeros(N, dtype=torch.float64)
    d = torch.arange(L)
    g[d] = torch.exp(b[-d + L - 1])
    if not causal:
        g[N - d[1:]] = torch.exp(b[d[1:] + L - 1])
    def out(dtype):
        G = torch.fft.rfft(g.to(dtype))
        vt = torch.cat([v, torch.ones(L, 1, dtype=torch.float64)], 1)
        x = (fk[:, :, None] * vt[:, None, :]).to(dtype)  # [L, M, Dv+1]
        X = torch.fft.rfft(x, n=N, dim=0)
        y = torch.fft.irfft(X * G[:, None, None], n=N, dim=0)[:L]
        acc = (fq.to(dtype)[:, :, None] * y).sum(1).double()
        return acc[:, :Dv] / (acc[:, Dv:] + 1e-6)
    o64, o32 = out(torch.float64), out(torch.float32)
    print(f"L={L} causal={causal}: float32 FFT out rel err {((o32 - o64).abs().max() / o64.abs().max()).item():.2e}")
