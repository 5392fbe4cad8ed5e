/* libFuzzer target: the tokenizer on arbitrary bytes (see CMakeLists.txt for how to run it).
 * Byte 0 selects the cleanup mode and the padding id; the rest is the prompt. Checks, besides
 * the sanitizers: only CLIPSKIP_ERR_TEXT rejects a prompt, and only when it is invalid UTF-8, has
 * a NUL, or nests entities too deep; ids are in 0..49407; the 77-id sequence, the raw stream,
 * truncation count and EOS position agree; a second call (cached words) gives the same ids;
 * decode accepts the ids. */
#include "clipskip.h"
#include "prompt_a1111.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), abort())

static clipskip_tokenizer *TOK;

static int valid_utf8_no_nul(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c >= 0x01 && c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            uint8_t lo = 0x80, hi = 0xBF;
            if (k == 1 && c == 0xE0) lo = 0xA0;
            if (k == 1 && c == 0xED) hi = 0x9F;
            if (k == 1 && c == 0xF0) lo = 0x90;
            if (k == 1 && c == 0xF4) hi = 0x8F;
            if (s[i + k] < lo || s[i + k] > hi) return 0;
        }
        i += len;
    }
    return 1;
}

/* The A1111 chunks of valid text: only a weight that is not a number fails, or a piece whose
 * HTML entities nest too deep alone (a piece is cleaned alone, as webui does); every chunk is
 * BOS, ids in range, an EOS; without syntax characters, BREAK or an in-text EOS, the chunks'
 * tokens in order are the raw ids (the comma backtrack moves tokens, never drops them). */
static void check_a1111(const char *text, size_t len, clipskip_clean mode, int32_t pad, const int32_t *raw, size_t n) {
    cs_chunks c;
    clipskip_status st = cs_a1111_chunks(TOK, mode, pad, text, len, &c);
    if (st != CLIPSKIP_OK) {
        if (st != CLIPSKIP_ERR_TEXT || (!strstr(clipskip_last_error(), "is not a number") &&
                                        !strstr(clipskip_last_error(), "still changing")))
            FAIL("a1111: %s: %s", clipskip_status_str(st), clipskip_last_error());
        return;
    }
    int plain = !memchr(text, 'B', len);
    for (size_t i = 0; i < len; i++) plain &= !strchr("()[]\\:", text[i]) || !text[i];
    for (size_t i = 0; i < n; i++) plain &= raw[i] != CLIPSKIP_EOS;
    size_t k = 0;
    for (int32_t ch = 0; ch < c.n_chunks; ch++) {
        const int32_t *ids = c.ids + (size_t)ch * 77;
        if (ids[0] != CLIPSKIP_BOS) FAIL("a1111: chunk %d has no BOS", ch);
        int p = 1;
        for (; p < 77 && ids[p] != CLIPSKIP_EOS; p++) {
            if (ids[p] < 0 || ids[p] >= CLIPSKIP_VOCAB) FAIL("a1111: id %d", ids[p]);
            if (plain && (k >= n || raw[k++] != ids[p])) FAIL("a1111: chunk tokens are not the raw ids");
        }
        if (p == 77) FAIL("a1111: chunk %d has no EOS", ch);
    }
    if (plain && k != n) FAIL("a1111: %zu of %zu raw ids in the chunks", k, n);
    cs_chunks_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!TOK && clipskip_tokenizer_load(NULL, &TOK) != CLIPSKIP_OK) FAIL("load: %s", clipskip_last_error());
    if (size < 1) return 0;
    clipskip_clean mode = (clipskip_clean)(data[0] % 3);
    int32_t pad = data[0] & 0x80 ? 0 : CLIPSKIP_EOS;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    size_t n = 0;
    clipskip_status st = clipskip_tokenize_raw(TOK, text, len, mode, NULL, 0, &n);
    int valid = valid_utf8_no_nul((const uint8_t *)text, len);
    if (st != CLIPSKIP_OK) {
        if (st != CLIPSKIP_ERR_TEXT) FAIL("status %s: %s", clipskip_status_str(st), clipskip_last_error());
        if (valid && !strstr(clipskip_last_error(), "still changing"))
            FAIL("valid text rejected: %s", clipskip_last_error());
        int32_t seq[77];
        if (clipskip_tokenize(TOK, text, len, mode, pad, seq, NULL) != st) FAIL("tokenize disagrees on the error");
        return 0;
    }
    if (!valid) FAIL("invalid UTF-8 or NUL accepted");
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids), *again = malloc((n ? n : 1) * sizeof *ids);
    size_t n2 = 0, n3 = 0;
    if (clipskip_tokenize_raw(TOK, text, len, mode, ids, n, &n2) != CLIPSKIP_OK || n2 != n) FAIL("raw count changed");
    if (clipskip_tokenize_raw(TOK, text, len, mode, again, n, &n3) != CLIPSKIP_OK || n3 != n ||
        memcmp(ids, again, n * sizeof *ids))
        FAIL("not deterministic");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= CLIPSKIP_VOCAB) FAIL("id %d out of range", ids[i]);
    int32_t seq[77];
    clipskip_token_info info;
    if (clipskip_tokenize(TOK, text, len, mode, pad, seq, &info) != CLIPSKIP_OK) FAIL("tokenize failed after raw");
    size_t keep = n < 75 ? n : 75;
    if (seq[0] != CLIPSKIP_BOS || memcmp(seq + 1, ids, keep * sizeof *ids) || seq[keep + 1] != CLIPSKIP_EOS)
        FAIL("sequence is not BOS + ids[:75] + EOS");
    for (size_t i = keep + 2; i < 77; i++)
        if (seq[i] != pad) FAIL("padding");
    if ((size_t)info.n_tokens != n || (size_t)info.truncated != n - keep) FAIL("truncation count");
    size_t eos = keep + 1;
    for (size_t i = 1; i <= keep; i++)
        if (seq[i] == CLIPSKIP_EOS) { eos = i; break; }
    if ((size_t)info.eos_pos != eos) FAIL("eos_pos");
    char buf[256];
    size_t dl;
    if (clipskip_decode(TOK, ids, n, buf, sizeof buf, &dl) != CLIPSKIP_OK) FAIL("decode: %s", clipskip_last_error());
    check_a1111(text, len, mode, pad, ids, n);
    free(ids);
    free(again);
    return 0;
}
