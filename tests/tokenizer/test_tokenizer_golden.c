/* Every corpus prompt, every cleanup mode, against the reference tokenizers' ids
 * (tests/data/tokenizer/golden.txt.gz, from weights/gen_tokenizer_golden.py).
 *
 * Required: exact agreement with the reference, except where ftfy's mojibake repair (not
 * reproduced, docs/tokenizer.md) changes the reference's ids; the golden lists those prompts
 * with the ids the reference gives without that repair ("hf!"/"oc!"), and there the ids must
 * equal those. So the expected differences are exactly the listed ones, and they are reported.
 * Prints agreement per category and mode. */
#include "clipskip.h"
#include "corpus_io.h"
#include "test_util.h"

#define MAX_IDS 65536
#define N_CAT 64

enum { M_HF, M_OC, M_FAST, N_MODES };
static const char *MODE_TAG[N_MODES] = {"hf", "oc", "fast"};
static const clipskip_clean MODE_CLEAN[N_MODES] = {CLIPSKIP_CLEAN_HF, CLIPSKIP_CLEAN_OPENCLIP,
                                                   CLIPSKIP_CLEAN_HF_FAST};

typedef struct {
    char *ref[N_MODES];   /* golden lines */
    char *noenc[N_MODES]; /* "hf!" / "oc!" lines, or NULL */
} golden_item;

typedef struct {
    const char *name;
    long n, agree[N_MODES], expected[N_MODES], wrong[N_MODES];
} cat_stats;

static long read_golden(const char *path, golden_item **out, long n_prompts) {
    gzFile g = gzopen(path, "rb");
    if (!g) return -1;
    static char line[1 << 20];
    golden_item *items = calloc((size_t)n_prompts, sizeof *items);
    long cur = -1;
    while (gzgets(g, line, sizeof line)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\n') line[--l] = 0;
        if (line[0] == '#' || !l) continue;
        if (line[0] == 'P' && line[1] == ' ') {
            cur = atol(line + 2);
            if (cur < 0 || cur >= n_prompts) return -1;
            continue;
        }
        if (cur < 0) return -1;
        for (int m = 0; m < N_MODES; m++) {
            size_t t = strlen(MODE_TAG[m]);
            if (strncmp(line, MODE_TAG[m], t) == 0 && (line[t] == ' ' || line[t] == 0))
                items[cur].ref[m] = strdup(line);
            else if (strncmp(line, MODE_TAG[m], t) == 0 && line[t] == '!')
                items[cur].noenc[m] = strdup(line);
        }
    }
    gzclose(g);
    *out = items;
    return cur + 1;
}

static void show_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Arguments (optional, for larger differential runs): CORPUS GOLDEN. */
int main(int argc, char **argv) {
    const char *corpus = argc > 2 ? argv[1] : CS_TEST_DATA "/tokenizer/corpus.txt";
    const char *golden = argc > 2 ? argv[2] : CS_TEST_DATA "/tokenizer/golden.txt.gz";
    corpus_item *items;
    long n = corpus_read(corpus, &items);
    REQUIRE(n >= (argc > 2 ? 1 : 5000));
    golden_item *gold;
    long ng = read_golden(golden, &gold, n);
    REQUIRE(ng == n); /* golden and corpus belong together: regenerate both */

    clipskip_tokenizer *tok;
    REQUIRE(clipskip_tokenizer_load(NULL, &tok) == CLIPSKIP_OK);
    static int32_t got[MAX_IDS], want[MAX_IDS], alt[MAX_IDS];
    cat_stats cats[N_CAT];
    int n_cat = 0, shown = 0;
    long total_expected = 0;
    for (long i = 0; i < n; i++) {
        int c = 0;
        while (c < n_cat && strcmp(cats[c].name, items[i].category)) c++;
        if (c == n_cat) {
            REQUIRE(n_cat < N_CAT);
            memset(&cats[c], 0, sizeof cats[c]);
            cats[c].name = items[i].category;
            n_cat++;
        }
        cats[c].n++;
        for (int m = 0; m < N_MODES; m++) {
            REQUIRE(gold[i].ref[m]);
            size_t nw = parse_ids(gold[i].ref[m], want, MAX_IDS), ng2 = 0;
            clipskip_status st = clipskip_tokenize_raw(tok, items[i].text, items[i].len, MODE_CLEAN[m],
                                                       got, MAX_IDS, &ng2);
            int same = st == CLIPSKIP_OK && ng2 == nw && !memcmp(got, want, nw * sizeof *got);
            if (same) {
                cats[c].agree[m]++;
                continue;
            }
            if (gold[i].noenc[m]) {
                size_t na = parse_ids(gold[i].noenc[m], alt, MAX_IDS);
                if (st == CLIPSKIP_OK && ng2 == na && !memcmp(got, alt, na * sizeof *got)) {
                    cats[c].expected[m]++;
                    total_expected++;
                    continue;
                }
            }
            cats[c].wrong[m]++;
            if (shown++ < 20) {
                fprintf(stderr, "MISMATCH prompt %ld [%s] mode %s: \"%.*s\"\n", i, items[i].category,
                        MODE_TAG[m], (int)(items[i].len > 200 ? 200 : items[i].len), items[i].text);
                if (st != CLIPSKIP_OK) fprintf(stderr, "    error: %s\n", clipskip_last_error());
                show_ids("want", want, nw);
                show_ids("got ", got, ng2 < MAX_IDS ? ng2 : MAX_IDS);
            }
        }
    }
    printf("tokenizer agreement with the references, %ld prompts\n", n);
    printf("%-18s %6s | %-22s | %-22s | %-22s |\n", "category", "n", "hf (CLIPTok. + ftfy)",
           "openclip (SimpleTok.)", "hf-fast (Rust)");
    long tot[N_MODES] = {0}, tot_wrong = 0;
    for (int c = 0; c < n_cat; c++) {
        printf("%-18s %6ld |", cats[c].name, cats[c].n);
        for (int m = 0; m < N_MODES; m++) {
            char cell[64];
            int l = snprintf(cell, sizeof cell, "%6.2f%%", 100.0 * cats[c].agree[m] / cats[c].n);
            if (cats[c].expected[m])
                l += snprintf(cell + l, sizeof cell - (size_t)l, " (%ld mojibake)", cats[c].expected[m]);
            if (cats[c].wrong[m]) snprintf(cell + l, sizeof cell - (size_t)l, " %ld WRONG", cats[c].wrong[m]);
            printf(" %-22s |", cell);
            tot[m] += cats[c].agree[m];
            tot_wrong += cats[c].wrong[m];
        }
        printf("\n");
    }
    printf("%-18s %6ld | %21.3f%% | %21.3f%% | %21.3f%% |\n", "all", n, 100.0 * tot[0] / n, 100.0 * tot[1] / n,
           100.0 * tot[2] / n);
    printf("expected differences (ftfy mojibake repair, ids equal to the reference without it): %ld\n",
           total_expected);
    printf("unexpected differences: %ld\n", tot_wrong);
    CHECK(tot_wrong == 0);
    clipskip_tokenizer_free(tok);
    for (long i = 0; i < n; i++)
        for (int m = 0; m < N_MODES; m++) free(gold[i].ref[m]), free(gold[i].noenc[m]);
    free(gold);
    corpus_free(items, n);
    TEST_DONE("tokenizer_golden");
}
