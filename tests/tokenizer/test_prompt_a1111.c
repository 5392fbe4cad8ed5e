/* A1111 prompt syntax (host/prompt_a1111.c): the parser on webui's documented examples and on
 * the corner cases of its regex (BREAK, escapes, unbalanced brackets, merging), then the
 * chunks: 75 tokens each, the comma backtrack, BREAK, weights per token, OpenCLIP padding.
 * The weights are compared exactly: they are the doubles webui's Python computes. (Checked
 * once, 2026-11-27, against a Python transcription of webui 1.10's two functions, with HF's
 * tokenizer for the pieces: 40,000 random prompts and 6,000 long ones, 0 differences. The
 * transcription is not committed: it would be webui's code.) */
#include "prompt_a1111.h"
#include "test_util.h"

#include <stdlib.h>

typedef struct {
    const char *text;
    double weight;
} piece;

/* text parses into exactly the n pieces want. */
static void parses(const char *text, const piece *want, int n) {
    cs_wpieces w;
    clipskip_status st = cs_a1111_parse(text, strlen(text), &w);
    CHECK(st == CLIPSKIP_OK);
    if (st) return;
    int ok = w.n == n;
    for (int i = 0; ok && i < n; i++) ok = !strcmp(w.p[i].text, want[i].text) && w.p[i].weight == want[i].weight;
    if (!ok) {
        fprintf(stderr, "parse of \"%s\":", text);
        for (int i = 0; i < w.n; i++) fprintf(stderr, " [\"%s\", %.17g]", w.p[i].text, w.p[i].weight);
        fprintf(stderr, "\n");
    }
    CHECK(ok);
    cs_wpieces_free(&w);
}
#define PARSES(text, ...)                                                  \
    do {                                                                   \
        const piece want_[] = {__VA_ARGS__};                               \
        parses(text, want_, (int)(sizeof want_ / sizeof want_[0]));        \
    } while (0)

static void test_parse(void) {
    /* webui's docstring examples */
    PARSES("normal text", {"normal text", 1.0});
    PARSES("an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
    PARSES("(unbalanced", {"unbalanced", 1.1});
    PARSES("\\(literal\\]", {"(literal]", 1.0});
    PARSES("(unnecessary)(parens)", {"unnecessaryparens", 1.1});
    PARSES("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0}, {"house", 1.5730000000000004},
           {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006},
           {".", 1.1});
    /* BREAK: a whole word, whitespace around it taken; inside brackets or doubled it is text */
    PARSES("a BREAK b", {"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
    PARSES("a BREAK BREAK b", {"a", 1.0}, {"BREAK", -1.0}, {"", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
    PARSES("(a BREAK b)", {"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1});
    PARSES("BREAK", {"", 1.0}, {"BREAK", -1.0}, {"", 1.0});
    PARSES("aBREAK b", {"aBREAK b", 1.0});
    /* a weight without its "(", a lone backslash, mixed brackets, unclosed ones */
    PARSES("x:1.2)", {"x:1.2)", 1.0});
    PARSES("a\\b", {"ab", 1.0});
    PARSES("a (b:1.5) [c] ((d))", {"a ", 1.0}, {"b", 1.5}, {" ", 1.0}, {"c", 0.9090909090909091}, {" ", 1.0},
           {"d", 1.2100000000000002});
    PARSES("[[e]] (f", {"e", 0.8264462809917354}, {" ", 1.0}, {"f", 1.1});
    PARSES("(x : 0.5 )", {"x ", 0.5});
    PARSES("", {"", 1.0});
    cs_wpieces w;
    CHECK_ERR(cs_a1111_parse("(x:1.2.3)", 9, &w), CLIPSKIP_ERR_TEXT, "weight '1.2.3' at byte 3 is not a number");
    CHECK_ERR(cs_a1111_parse("(x:.)", 5, &w), CLIPSKIP_ERR_TEXT, "weight '.' at byte 3");
}

/* ---- chunks */

static clipskip_tokenizer *g_tok;

static cs_chunks chunks(const char *text, int32_t pad) {
    cs_chunks c;
    CHECK_OK(cs_a1111_chunks(g_tok, CLIPSKIP_CLEAN_HF, pad, text, strlen(text), &c));
    return c;
}

/* Chunk k holds the content ids want (n of them) and is framed and padded as webui frames it. */
static int chunk_is(const cs_chunks *c, int k, const int32_t *want, int n, int32_t pad) {
    const int32_t *ids = c->ids + (size_t)k * CLIPSKIP_CONTEXT;
    if (k >= c->n_chunks || ids[0] != CLIPSKIP_BOS || ids[n + 1] != CLIPSKIP_EOS) return 0;
    for (int i = 0; i < n; i++)
        if (ids[i + 1] != want[i]) return 0;
    for (int i = n + 2; i < CLIPSKIP_CONTEXT; i++)
        if (ids[i] != pad) return 0;
    return 1;
}

/* word appended n times to text */
static char *append_n(char *text, int n, const char *word) {
    for (int i = 0; i < n; i++) strcat(text, word);
    return text;
}

static void test_chunks(void) {
    enum { CAT = 2368, COMMA = 267, DOG = 1929 };
    int32_t want[80];
    char text[2048] = "";
    cs_chunks c = chunks(append_n(text, 80, "cat "), CLIPSKIP_EOS); /* 80 tokens: 75 + 5 */
    for (int i = 0; i < 80; i++) want[i] = CAT;
    CHECK(c.n_chunks == 2 && chunk_is(&c, 0, want, 75, CLIPSKIP_EOS) && chunk_is(&c, 1, want, 5, CLIPSKIP_EOS));
    cs_chunks_free(&c);

    /* 70 cats, a comma, 10 dogs: full at 70 + 1 + 4, the 4 dogs after the comma move on */
    text[0] = 0;
    append_n(append_n(text, 70, "cat "), 1, ",");
    append_n(text, 10, " dog");
    c = chunks(text, CLIPSKIP_EOS);
    for (int i = 0; i < 70; i++) want[i] = CAT;
    want[70] = COMMA;
    int32_t dogs[10];
    for (int i = 0; i < 10; i++) dogs[i] = DOG;
    CHECK(c.n_chunks == 2 && chunk_is(&c, 0, want, 71, CLIPSKIP_EOS) && chunk_is(&c, 1, dogs, 10, CLIPSKIP_EOS));
    cs_chunks_free(&c);

    /* a comma 21 tokens back is too far: the chunk is cut at 75 */
    text[0] = 0;
    append_n(append_n(append_n(text, 54, "cat "), 1, ", "), 25, "dog ");
    c = chunks(text, CLIPSKIP_EOS);
    CHECK(c.n_chunks == 2 && c.ids[75] == DOG && c.ids[55] == COMMA && chunk_is(&c, 1, dogs, 5, CLIPSKIP_EOS));
    cs_chunks_free(&c);

    /* BREAK, weights per token (float), OpenCLIP padding after the first EOS */
    c = chunks("(cat) dog BREAK [dog]", 0);
    const int32_t a[] = {CAT, DOG}, b[] = {DOG};
    CHECK(c.n_chunks == 2 && chunk_is(&c, 0, a, 2, 0) && chunk_is(&c, 1, b, 1, 0));
    CHECK(c.mult[0] == 1.0f && c.mult[1] == 1.1f && c.mult[2] == 1.0f && c.mult[3] == 1.0f);
    CHECK(c.mult[CLIPSKIP_CONTEXT + 1] == (float)(1 / 1.1) && c.mult[CLIPSKIP_CONTEXT + 2] == 1.0f);
    cs_chunks_free(&c);

    c = chunks("", CLIPSKIP_EOS); /* one empty chunk */
    CHECK(c.n_chunks == 1 && chunk_is(&c, 0, NULL, 0, CLIPSKIP_EOS));
    cs_chunks_free(&c);
    CHECK_ERR(cs_a1111_chunks(g_tok, CLIPSKIP_CLEAN_HF, 0, "a \xff (b)", 8, &c), CLIPSKIP_ERR_TEXT, "byte 2");
}

int main(void) {
    test_parse();
    REQUIRE(clipskip_tokenizer_load(NULL, &g_tok) == CLIPSKIP_OK);
    test_chunks();
    clipskip_tokenizer_free(g_tok);
    TEST_DONE("test_prompt_a1111");
}
