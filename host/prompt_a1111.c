/* AUTOMATIC1111's prompt syntax (SEMANTICS.md "Long prompts and emphasis"), written from its
 * documented behaviour (modules/prompt_parser.py parse_prompt_attention, sd_hijack_clip.py
 * tokenize_line, webui 1.10):
 *
 *   parse:  the text becomes (piece, weight) pairs. "(" and "[" open a range; ")" multiplies
 *           every piece since its "(" by 1.1, "]" since its "[" by 1/1.1, ":W)" (W =
 *           [+-]?[.0-9]+, whitespace allowed around it) by W; "\(" "\)" "\[" "\]" "\\" are the
 *           literal characters and a lone "\" vanishes; a closer without its opener, and a ":"
 *           that is not ":W)" after a "(", are text. Brackets still open at the end multiply
 *           their ranges then (round ones first). " BREAK " (a whole word, with the whitespace
 *           around it) inside text becomes the piece "BREAK" of weight -1. Neighbouring pieces of
 *           equal weight are merged (so "BREAK BREAK" merges into the text "BREAKBREAK", and a
 *           BREAK inside brackets gets another weight: both are then text, as in webui).
 *   chunk:  each piece is tokenized alone (no BOS/EOS, no truncation); the tokens fill chunks
 *           of 75, each token keeping its piece's weight; a piece "BREAK" of weight -1 closes
 *           the chunk. When a chunk is full and a comma was among its last 20 tokens, the
 *           tokens after that comma move to the next chunk. Each chunk becomes BOS, its tokens,
 *           EOS up to 76, EOS (weight 1 for all of these), then pad_id after the first EOS.
 *
 * Differences, deliberate: "\d" and "\s" of the weight pattern are ASCII digits and Python's
 * whitespace (webui's regex also takes other Unicode decimal digits there); a weight that is
 * not a number ("(x:1.2.3)") is an error here (webui raises ValueError). */
#include "prompt_a1111.h"

#include "internal.h"
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define A1111_CHUNK 75
#define A1111_BACKTRACK 20
#define A1111_COMMA 267 /* ",</w>" */

void cs_wpieces_free(cs_wpieces *w) {
    for (int i = 0; i < w->n; i++) free(w->p[i].text);
    free(w->p);
    memset(w, 0, sizeof *w);
}

static clipskip_status piece_add(cs_wpieces *w, const char *s, size_t len, double weight) {
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        cs_wpiece *p = realloc(w->p, (size_t)cap * sizeof *p);
        if (!p) return cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory for %d pieces", cap);
        w->p = p;
        w->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t) return cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory for a piece of %zu bytes", len);
    memcpy(t, s, len);
    t[len] = 0;
    w->p[w->n++] = (cs_wpiece){t, len, weight};
    return CLIPSKIP_OK;
}

static void multiply_from(cs_wpieces *w, int from, double m) {
    for (int i = from; i < w->n; i++) w->p[i].weight *= m;
}

/* The code point at s[i] (n bytes), its length in *len; -1 for a byte that starts none. */
static int32_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    *len = l > 0 ? (size_t)l : 1;
    return l > 0 ? cp : -1;
}

/* Python's re \w for str patterns: letters, numbers, underscore. */
static int py_word(int32_t cp) {
    if (cp == '_') return 1;
    if (cp < 0) return 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

/* Where the code point that ends just before s[i] starts (i > lo), not before lo. */
static size_t cp_start_before(const char *s, size_t lo, size_t i) {
    size_t j = i - 1;
    while (j > lo && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    return j;
}

/* The code point that ends just before s[i] (-1 at the start). */
static int32_t cp_before(const char *s, size_t i) {
    size_t len;
    return i == 0 ? -1 : cp_at(s, i, cp_start_before(s, 0, i), &len);
}

static size_t skip_space(const char *s, size_t n, size_t i) {
    while (i < n) {
        size_t len;
        int32_t cp = cp_at(s, n, i, &len);
        if (cp < 0 || !cs_py_isspace((uint32_t)cp)) break;
        i += len;
    }
    return i;
}

/* re.split(r"\s*\bBREAK\b\s*", text): the parts, with a piece "BREAK" of weight -1 between
 * them. A match starts at the whitespace run right before a whole-word BREAK. */
static clipskip_status add_text(cs_wpieces *w, const char *s, size_t n) {
    size_t from = 0, i = 0;
    while (i + 5 <= n) {
        size_t len;
        if (memcmp(s + i, "BREAK", 5) || py_word(cp_before(s, i)) ||
            (i + 5 < n && py_word(cp_at(s, n, i + 5, &len)))) {
            i++;
            continue;
        }
        size_t start = i; /* back over the whitespace before it, not past the last split */
        while (start > from) {
            const size_t j = cp_start_before(s, from, start);
            int32_t cp = cp_at(s, n, j, &len);
            if (cp < 0 || !cs_py_isspace((uint32_t)cp)) break;
            start = j;
        }
        CS_TRY(piece_add(w, s + from, start - from, 1.0));
        CS_TRY(piece_add(w, "BREAK", 5, -1.0));
        from = i = skip_space(s, n, i + 5);
    }
    return piece_add(w, s + from, n - from, 1.0);
}

/* ":" + ws + [+-]?[.0-9]+ + ws + ")" at s[i]: its end, the number in [*n0, *n1); 0 if none. */
static size_t weight_close(const char *s, size_t n, size_t i, size_t *n0, size_t *n1) {
    size_t j = skip_space(s, n, i + 1);
    *n0 = j;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    size_t d = j;
    while (j < n && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) j++;
    if (j == d) return 0;
    *n1 = j;
    j = skip_space(s, n, j);
    return j < n && s[j] == ')' ? j + 1 : 0;
}

/* Python float() of [+-]?[.0-9]+: digits with at most one '.', at least one digit. */
static int parse_weight(const char *s, size_t n, double *out) {
    char buf[64];
    int digits = 0, dots = 0;
    if (n >= sizeof buf) return 0;
    for (size_t i = 0; i < n; i++) {
        digits += s[i] >= '0' && s[i] <= '9';
        dots += s[i] == '.';
    }
    if (!digits || dots > 1) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return 1;
}

/* Merge neighbouring pieces of equal weight. */
static clipskip_status merge_equal(cs_wpieces *w) {
    int k = 0;
    for (int i = 1; i < w->n; i++) {
        cs_wpiece *a = &w->p[k], *b = &w->p[i];
        if (a->weight != b->weight) {
            w->p[++k] = *b;
            continue;
        }
        char *t = realloc(a->text, a->len + b->len + 1);
        if (!t) return cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory merging pieces");
        memcpy(t + a->len, b->text, b->len + 1);
        a->text = t;
        a->len += b->len;
        free(b->text);
    }
    w->n = w->n ? k + 1 : 0;
    return CLIPSKIP_OK;
}

clipskip_status cs_a1111_parse(const char *s, size_t n, cs_wpieces *w) {
    memset(w, 0, sizeof *w);
    int *round = malloc((n + 1) * sizeof *round), *square = malloc((n + 1) * sizeof *square);
    int nr = 0, ns = 0;
    clipskip_status st = round && square ? CLIPSKIP_OK : cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory");
    for (size_t i = 0; st == CLIPSKIP_OK && i < n;) {
        const char c = s[i];
        size_t n0, n1, end;
        if (c == '\\') { /* \( \) \[ \] \\: the character; a lone backslash: nothing */
            const int esc = i + 1 < n && strchr("()[]\\", s[i + 1]) && s[i + 1];
            st = piece_add(w, s + i + 1, esc ? 1 : 0, 1.0);
            i += esc ? 2 : 1;
        } else if (c == '(') {
            round[nr++] = w->n;
            i++;
        } else if (c == '[') {
            square[ns++] = w->n;
            i++;
        } else if (c == ':' && (end = weight_close(s, n, i, &n0, &n1)) && nr) {
            double wt;
            if (!parse_weight(s + n0, n1 - n0, &wt))
                st = cs_fail(CLIPSKIP_ERR_TEXT, "prompt weight '%.*s' at byte %zu is not a number",
                             (int)(n1 - n0), s + n0, n0);
            else multiply_from(w, round[--nr], wt);
            i = end;
        } else if (c == ':' && end) { /* ":W)" without an open "(": text */
            st = add_text(w, s + i, end - i);
            i = end;
        } else if (c == ')' && nr) {
            multiply_from(w, round[--nr], 1.1);
            i++;
        } else if (c == ']' && ns) {
            multiply_from(w, square[--ns], 1 / 1.1);
            i++;
        } else if (c == ')' || c == ']' || c == ':') {
            st = add_text(w, s + i, 1);
            i++;
        } else {
            size_t j = i;
            while (j < n && !strchr("\\()[]:", s[j])) j++;
            st = add_text(w, s + i, j - i);
            i = j;
        }
    }
    for (int k = 0; st == CLIPSKIP_OK && k < nr; k++) multiply_from(w, round[k], 1.1);
    for (int k = 0; st == CLIPSKIP_OK && k < ns; k++) multiply_from(w, square[k], 1 / 1.1);
    free(round);
    free(square);
    if (st == CLIPSKIP_OK && w->n == 0) st = piece_add(w, "", 0, 1.0);
    if (st == CLIPSKIP_OK) st = merge_equal(w);
    if (st != CLIPSKIP_OK) cs_wpieces_free(w);
    return st;
}

/* ------------------------------------------------------------------ chunks */

void cs_chunks_free(cs_chunks *c) {
    free(c->ids);
    free(c->mult);
    memset(c, 0, sizeof *c);
}

typedef struct {
    int32_t tok[A1111_CHUNK + 1];
    float mult[A1111_CHUNK + 1];
    int n, last_comma;
} open_chunk;

/* One chunk of 77 ids and weights: BOS, the n tokens tok with weights w, EOS up to 76, EOS
 * (weight 1 for all of these); pad_id after the first EOS, even a text's own (OpenCLIP). */
static void frame_chunk(int32_t *ids, float *m, const int32_t *tok, const float *w, int n, int32_t pad_id) {
    ids[0] = CLIPSKIP_BOS;
    m[0] = 1.0f;
    for (int i = 0; i < CLIPSKIP_CONTEXT - 1; i++) {
        ids[i + 1] = i < n ? tok[i] : i == n ? CLIPSKIP_EOS : pad_id;
        m[i + 1] = i < n ? w[i] : 1.0f;
    }
    for (int i = 1; pad_id != CLIPSKIP_EOS && i < CLIPSKIP_CONTEXT; i++)
        if (ids[i] == CLIPSKIP_EOS) {
            for (int j = i + 1; j < CLIPSKIP_CONTEXT; j++) ids[j] = pad_id;
            break;
        }
}

void cs_chunks_place(const cs_chunks *c, int32_t n_chunks, int32_t pad_id, int32_t *ids, float *mult) {
    const size_t have = (size_t)c->n_chunks * CLIPSKIP_CONTEXT;
    memcpy(ids, c->ids, have * sizeof *ids);
    memcpy(mult, c->mult, have * sizeof *mult);
    for (int32_t k = c->n_chunks; k < n_chunks; k++)
        frame_chunk(ids + (size_t)k * CLIPSKIP_CONTEXT, mult + (size_t)k * CLIPSKIP_CONTEXT, NULL, NULL, 0, pad_id);
}

/* Close ch into c (frame_chunk). */
static clipskip_status close_chunk(cs_chunks *c, open_chunk *ch, int32_t pad_id) {
    if (c->n_chunks == c->cap) {
        int32_t cap = c->cap ? 2 * c->cap : 4;
        int32_t *ids = realloc(c->ids, (size_t)cap * CLIPSKIP_CONTEXT * sizeof *ids);
        if (ids) c->ids = ids;
        float *m = realloc(c->mult, (size_t)cap * CLIPSKIP_CONTEXT * sizeof *m);
        if (m) c->mult = m;
        if (!ids || !m) return cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory for %d chunks", cap);
        c->cap = cap;
    }
    frame_chunk(c->ids + (size_t)c->n_chunks * CLIPSKIP_CONTEXT, c->mult + (size_t)c->n_chunks * CLIPSKIP_CONTEXT,
                ch->tok, ch->mult, ch->n, pad_id);
    c->n_chunks++;
    ch->n = 0;
    ch->last_comma = -1;
    return CLIPSKIP_OK;
}

/* One token of weight wt into the open chunk (sd_hijack_clip.py tokenize_line's loop). */
static clipskip_status push_token(cs_chunks *c, open_chunk *ch, int32_t t, float wt, int32_t pad_id) {
    if (t == A1111_COMMA) {
        ch->last_comma = ch->n;
    } else if (ch->n == A1111_CHUNK && ch->last_comma != -1 && ch->n - ch->last_comma <= A1111_BACKTRACK) {
        open_chunk rest = {.n = 0, .last_comma = -1};
        const int at = ch->last_comma + 1;
        for (int i = at; i < ch->n; i++) {
            rest.tok[rest.n] = ch->tok[i];
            rest.mult[rest.n++] = ch->mult[i];
        }
        ch->n = at;
        CS_TRY(close_chunk(c, ch, pad_id));
        *ch = rest;
    }
    if (ch->n == A1111_CHUNK) CS_TRY(close_chunk(c, ch, pad_id));
    ch->tok[ch->n] = t;
    ch->mult[ch->n++] = wt;
    return CLIPSKIP_OK;
}

clipskip_status cs_a1111_chunks(const clipskip_tokenizer *tok, clipskip_clean clean, int32_t pad_id,
                                const char *text, size_t len, cs_chunks *c) {
    memset(c, 0, sizeof *c);
    size_t n_ids = 0, cap = 256;
    /* the whole text first: its errors name bytes of the prompt, not of a piece */
    CS_TRY(clipskip_tokenize_raw(tok, text, len, clean, NULL, 0, &n_ids));
    cs_wpieces w;
    CS_TRY(cs_a1111_parse(text, len, &w));
    open_chunk ch = {.n = 0, .last_comma = -1};
    int32_t *ids = malloc(cap * sizeof *ids);
    clipskip_status st = ids ? CLIPSKIP_OK : cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory");
    for (int p = 0; st == CLIPSKIP_OK && p < w.n; p++) {
        const cs_wpiece *pc = &w.p[p];
        if (pc->weight == -1.0 && !strcmp(pc->text, "BREAK")) {
            st = close_chunk(c, &ch, pad_id);
            continue;
        }
        st = clipskip_tokenize_raw(tok, pc->text, pc->len, clean, ids, cap, &n_ids);
        if (st == CLIPSKIP_OK && n_ids > cap) {
            int32_t *t = realloc(ids, n_ids * sizeof *t);
            if (!t) st = cs_fail(CLIPSKIP_ERR_NOMEM, "prompt: out of memory for %zu tokens", n_ids);
            else ids = t, cap = n_ids;
            if (st == CLIPSKIP_OK) st = clipskip_tokenize_raw(tok, pc->text, pc->len, clean, ids, cap, &n_ids);
        }
        for (size_t i = 0; st == CLIPSKIP_OK && i < n_ids; i++)
            st = push_token(c, &ch, ids[i], (float)pc->weight, pad_id);
    }
    if (st == CLIPSKIP_OK && (ch.n || !c->n_chunks)) st = close_chunk(c, &ch, pad_id);
    free(ids);
    cs_wpieces_free(&w);
    if (st != CLIPSKIP_OK) cs_chunks_free(c);
    return st;
}

/* ------------------------------------------------------------------ emphasis */

/* webui's "Original" emphasis on one chunk of one tower: z (77 rows of width d, stride ld)
 * times each row's weight, then times (mean before / mean after). */
void cs_a1111_emphasize(float *z, size_t ld, int32_t d, const float *w) {
    int any = 0;
    for (int p = 0; p < CLIPSKIP_CONTEXT; p++) any |= w[p] != 1.0f;
    if (!any) return; /* x 1 and a mean ratio of exactly 1: the same bits */
    double before = 0, after = 0;
    for (int p = 0; p < CLIPSKIP_CONTEXT; p++)
        for (int32_t j = 0; j < d; j++) {
            float *x = &z[p * ld + j];
            before += *x;
            *x *= w[p];
            after += *x;
        }
    const float s = (float)(before / after);
    for (int p = 0; p < CLIPSKIP_CONTEXT; p++)
        for (int32_t j = 0; j < d; j++) z[p * ld + j] *= s;
}
