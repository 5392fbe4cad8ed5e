/* What one encode call costs at the floor: FLOPs from the model shape and the plan the
 * encoder runs (encoder.c), and the bytes it must move at least. */
#include "bench.h"

/* FLOPs of one full layer over `rows` token rows holding `attn_pairs` causal
 * (query, key) pairs in all. */
static double layer_full(const cs_bench_shape *s, double rows, double attn_pairs) {
    double d = s->d, f = s->f;
    /* QKV (3D x D), out-proj (D x D), fc1 (F x D), fc2 (D x F): 2 FLOPs per multiply-add */
    double gemm = 2.0 * rows * (4.0 * d * d + 2.0 * d * f);
    /* QK^T and PV: each (query, key) pair is a D-long dot product over all heads */
    return gemm + 2.0 * 2.0 * d * attn_pairs;
}

/* Causal pairs of a sequence of t tokens. */
static double causal_pairs(double t) { return t * (t + 1.0) / 2.0; }

cs_bench_cost cs_bench_cost_of(const cs_bench_shape *s, const int32_t *eos, int32_t n,
                               int32_t skip, int pooled, double weight_bytes,
                               double out_bytes) {
    const double T = 77.0, d = s->d, f = s->f;
    int32_t hid_depth = s->layers - (skip - 1), depth = pooled ? s->layers : hid_depth;
    double rows_short = 0, pairs_short = 0, rows_eos_only = n;
    for (int32_t i = 0; i < n; i++) {
        rows_short += eos[i] + 1;
        pairs_short += causal_pairs(eos[i] + 1);
    }
    cs_bench_cost c = {0};
    c.depth = depth;
    double full = layer_full(s, n * T, n * causal_pairs(T));
    c.flops = hid_depth * full;
    if (depth > hid_depth) {
        /* tail layers over rows 0..eos; the last one for the EOS query only */
        c.flops += (depth - hid_depth - 1) * layer_full(s, rows_short, pairs_short);
        c.flops += 2.0 * rows_short * 3.0 * d * d             /* K, V (and Q) for rows <= eos */
                   + 2.0 * 2.0 * d * rows_short               /* one query row per sequence */
                   + 2.0 * rows_eos_only * (d * d + 2.0 * d * f); /* out-proj + MLP, EOS row */
    }
    c.flops_nominal = depth * full;
    /* Bytes: each weight of the layers run read once (matrices, biases, LayerNorms), the
     * embedding rows gathered, ids in, outputs out. Activations between layers are not
     * counted: a fused engine could keep them on chip. */
    double layer_params = 4.0 * d * d + 2.0 * d * f + 9.0 * d + f;
    c.bytes = depth * layer_params * weight_bytes + n * T * 2.0 * d * weight_bytes +
              n * T * 4.0 + n * T * d * out_bytes + (pooled ? n * d * out_bytes : 0.0);
    return c;
}
