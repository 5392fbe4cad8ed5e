/* clipskip tokenize: prompts -> CLIP token ids (one line of output per prompt). */
#include "clipskip.h"
#include "cmds.h"
#include "dataset.h"
#include "opts.h"
#include "prompt_a1111.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int clean, pad, pad_family, json, raw, syntax;
    const char *file, *vocab;
} tok_args;

static cJSON *ids_json(const int32_t *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static cJSON *tokens_json(const clipskip_tokenizer *tok, const int32_t *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(clipskip_token_str(tok, ids[i])));
    return a;
}

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

/* --syntax a1111: the chunks of 77 ids one after another on one line, or in JSON the chunks
 * with each position's weight. */
static int one_a1111(const clipskip_tokenizer *tok, const tok_args *a, const char *text, size_t len,
                     const char *where, int32_t pad) {
    cs_chunks c;
    if (cs_a1111_chunks(tok, (clipskip_clean)a->clean, pad, text, len, &c) != CLIPSKIP_OK) {
        fprintf(stderr, "clipskip tokenize: %s: %s\n", where, clipskip_last_error());
        return 1;
    }
    const size_t n = (size_t)c.n_chunks * CLIPSKIP_CONTEXT;
    if (a->json) {
        cJSON *o = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(o, "ids"),
              *w = cJSON_AddArrayToObject(o, "weights");
        for (int32_t k = 0; k < c.n_chunks; k++) {
            cJSON_AddItemToArray(ids, ids_json(c.ids + (size_t)k * CLIPSKIP_CONTEXT, CLIPSKIP_CONTEXT));
            cJSON *wk = cJSON_CreateArray();
            for (int i = 0; i < CLIPSKIP_CONTEXT; i++)
                cJSON_AddItemToArray(wk, cJSON_CreateNumber(c.mult[(size_t)k * CLIPSKIP_CONTEXT + i]));
            cJSON_AddItemToArray(w, wk);
        }
        cJSON_AddNumberToObject(o, "chunks", c.n_chunks);
        print_json(o);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", c.ids[i]);
        putchar('\n');
    }
    cs_chunks_free(&c);
    return 0;
}

/* One prompt; returns 0 on success, 1 after printing the error. */
static int one(const clipskip_tokenizer *tok, const tok_args *a, const char *text, size_t len,
               const char *where) {
    int32_t pad = a->pad >= 0 ? a->pad : a->pad_family == 0 ? CLIPSKIP_EOS : 0;
    if (a->syntax) return one_a1111(tok, a, text, len, where, pad);
    if (a->raw) {
        size_t n = 0;
        clipskip_status st = clipskip_tokenize_raw(tok, text, len, (clipskip_clean)a->clean, NULL, 0, &n);
        int32_t *ids = st == CLIPSKIP_OK ? malloc((n ? n : 1) * sizeof *ids) : NULL;
        if (st == CLIPSKIP_OK && !ids) st = CLIPSKIP_ERR_NOMEM;
        if (st == CLIPSKIP_OK)
            st = clipskip_tokenize_raw(tok, text, len, (clipskip_clean)a->clean, ids, n, &n);
        if (st != CLIPSKIP_OK) {
            fprintf(stderr, "clipskip tokenize: %s: %s\n", where, clipskip_last_error());
            free(ids);
            return 1;
        }
        if (a->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "tokens", tokens_json(tok, ids, n));
            cJSON_AddItemToObject(o, "ids", ids_json(ids, n));
            cJSON_AddNumberToObject(o, "n_tokens", (double)n);
            print_json(o);
        } else {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            putchar('\n');
        }
        free(ids);
        return 0;
    }
    int32_t ids[CLIPSKIP_CONTEXT];
    clipskip_token_info info;
    if (clipskip_tokenize(tok, text, len, (clipskip_clean)a->clean, pad, ids, &info) != CLIPSKIP_OK) {
        fprintf(stderr, "clipskip tokenize: %s: %s\n", where, clipskip_last_error());
        return 1;
    }
    if (info.truncated)
        fprintf(stderr, "clipskip tokenize: %s: truncated: %d of %d tokens dropped (75 fit)\n", where,
                info.truncated, info.n_tokens);
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "tokens", tokens_json(tok, ids, CLIPSKIP_CONTEXT));
        cJSON_AddItemToObject(o, "ids", ids_json(ids, CLIPSKIP_CONTEXT));
        cJSON_AddNumberToObject(o, "eos_pos", info.eos_pos);
        cJSON_AddNumberToObject(o, "n_tokens", info.n_tokens);
        cJSON_AddNumberToObject(o, "truncated", info.truncated);
        print_json(o);
    } else {
        for (int i = 0; i < CLIPSKIP_CONTEXT; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    return 0;
}

/* Every line of path ("-": stdin) is one prompt. */
static int lines(const clipskip_tokenizer *tok, const tok_args *a, const char *path) {
    cs_dataset *ds = cs_ds_open(path, "lines", NULL, NULL);
    if (!ds) return 1;
    int bad = 0, rc;
    cs_ds_record rec;
    while ((rc = cs_ds_next(ds, &rec)) > 0) {
        char where[600];
        snprintf(where, sizeof where, "%s:%llu", cs_ds_name(ds), (unsigned long long)rec.line);
        bad |= one(tok, a, rec.text, rec.len, where);
    }
    cs_ds_close(ds);
    return bad | (rc < 0);
}

int cs_cmd_tokenize(int argc, char **argv) {
    tok_args a = {.clean = 0, .pad = -1, .pad_family = 0};
    const cs_opt opts[] = {
        {"clean", CS_OPT_CHOICE, &a.clean, NULL,
         "text cleanup: hf = transformers CLIPTokenizer + ftfy (diffusers, A1111 SD1, ComfyUI); "
         "openclip = open_clip (+ HTML unescape, A1111 SD2/SDXL-G); hf-fast = CLIPTokenizerFast",
         "hf|openclip|hf-fast", 0, 0},
        {"pad", CS_OPT_INT, &a.pad, "ID", "padding id after EOS (-1: from --pad-family)", NULL, -1,
         CLIPSKIP_VOCAB - 1},
        {"pad-family", CS_OPT_CHOICE, &a.pad_family, NULL,
         "padding of the tower: clip-l pads with EOS 49407, openclip with 0", "clip-l|openclip", 0, 0},
        {"file", CS_OPT_STR, &a.file, "FILE", "read prompts from FILE, one per line (- for stdin)",
         NULL, 0, 0},
        {"vocab", CS_OPT_STR, &a.vocab, "PATH",
         "bpe_simple_vocab_16e6.txt(.gz) or a tokenizer/ folder (vocab.json + merges.txt); "
         "default: built in", NULL, 0, 0},
        {"json", CS_OPT_FLAG, &a.json, NULL, "one JSON object per prompt: tokens, ids, eos_pos, "
         "n_tokens, truncated", NULL, 0, 0},
        {"raw", CS_OPT_FLAG, &a.raw, NULL, "the whole id stream without BOS/EOS/padding or truncation",
         NULL, 0, 0},
        {"syntax", CS_OPT_CHOICE, &a.syntax, NULL, "plain, or a1111: webui's emphasis and BREAK, every "
         "chunk of 77 ids (JSON: ids and weights per chunk)", "plain|a1111", 0, 0},
        {NULL, 0, NULL, NULL, NULL, NULL, 0, 0},
    };
    const cs_cli cli = {
        "tokenize", "[options] [PROMPT...]   (- reads prompts from stdin, one per line)",
        "Prints the 77 ids of each prompt (BOS, up to 75 tokens, EOS, padding) on one line.\n"
        "Truncation is reported on stderr.",
        opts};
    char **pos = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    int n_pos = 0;
    if (!pos) return CS_EXIT_FAIL;
    int rc = cs_opts_parse(&cli, argc, argv, pos, &n_pos);
    if (rc >= 0) {
        free(pos);
        return rc;
    }
    if (a.syntax && a.raw) {
        fprintf(stderr, "clipskip tokenize: --raw and --syntax a1111 do not combine\n");
        free(pos);
        return CS_EXIT_USAGE;
    }
    if (n_pos == 0 && !a.file) {
        fprintf(stderr, "clipskip tokenize: give prompts, --file FILE, or - to read stdin "
                        "(see clipskip tokenize --help)\n");
        free(pos);
        return CS_EXIT_USAGE;
    }
    clipskip_tokenizer *tok;
    if (clipskip_tokenizer_load(a.vocab, &tok) != CLIPSKIP_OK) {
        fprintf(stderr, "clipskip tokenize: %s\n", clipskip_last_error());
        free(pos);
        return CS_EXIT_FAIL;
    }
    int bad = 0;
    if (a.file) bad |= lines(tok, &a, a.file);
    for (int i = 0; i < n_pos; i++) {
        if (!strcmp(pos[i], "-")) {
            bad |= lines(tok, &a, "-");
        } else {
            char where[32];
            snprintf(where, sizeof where, "prompt %d", i + 1);
            bad |= one(tok, &a, pos[i], strlen(pos[i]), where);
        }
    }
    clipskip_tokenizer_free(tok);
    free(pos);
    return bad ? CS_EXIT_FAIL : CS_EXIT_OK;
}
