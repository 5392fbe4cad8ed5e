#!/usr/bin/env python3
"""Emulate the PTX fragment semantics of ldmatrix (.x4, .trans) and mma.sync.m16n8k16 (PTX ISA
"Matrix fragments for mma.m16n8k16") and replay, lane by lane, the index arithmetic of
kernels/gemm.cu (all three tiles, M/N/K tails), kernels/attention.cu (tensor-core kernel, full
and last-only) and bench/kernels/mlp_fused.cu, against numpy float64 references; then check that
the shared-memory layouts put the 8 rows of every ldmatrix in 8 distinct 16-byte bank groups.

Why: the build machines have no GPU. This checks the fragment mappings and swizzles, the part
most likely to be wrong in code that has never run, without one. It mirrors the kernels' index
expressions by hand, so keep it in step when they change.  Run: python3 bench/kernels/frag_emu.py
(numpy only; a few seconds)."""
import numpy as np
rng = np.random.default_rng(0)

def ldmatrix(smem, addrs, trans=False):
    """addrs: 32 element offsets (lane i gives row i%8 of matrix i//8). Returns regs[lane][4] = pairs."""
    regs = [[None]*4 for _ in range(32)]
    for j in range(4):
        rows = [smem[addrs[8*j + r]: addrs[8*j + r] + 8] for r in range(8)]
        M = np.array(rows)  # 8x8
        for t in range(32):
            g, q = t // 4, t % 4
            if not trans: regs[t][j] = (M[g, 2*q], M[g, 2*q+1])
            else: regs[t][j] = (M[2*q, g], M[2*q+1, g])
    return regs

def mma(c, a, b):
    """c[lane][4] += A(16x16) B(16x8) with PTX fragment layouts; a[lane][4] pairs, b[lane][2] pairs."""
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for t in range(32):
        g, q = t // 4, t % 4
        A[g, 2*q:2*q+2] = a[t][0]; A[g+8, 2*q:2*q+2] = a[t][1]
        A[g, 2*q+8:2*q+10] = a[t][2]; A[g+8, 2*q+8:2*q+10] = a[t][3]
        B[2*q:2*q+2, g] = b[t][0]; B[2*q+8:2*q+10, g] = b[t][1]
    C = A @ B
    for t in range(32):
        g, q = t // 4, t % 4
        c[t][0] += C[g, 2*q]; c[t][1] += C[g, 2*q+1]; c[t][2] += C[g+8, 2*q]; c[t][3] += C[g+8, 2*q+1]

# ---------------------------------------------------------------- GEMM
BK = 32
def swz(r, c): return r * BK + ((c ^ ((r >> 1) & 3)) << 3)

def gemm(X, W, BM, BN, WM_, WN_):
    M, K = X.shape; N = W.shape[0]
    out = np.full((M, N), np.nan)
    WM, WN = BM // WM_, BN // WN_; MI, NI = WM // 16, WN // 8
    KT = (K + BK - 1) // BK
    for by in range((M + BM - 1) // BM):
        for bx in range((N + BN - 1) // BN):
            m0, n0 = by*BM, bx*BN
            acc = {(w, mi, ni): [[0.0]*4 for _ in range(32)] for w in range(WM_*WN_) for mi in range(MI) for ni in range(NI)}
            for kt in range(KT):
                sA = np.zeros(BM*BK); sB = np.zeros(BN*BK)
                for r in range(BM):
                    for c in range(4):
                        gr, gk = m0 + r, kt*BK + c*8
                        if gr < M and gk < K: sA[swz(r, c):swz(r, c)+8] = X[gr, gk:gk+8]
                for r in range(BN):
                    for c in range(4):
                        gr, gk = n0 + r, kt*BK + c*8
                        if gr < N and gk < K: sB[swz(r, c):swz(r, c)+8] = W[gr, gk:gk+8]
                for w in range(WM_*WN_):
                    wm, wn = w // WN_, w % WN_
                    for kk in range(BK // 16):
                        af = [ldmatrix(sA, [swz(wm*WM + mi*16 + (l & 15), kk*2 + (l >> 4)) for l in range(32)]) for mi in range(MI)]
                        bf = [None]*NI
                        for p in range(NI // 2):
                            t4 = ldmatrix(sB, [swz(wn*WN + p*16 + (l & 7) + ((l >> 4) << 3), kk*2 + ((l >> 3) & 1)) for l in range(32)])
                            bf[2*p] = [(t4[l][0], t4[l][1]) for l in range(32)]
                            bf[2*p+1] = [(t4[l][2], t4[l][3]) for l in range(32)]
                        for mi in range(MI):
                            for ni in range(NI):
                                mma(acc[(w, mi, ni)], af[mi], bf[ni])
            for w in range(WM_*WN_):
                wm, wn = w // WN_, w % WN_
                for ni in range(NI):
                    for l in range(32):
                        col = n0 + wn*WN + ni*8 + (l & 3)*2
                        if col >= N: continue
                        for mi in range(MI):
                            row = m0 + wm*WM + mi*16 + (l >> 2)
                            a = acc[(w, mi, ni)][l]
                            if row < M: out[row, col:col+2] = a[0:2]
                            if row + 8 < M: out[row+8, col:col+2] = a[2:4]
    return out

for (M, N, K) in [(37, 72, 40), (77, 64, 96), (5, 136, 32)]:
    X = rng.standard_normal((M, K)); W = rng.standard_normal((N, K))
    for cfg in [(128, 128, 2, 4), (64, 64, 2, 2), (32, 32, 2, 2)]:
        o = gemm(X, W, *cfg)
        err = np.abs(o - X @ W.T).max()
        print("gemm", (M, N, K), cfg, "max err", err, "nan", np.isnan(o).sum())
        assert err < 1e-9 and not np.isnan(o).any()

# ---------------------------------------------------------------- attention (tensor-core kernel)
LD, TMAX = 72, 80
def attention(qkv, r0, length, h, d, scale, last_only):
    sQ = np.zeros(TMAX*LD); sK = np.zeros(TMAX*LD); sV = np.zeros(TMAX*LD)
    for j in range(length):
        row = qkv[r0 + j]
        sQ[j*LD:j*LD+64] = row[h*64:h*64+64]; sK[j*LD:j*LD+64] = row[d+h*64:d+h*64+64]; sV[j*LD:j*LD+64] = row[2*d+h*64:2*d+h*64+64]
    out = {}
    ntiles = (length + 15) >> 4
    for qt in range((ntiles - 1) if last_only else 0, ntiles):
        qf = [ldmatrix(sQ, [(qt*16 + (l & 15))*LD + ks*16 + (l >> 4)*8 for l in range(32)]) for ks in range(4)]
        s = [[[0.0]*4 for _ in range(32)] for _ in range(10)]
        for p in range(5):
            if p > qt: break
            for ks in range(4):
                kb = ldmatrix(sK, [(p*16 + (l & 7) + ((l >> 4) << 3))*LD + ks*16 + ((l >> 3) & 1)*8 for l in range(32)])
                mma(s[2*p], qf[ks], [(kb[l][0], kb[l][1]) for l in range(32)])
                mma(s[2*p+1], qf[ks], [(kb[l][2], kb[l][3]) for l in range(32)])
        o = [[[0.0]*4 for _ in range(32)] for _ in range(8)]
        sums = []
        for l in range(32):
            g, t = l >> 2, l & 3
            ra, rb = qt*16 + g, qt*16 + g + 8
            for nt in range(2*(qt+1)):
                for e in range(2):
                    key = nt*8 + 2*t + e
                    s[nt][l][e] = s[nt][l][e]*scale if key <= ra else -np.inf
                    s[nt][l][2+e] = s[nt][l][2+e]*scale if key <= rb else -np.inf
        # quad max / sum
        for quad in range(8):
            lanes = range(4*quad, 4*quad+4)
            mxa = max(max(s[nt][l][e] for nt in range(2*(qt+1)) for e in range(2)) for l in lanes)
            mxb = max(max(s[nt][l][2+e] for nt in range(2*(qt+1)) for e in range(2)) for l in lanes)
            for l in lanes:
                for nt in range(2*(qt+1)):
                    for e in range(2):
                        s[nt][l][e] = np.exp(s[nt][l][e] - mxa); s[nt][l][2+e] = np.exp(s[nt][l][2+e] - mxb)
            sa = sum(s[nt][l][e] for l in lanes for nt in range(2*(qt+1)) for e in range(2))
            sb = sum(s[nt][l][2+e] for l in lanes for nt in range(2*(qt+1)) for e in range(2))
            sums.append((sa, sb))
        for kp in range(5):
            if kp > qt: break
            pa = [((s[2*kp][l][0], s[2*kp][l][1]), (s[2*kp][l][2], s[2*kp][l][3]), (s[2*kp+1][l][0], s[2*kp+1][l][1]), (s[2*kp+1][l][2], s[2*kp+1][l][3])) for l in range(32)]
            for dp in range(4):
                vb = ldmatrix(sV, [(kp*16 + (l & 7) + ((l >> 3) & 1)*8)*LD + dp*16 + (l >> 4)*8 for l in range(32)], trans=True)
                mma(o[2*dp], pa, [(vb[l][0], vb[l][1]) for l in range(32)])
                mma(o[2*dp+1], pa, [(vb[l][2], vb[l][3]) for l in range(32)])
        for l in range(32):
            g, t = l >> 2, l & 3
            ra, rb = qt*16 + g, qt*16 + g + 8
            sa, sb = sums[g]
            for dt in range(8):
                col = h*64 + dt*8 + 2*t
                if ra < length and (not last_only or ra == length-1): out[(ra, col)] = o[dt][l][0]/sa; out[(ra, col+1)] = o[dt][l][1]/sa
                if rb < length and (not last_only or rb == length-1): out[(rb, col)] = o[dt][l][2]/sb; out[(rb, col+1)] = o[dt][l][3]/sb
    return out

def attn_ref(qkv, r0, length, h, d, scale):
    q = qkv[r0:r0+length, h*64:h*64+64]; k = qkv[r0:r0+length, d+h*64:d+h*64+64]; v = qkv[r0:r0+length, 2*d+h*64:2*d+h*64+64]
    s = q @ k.T * scale + np.triu(np.full((length, length), -np.inf), 1)
    p = np.exp(s - s.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    return p @ v

d = 128
for length in [1, 16, 17, 77, 80]:
    qkv = rng.standard_normal((5 + length, 3*d))
    for h in [0, 1]:
        got = attention(qkv, 5, length, h, d, 0.125, False)
        ref = attn_ref(qkv, 5, length, h, d, 0.125)
        assert len(got) == length*64, (len(got), length)
        err = max(abs(got[(i, h*64+c)] - ref[i, c]) for i in range(length) for c in range(64))
        gl = attention(qkv, 5, length, h, d, 0.125, True)
        assert len(gl) == 64
        errl = max(abs(gl[(length-1, h*64+c)] - ref[length-1, c]) for c in range(64))
        print("attention len", length, "head", h, "max err", err, "last-only", errl)
        assert err < 1e-9 and errl < 1e-9

# ---------------------------------------------------------------- fused MLP (bench variant)
BM, BF, PAD, WARPS = 32, 32, 8, 16
def act(x): return x/(1+np.exp(-1.702*x))
def mlp(X, W1, b1, W2, b2, R):
    M, D = X.shape; F = W1.shape[0]
    LDX, LDH = D + PAD, BF + PAD; NTW = D // WARPS // 8
    out = R.copy()
    for m0 in range(0, M, BM):
        rows = min(BM, M - m0)
        sX = np.zeros(BM*LDX)
        for r in range(rows): sX[r*LDX:r*LDX+D] = X[m0+r]
        acc = {(w, mt, j): [[0.0]*4 for _ in range(32)] for w in range(WARPS) for mt in range(2) for j in range(NTW)}
        for f0 in range(0, F, BF):
            sW1 = np.zeros(BM*LDX); sW2 = np.zeros(D*LDH); sH = np.zeros(BM*LDH)
            for r in range(BF): sW1[r*LDX:r*LDX+D] = W1[f0+r]
            for r in range(D): sW2[r*LDH:r*LDH+BF] = W2[r, f0:f0+BF]
            for warp in range(8):
                mt, nt = warp >> 2, warp & 3
                h = [[0.0]*4 for _ in range(32)]
                for k0 in range(0, D, 16):
                    a = ldmatrix(sX, [(mt*16 + (l & 15))*LDX + k0 + (l >> 4)*8 for l in range(32)])
                    b4 = ldmatrix(sW1, [(nt*8 + (l & 7))*LDX + k0 + ((l >> 3) & 1)*8 for l in range(32)])
                    mma(h, a, [(b4[l][0], b4[l][1]) for l in range(32)])
                for l in range(32):
                    g, t = l >> 2, l & 3
                    col = nt*8 + 2*t
                    sH[(mt*16+g)*LDH + col] = act(h[l][0] + b1[f0+col]); sH[(mt*16+g)*LDH + col+1] = act(h[l][1] + b1[f0+col+1])
                    sH[(mt*16+g+8)*LDH + col] = act(h[l][2] + b1[f0+col]); sH[(mt*16+g+8)*LDH + col+1] = act(h[l][3] + b1[f0+col+1])
            for warp in range(WARPS):
                for kk in range(BF // 16):
                    a = [ldmatrix(sH, [(mt*16 + (l & 15))*LDH + kk*16 + (l >> 4)*8 for l in range(32)]) for mt in range(2)]
                    for p in range(NTW // 2):
                        b4 = ldmatrix(sW2, [(warp*NTW*8 + p*16 + (l & 7) + ((l >> 4) << 3))*LDH + kk*16 + ((l >> 3) & 1)*8 for l in range(32)])
                        for mt in range(2):
                            mma(acc[(warp, mt, 2*p)], a[mt], [(b4[l][0], b4[l][1]) for l in range(32)])
                            mma(acc[(warp, mt, 2*p+1)], a[mt], [(b4[l][2], b4[l][3]) for l in range(32)])
        for warp in range(WARPS):
            for j in range(NTW):
                for l in range(32):
                    g, t = l >> 2, l & 3
                    col = warp*NTW*8 + j*8 + 2*t
                    for mt in range(2):
                        for hh in range(2):
                            r = mt*16 + g + hh*8
                            if r >= rows: continue
                            out[m0+r, col] += acc[(warp, mt, j)][l][2*hh] + b2[col]
                            out[m0+r, col+1] += acc[(warp, mt, j)][l][2*hh+1] + b2[col+1]
    return out
D, F, M = 256, 64, 37   # NTW = 2
X = rng.standard_normal((M, D)); W1 = rng.standard_normal((F, D))/16; W2 = rng.standard_normal((D, F))/8
b1 = rng.standard_normal(F); b2 = rng.standard_normal(D); R = rng.standard_normal((M, D))
got = mlp(X, W1, b1, W2, b2, R)
ref = R + act(X @ W1.T + b1) @ W2.T + b2
print("mlp max err", np.abs(got-ref).max()); assert np.abs(got-ref).max() < 1e-9

# bank check of the GEMM swizzle: 8 rows x 16 B read by one ldmatrix 8x8 (same logical chunk)
def banks(addr_elems): return sorted(set(((a*2)//16) % 8 for a in addr_elems))
BK=32
def swz(r, c): return r * BK + ((c ^ ((r >> 1) & 3)) << 3)
for r0 in range(0, 32, 8):
    for c in range(4):
        b = banks([swz(r0 + i, c) for i in range(8)])
        assert len(b) == 8, (r0, c, b)
# attention (stride 144 B) and mlp pads (1552 B, 80 B)
for stride in [144, 2*(768+8), 2*(1024+8), 80]:
    b = sorted(set(((i*stride)//16) % 8 for i in range(8)))
    print("stride", stride, "16B bank groups of 8 rows:", len(b))
print("all fragment emulations agree")
