/* libFuzzer target: the safetensors reader, then model detection on whatever it accepts.
 * Every accepted tensor and weight view is read end to end, so ASan sees any view that points
 * outside its buffer. Built by CLIPSKIP_FUZZ=ON (clang); regress.c runs the corpus in a normal
 * build. */
#include "model.h"
#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint8_t g_sink; /* keeps the reads below from being optimized away */

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= b[i];
    g_sink ^= x;
}

static void touch_weight(const cs_weight *w) {
    if (!w->data) return;
    size_t n = (size_t)w->shape[0] * (w->ndim == 2 ? (size_t)w->shape[1] : 1);
    touch(w->data, n * (w->dtype == CLIPSKIP_DTYPE_F32 ? 4 : 2));
}

static void check_model(const clipskip_model *m) {
    for (int t = 0; t < m->n_towers; t++) {
        const cs_tower *tw = &m->towers[t];
        touch_weight(&tw->tok_emb);
        touch_weight(&tw->pos_emb);
        touch_weight(&tw->lnf_w);
        touch_weight(&tw->lnf_b);
        touch_weight(&tw->proj);
        for (int l = 0; l < tw->info.n_layers; l++) {
            const cs_weight *w = (const cs_weight *)&tw->layers[l];
            for (size_t k = 0; k < sizeof(cs_layer) / sizeof(cs_weight); k++) touch_weight(&w[k]);
        }
        clipskip_tower_info info;
        if (clipskip_model_tower_info(m, t, &info) != CLIPSKIP_OK) abort();
        if (info.n_heads <= 0 || info.d_model % info.n_heads) abort();
    }
}

/* Two input forms. Raw: the bytes are the file. Compact ('Z', u32 LE data size, header): the
 * file is built as u64 header length + header + that many zero bytes (at most 4 MiB), so a
 * tower's tensors cost the fuzzer no input bytes and mutations land on the header. */
static int parse_input(const uint8_t *data, size_t size, uint8_t **owned, cs_safetensors **st) {
    *owned = NULL;
    if (size < 5 || data[0] != 'Z')
        return cs_st_parse(data, size, "fuzz.safetensors", 0, st) == CLIPSKIP_OK;
    size_t dlen =
        (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 | (size_t)data[4] << 24;
    if (dlen > (4u << 20)) dlen = 4u << 20;
    size_t hlen = size - 5, total = 8 + hlen + dlen;
    uint8_t *buf = calloc(1, total);
    if (!buf) return 0;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, data + 5, hlen);
    *owned = buf;
    return cs_st_parse(buf, total, "fuzz.safetensors", 0, st) == CLIPSKIP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cs_safetensors *st = NULL;
    uint8_t *owned;
    if (!parse_input(data, size, &owned, &st)) {
        if (st) abort(); /* out must stay NULL on failure */
        free(owned);
        return 0;
    }
    for (int i = 0; i < st->n_tensors; i++) {
        const cs_st_tensor *t = &st->tensors[i];
        if (cs_st_find(st, t->name) != t) abort();
        if (t->end > st->data_size || t->begin > t->end) abort();
        touch(t->data, t->end - t->begin);
    }
    for (int i = 0; i < st->n_meta; i++)
        if (cs_st_meta_get(st, st->meta[i].key) != st->meta[i].value) abort();
    clipskip_model *m = NULL;
    if (cs_model_from_file(st, NULL, 0, &m) == CLIPSKIP_OK) { /* takes st in every case */
        check_model(m);
        clipskip_model_free(m);
    } else if (m) {
        abort();
    }
    free(owned);
    return 0;
}
