/* The CLIP tokenizer: public API, special-token handling and the pre-tokenizer.
 *
 *   text --check UTF-8--> (HF: split off literal special tokens) --cs_clean--> cleaned, lowercased
 *        --pre-tokenize--> words --cs_bpe_word (cached)--> ids
 *
 * The pre-tokenizer is the regex every reference uses,
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * run as findall: at each position the first alternative that matches wins; characters no
 * alternative matches are skipped. The Python references compile it with IGNORECASE, which on
 * lowercased text means: a letter of the pattern also matches characters that case-fold to it
 * (ſ matches s), and U+0345 (whose case partner is a letter) matches no alternative at all.
 * open_clip spells its special tokens <start_of_text> / <end_of_text>; HF's Rust tokenizer has
 * no special alternative (it splits special tokens off before). A word the special alternative
 * matched becomes the special id only when it is exactly the special string (the references'
 * BPE cache is seeded with those strings); otherwise it is merged like any word. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define CS_SOT "<|startoftext|>"
#define CS_EOT "<|endoftext|>"

enum { K_SPACE, K_LETTER, K_NUMBER, K_OTHER, K_DROP };

typedef struct {
    const char *special[2]; /* strings the special alternative matches (NULL: none) */
    int fold;               /* Python regex IGNORECASE semantics */
} pretok_mode;

static const pretok_mode MODE_HF = {{CS_SOT, CS_EOT}, 1};
static const pretok_mode MODE_OPENCLIP = {{"<start_of_text>", "<end_of_text>"}, 1};
static const pretok_mode MODE_FAST = {{NULL, NULL}, 0};

/* ------------------------------------------------------------ character classes */

static const uint8_t ASCII_KIND[128] = {
    ['\t'] = K_SPACE + 1, ['\n'] = K_SPACE + 1, ['\v'] = K_SPACE + 1, ['\f'] = K_SPACE + 1,
    ['\r'] = K_SPACE + 1, [' '] = K_SPACE + 1,
};

static int ascii_kind(uint8_t c) {
    if (ASCII_KIND[c]) return ASCII_KIND[c] - 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return K_LETTER;
    if (c >= '0' && c <= '9') return K_NUMBER;
    return K_OTHER;
}

static int is_letter_cat(utf8proc_category_t k) {
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

/* Kind of a non-ASCII code point: \s is White_Space (Zs, Zl, Zp, U+0085). Under IGNORECASE a
 * character that is neither letter nor number but whose case partner is a letter matches none
 * of [\p{L}]+, [\p{N}] and [^\s\p{L}\p{N}]+ (utf8proc's data: only U+0345). */
static int cp_kind(uint32_t c, int fold) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (is_letter_cat(k)) return K_LETTER;
    if (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO) return K_NUMBER;
    if (k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP || c == 0x85)
        return K_SPACE;
    if (fold) {
        utf8proc_int32_t i = (utf8proc_int32_t)c, u = utf8proc_toupper(i), l = utf8proc_tolower(i),
                         t = utf8proc_totitle(i);
        if ((u != i && is_letter_cat(utf8proc_category(u))) || (l != i && is_letter_cat(utf8proc_category(l))) ||
            (t != i && is_letter_cat(utf8proc_category(t))))
            return K_DROP;
    }
    return K_OTHER;
}

static uint32_t next_cp(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t c = s[i];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    utf8proc_int32_t cp = 0xFFFD;
    utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
    *len = l > 0 ? (size_t)l : 1;
    return (uint32_t)cp;
}

static int kind_at(const uint8_t *s, size_t n, size_t i, int fold, size_t *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_kind(s[i]);
    }
    return cp_kind(next_cp(s, n, i, len), fold);
}

/* Does the character at s[i] match the ASCII pattern letter x? Under IGNORECASE also when its
 * simple case folding is x (ſ -> s, K -> k). Advances *len over it. */
static int match_char(const uint8_t *s, size_t n, size_t i, char x, int fold, size_t *len) {
    if (i >= n) return 0;
    if (s[i] < 0x80) {
        *len = 1;
        return s[i] == (uint8_t)x;
    }
    uint32_t c = next_cp(s, n, i, len);
    if (!fold || !((x | 0x20) >= 'a' && (x | 0x20) <= 'z')) return 0;
    utf8proc_int32_t f[4];
    utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)c, f, 4, UTF8PROC_CASEFOLD, NULL);
    return m == 1 && f[0] == (utf8proc_int32_t)(unsigned char)x;
}

/* Length in bytes of a match of the ASCII string p at s[i], or 0. */
static size_t match_str(const uint8_t *s, size_t n, size_t i, const char *p, int fold) {
    size_t j = i, l;
    for (; *p; p++, j += l)
        if (!match_char(s, n, j, *p, fold, &l)) return 0;
    return j - i;
}

/* ------------------------------------------------------------ pre-tokenizer */

static int emit_word(const clipskip_tokenizer *tok, const pretok_mode *m, const uint8_t *w, size_t n,
                     cs_ids *out) {
    for (int k = 0; k < 2 && m->special[k] && w[0] == '<'; k++)
        if (strlen(m->special[k]) == n && memcmp(w, m->special[k], n) == 0)
            return cs_ids_push(out, k ? CLIPSKIP_EOS : CLIPSKIP_BOS);
    return cs_bpe_word(tok, w, n, out);
}

static clipskip_status pretokenize(const clipskip_tokenizer *tok, const pretok_mode *m,
                                   const uint8_t *s, size_t n, cs_ids *out) {
    static const char *const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    size_t i = 0, l;
    while (i < n) {
        size_t start = i, len = 0;
        if (s[i] == '<' && m->special[0]) {
            for (int k = 0; k < 2 && !len; k++) len = match_str(s, n, i, m->special[k], m->fold);
        } else if (s[i] == '\'') {
            for (int k = 0; k < 7 && !len; k++) {
                size_t c = match_str(s, n, i + 1, contractions[k], m->fold);
                if (c) len = 1 + c;
            }
        }
        if (len) {
            i += len;
        } else {
            int kind = kind_at(s, n, i, m->fold, &l);
            i += l;
            if (kind == K_SPACE || kind == K_DROP) continue;
            if (kind == K_LETTER || kind == K_OTHER) {
                while (i < n && kind_at(s, n, i, m->fold, &l) == kind) i += l;
            }
        }
        if (!emit_word(tok, m, s + start, i - start, out)) return clipskip_last_status();
    }
    return CLIPSKIP_OK;
}

/* Clean, then pre-tokenize; the fast mode's special tokens are split off the cleaned text. */
static clipskip_status clean_and_split(const clipskip_tokenizer *tok, clipskip_clean clean,
                                       const uint8_t *s, size_t n, cs_ids *out) {
    uint8_t stack[2048];
    cs_bytes c = {stack, 0, sizeof stack, 0};
    clipskip_status st = cs_clean(tok, clean, s, n, &c);
    if (st == CLIPSKIP_OK && clean == CLIPSKIP_CLEAN_OPENCLIP) {
        st = pretokenize(tok, &MODE_OPENCLIP, c.p, c.n, out);
    } else if (st == CLIPSKIP_OK && clean == CLIPSKIP_CLEAN_HF) {
        st = pretokenize(tok, &MODE_HF, c.p, c.n, out);
    } else if (st == CLIPSKIP_OK) { /* HF fast: added tokens matched on the normalized text */
        size_t a = 0;
        for (size_t i = 0; i < c.n && st == CLIPSKIP_OK;) {
            const uint8_t *lt = memchr(c.p + i, '<', c.n - i);
            if (!lt) break;
            i = (size_t)(lt - c.p);
            size_t ls = strlen(CS_SOT), le = strlen(CS_EOT);
            int32_t id = c.n - i >= ls && !memcmp(lt, CS_SOT, ls)   ? CLIPSKIP_BOS
                         : c.n - i >= le && !memcmp(lt, CS_EOT, le) ? CLIPSKIP_EOS
                                                                    : -1;
            if (id < 0) {
                i++;
                continue;
            }
            st = pretokenize(tok, &MODE_FAST, c.p + a, i - a, out);
            if (st == CLIPSKIP_OK && !cs_ids_push(out, id)) st = CLIPSKIP_ERR_NOMEM;
            i += id == CLIPSKIP_BOS ? ls : le;
            a = i;
        }
        if (st == CLIPSKIP_OK) st = pretokenize(tok, &MODE_FAST, c.p + a, c.n - a, out);
    }
    cs_bytes_free(&c);
    return st;
}

/* The whole id stream of one prompt. */
static clipskip_status tokenize_ids(const clipskip_tokenizer *tok, const char *text, size_t len,
                                    clipskip_clean clean, cs_ids *out) {
    cs_error_clear();
    if (!tok) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize: tokenizer is NULL");
    if (!text && len) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize: text is NULL, length %zu", len);
    if (clean != CLIPSKIP_CLEAN_HF && clean != CLIPSKIP_CLEAN_OPENCLIP && clean != CLIPSKIP_CLEAN_HF_FAST)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize: cleanup mode %d is not one of 0 (hf), "
                       "1 (openclip), 2 (hf-fast)", (int)clean);
    if (len > CLIPSKIP_MAX_PROMPT_BYTES)
        return cs_fail(CLIPSKIP_ERR_TOO_LARGE, "tokenize: prompt of %zu bytes is over the limit of %u bytes",
                       len, CLIPSKIP_MAX_PROMPT_BYTES);
    const uint8_t *s = (const uint8_t *)text;
    clipskip_status st = cs_utf8_check(s, len);
    if (st != CLIPSKIP_OK || clean != CLIPSKIP_CLEAN_HF) return st ? st : clean_and_split(tok, clean, s, len, out);
    /* transformers splits the raw text on its added tokens before _tokenize (ftfy etc.) */
    size_t a = 0;
    for (size_t i = 0; i < len && st == CLIPSKIP_OK;) {
        const uint8_t *lt = memchr(s + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - s);
        size_t ls = strlen(CS_SOT), le = strlen(CS_EOT);
        int32_t id = len - i >= ls && !memcmp(lt, CS_SOT, ls)   ? CLIPSKIP_BOS
                     : len - i >= le && !memcmp(lt, CS_EOT, le) ? CLIPSKIP_EOS
                                                                : -1;
        if (id < 0) {
            i++;
            continue;
        }
        if (i > a) st = clean_and_split(tok, clean, s + a, i - a, out);
        if (st == CLIPSKIP_OK && !cs_ids_push(out, id)) st = CLIPSKIP_ERR_NOMEM;
        i += id == CLIPSKIP_BOS ? ls : le;
        a = i;
    }
    if (st == CLIPSKIP_OK && a < len) st = clean_and_split(tok, clean, s + a, len - a, out);
    return st;
}

/* ------------------------------------------------------------ public API */

clipskip_status clipskip_tokenizer_load(const char *path, clipskip_tokenizer **out) {
    cs_error_clear();
    if (!out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "clipskip_tokenizer_load: out is NULL");
    *out = NULL;
    clipskip_tokenizer *tok = cs_calloc(1, sizeof *tok);
    if (!tok) return CLIPSKIP_ERR_NOMEM;
    clipskip_status st = cs_vocab_load(tok, path);
    if (st == CLIPSKIP_OK && !(tok->cache = cs_word_cache_new())) st = CLIPSKIP_ERR_NOMEM;
    if (st != CLIPSKIP_OK) {
        clipskip_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return CLIPSKIP_OK;
}

void clipskip_tokenizer_free(clipskip_tokenizer *tok) {
    if (!tok) return;
    cs_vocab_free(tok);
    cs_word_cache_free(tok->cache);
    free(tok);
}

clipskip_status clipskip_tokenize_raw(const clipskip_tokenizer *tok, const char *text, size_t len,
                                      clipskip_clean clean, int32_t *ids, size_t cap,
                                      size_t *n_out) {
    if (cap && !ids) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize_raw: ids is NULL, cap %zu", cap);
    cs_ids v;
    cs_ids_init(&v);
    clipskip_status st = tokenize_ids(tok, text, len, clean, &v);
    if (st == CLIPSKIP_OK) {
        if (cap) memcpy(ids, v.p, (v.n < cap ? v.n : cap) * sizeof *ids);
        if (n_out) *n_out = v.n;
    }
    cs_ids_free(&v);
    return st;
}

clipskip_status clipskip_tokenize(const clipskip_tokenizer *tok, const char *text, size_t len,
                                  clipskip_clean clean, int32_t pad_id,
                                  int32_t ids[CLIPSKIP_CONTEXT], clipskip_token_info *info) {
    if (!ids) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize: ids is NULL");
    if (pad_id < 0 || pad_id >= CLIPSKIP_VOCAB)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tokenize: pad id %d is outside 0..%d", pad_id,
                       CLIPSKIP_VOCAB - 1);
    cs_ids v;
    cs_ids_init(&v);
    clipskip_status st = tokenize_ids(tok, text, len, clean, &v);
    if (st == CLIPSKIP_OK) {
        int32_t n = v.n > CLIPSKIP_MAX_CONTENT ? CLIPSKIP_MAX_CONTENT : (int32_t)v.n;
        ids[0] = CLIPSKIP_BOS;
        memcpy(ids + 1, v.p, (size_t)n * sizeof *ids);
        ids[n + 1] = CLIPSKIP_EOS;
        for (int32_t k = n + 2; k < CLIPSKIP_CONTEXT; k++) ids[k] = pad_id;
        if (info) {
            info->n_tokens = v.n > INT32_MAX ? INT32_MAX : (int32_t)v.n;
            info->truncated = info->n_tokens - n;
            info->eos_pos = n + 1;
            for (int32_t k = 1; k <= n; k++)
                if (ids[k] == CLIPSKIP_EOS) {
                    info->eos_pos = k;
                    break;
                }
        }
    }
    cs_ids_free(&v);
    return st;
}

/* Python bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal invalid subpart. */
static int decode_replace(const uint8_t *s, size_t n, cs_u32s *out) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                                 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        size_t k = 1;
        uint8_t lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        while (k < need && i + k < n && s[i + k] >= (k == 1 ? lo : 0x80) && s[i + k] <= (k == 1 ? hi : 0xBF)) k++;
        if (!cs_u32s_reserve(out, out->n + 1)) return 0;
        if (need && k == need) {
            size_t l;
            out->p[out->n++] = next_cp(s, n, i, &l);
        } else {
            out->p[out->n++] = 0xFFFD;
        }
        i += need && k == need ? need : k;
    }
    return 1;
}

clipskip_status clipskip_decode(const clipskip_tokenizer *tok, const int32_t *ids, size_t n,
                                char *buf, size_t cap, size_t *len_out) {
    cs_error_clear();
    if (!tok || (n && !ids) || (cap && !buf))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "decode: %s is NULL",
                       !tok ? "tokenizer" : (n && !ids) ? "ids" : "buf");
    cs_bytes raw = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab) {
            cs_bytes_free(&raw);
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "decode: ids[%zu] = %d is outside 0..%d", i, id,
                           tok->n_vocab - 1);
        }
        if (id == CLIPSKIP_BOS || id == CLIPSKIP_EOS) continue;
        size_t l = tok->raw_off[id + 1] - tok->raw_off[id];
        if (!cs_bytes_reserve(&raw, raw.n + l + 1)) {
            cs_bytes_free(&raw);
            return CLIPSKIP_ERR_NOMEM;
        }
        memcpy(raw.p + raw.n, tok->raw_pool + tok->raw_off[id], l);
        raw.n += l;
    }
    size_t m = 0; /* "</w>" -> " " */
    for (size_t i = 0; i < raw.n;) {
        if (raw.n - i >= 4 && memcmp(raw.p + i, "</w>", 4) == 0) {
            raw.p[m++] = ' ';
            i += 4;
        } else {
            raw.p[m++] = raw.p[i++];
        }
    }
    raw.n = m;
    cs_u32s cp = {0};
    cs_bytes text = {0};
    clipskip_status st = CLIPSKIP_OK;
    if (!cs_u32s_reserve(&cp, 1) || !decode_replace(raw.p, raw.n, &cp)) st = CLIPSKIP_ERR_NOMEM;
    size_t a = 0, b = cp.n;
    while (a < b && cs_py_isspace(cp.p[a])) a++;
    while (b > a && cs_py_isspace(cp.p[b - 1])) b--;
    if (st == CLIPSKIP_OK && !cs_utf8_encode(cp.p + a, b - a, &text)) st = CLIPSKIP_ERR_NOMEM;
    if (st == CLIPSKIP_OK) {
        if (cap) {
            size_t k = text.n < cap - 1 ? text.n : cap - 1;
            memcpy(buf, text.p, k);
            buf[k] = 0;
        }
        if (len_out) *len_out = text.n;
    }
    cs_bytes_free(&raw);
    cs_bytes_free(&text);
    cs_u32s_free(&cp);
    return st;
}

const char *clipskip_token_str(const clipskip_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    return tok->str_pool + tok->str_off[id];
}

int32_t clipskip_token_id(const clipskip_tokenizer *tok, const char *str) {
    if (!tok || !str) return -1;
    return cs_vocab_lookup(tok, str, strlen(str));
}
