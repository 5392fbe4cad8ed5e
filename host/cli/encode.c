/* clipskip encode: prompts in, conditioning tensors out (.npy / .safetensors / a summary). */
#include "cmds.h"
#include "internal.h"
#include "common.h"
#include "encode_dataset.h"
#include "encode_out.h"
#include "opts.h"
#include "prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *vocab, *file, *out, *tower;
    const char *out_dir, *input_format, *field, *column;
    int shard_size, shard_format, resume, on_error;
    int random, clip_skip, layer, final_ln, pooled, text_embeds, no_hidden, dtype, backend;
    int batch, threads, clean, quiet, syntax;
} encode_args;

static const char *const SYNTAX_NAMES[] = {"plain", "a1111"};

static const char *DESCRIPTION =
    "Encode prompts (arguments, --file, or stdin one per line) with a CLIP text tower and\n"
    "write the hidden states at the requested CLIP-skip depth (layers past it are never run).\n"
    "--clip-skip uses the A1111 convention: 1 = all layers, 2 = stop one layer early\n"
    "(penultimate), valid 1..L; 0 = the model's default (SD1: 1; SD2, SDXL: 2).\n"
    "ComfyUI's CLIPSetLastLayer -N is --layer -N; diffusers clip_skip=k is --clip-skip k+1\n"
    "(SDXL: k+2). Without --out, a summary of each output is printed.\n"
    "--out FILE.safetensors holds every output asked (hidden_states, pooled, text_embeds)\n"
    "and the options in its metadata; FILE.npy holds hidden_states, and other outputs go\n"
    "beside it as FILE.pooled.npy / FILE.text_embeds.npy. Files are written atomically.\n"
    "--out-dir DIR streams a dataset of any size (--file: lines, JSONL, CSV/TSV) into shards of\n"
    "--shard-size rows with a manifest (input record -> shard, row); --resume continues a\n"
    "killed run with byte-identical results (docs/offline.md). SDXL files give the SDXL\n"
    "conditioning: hidden (B,77,2048) from both towers, pooled 1280 with --text-embeds.";

static int resolve_skip(const encode_args *a) {
    if (a->layer > 0) {
        fprintf(stderr, "clipskip encode: --layer takes ComfyUI's negative numbers (-1 = last "
                        "layer, -2 = penultimate), not %d\n", a->layer);
        return -1;
    }
    if (a->layer < 0 && a->clip_skip && a->clip_skip != -a->layer) {
        fprintf(stderr, "clipskip encode: --clip-skip %d and --layer %d disagree (--layer -N "
                        "is --clip-skip N)\n", a->clip_skip, a->layer);
        return -1;
    }
    return a->layer < 0 ? -a->layer : a->clip_skip;
}

static int resolve_tower(const clipskip_model *m, const char *tower) {
    if (!tower || !strcmp(tower, "auto"))
        return clipskip_model_n_towers(m) > 1 ? CLIPSKIP_TOWER_ALL : 0;
    if (!strcmp(tower, "all")) return CLIPSKIP_TOWER_ALL;
    char *end;
    long t = strtol(tower, &end, 10);
    if (*end || end == tower || t < 0 || t >= clipskip_model_n_towers(m)) {
        fprintf(stderr, "clipskip encode: --tower %s: the model has %d tower(s): use 0..%d, all "
                        "or auto\n", tower, clipskip_model_n_towers(m), clipskip_model_n_towers(m) - 1);
        return -2;
    }
    return (int)t;
}

/* Every prompt tokenized as the encode calls will (each tower's cleanup) before any is
 * encoded, so a bad line fails at once, named by where it came from (FILE:LINE), not after
 * the lines before it were encoded and by its index inside a call. *chunks: the most 77-token
 * chunks a prompt takes under the syntax (1 for plain), which every prompt's output gets. */
static clipskip_status check_prompts(const clipskip_model *m, const clipskip_encode_options *o,
                                     clipskip_prompt_style style, const cs_prompts *p, int32_t *chunks) {
    char where[600];
    *chunks = 1;
    for (size_t i = 0; i < p->n; i++) {
        int32_t k;
        const clipskip_status st = clipskip_prompt_chunks(m, p->text[i], o, style, &k);
        if (st) {
            cs_error_prefix("%s: ", cs_prompts_where(p, i, where, sizeof where));
            return st;
        }
        if (k > *chunks) *chunks = k;
    }
    return CLIPSKIP_OK;
}

/* Encode all prompts in calls of a->batch rows, with progress on stderr for long inputs. */
static clipskip_status encode_all(clipskip_encoder *enc, const cs_prompts *p,
                                  const clipskip_encode_options *o, const encode_args *a,
                                  cs_encode_result *r) {
    size_t esz = o->out_dtype == CLIPSKIP_DTYPE_F32 ? 4 : 2;
    double t0 = cs_now(), last = t0;
    for (size_t i = 0; i < p->n; i += (size_t)a->batch) {
        int32_t n = (int32_t)(p->n - i < (size_t)a->batch ? p->n - i : (size_t)a->batch);
        clipskip_outputs out = {
            r->hidden ? r->hidden + i * CLIPSKIP_CONTEXT * r->chunks * r->hidden_dim * esz : NULL,
            r->pooled ? r->pooled + i * r->pooled_dim * esz : NULL,
            r->embeds ? r->embeds + i * r->embeds_dim * esz : NULL};
        const char *const *texts = (const char *const *)p->text + i;
        clipskip_status st = a->syntax ? clipskip_encode_prompts(enc, texts, n, o, (clipskip_prompt_style)a->syntax,
                                                                 r->chunks, &out)
                                       : clipskip_encode_text(enc, texts, n, o, &out, r->info + i);
        if (st != CLIPSKIP_OK) {
            cs_error_prefix("in the batch of prompts %zu..%zu (counting from 0): ", i, i + n - 1);
            return st;
        }
        double now = cs_now();
        if (!a->quiet && (now - last > 2.0 || (i + n == p->n && now - t0 > 2.0))) {
            double rate = (double)(i + n) / (now - t0);
            fprintf(stderr, "clipskip encode: %zu/%zu prompts, %.1f prompts/s, ETA %.0f s\n", i + n,
                    p->n, rate, (double)(p->n - i - n) / rate);
            last = now;
        }
    }
    return CLIPSKIP_OK;
}

static int run(const encode_args *a, const cs_prompts *p) {
    clipskip_model *m = cs_cli_open_model("encode", a->model, a->random, a->vocab, !a->quiet);
    if (!m) return CS_EXIT_FAIL;
    int rc = CS_EXIT_FAIL, skip = resolve_skip(a), tower = resolve_tower(m, a->tower);
    clipskip_encoder *enc = NULL;
    cs_encode_result r = {0};
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = (clipskip_backend)a->backend;
    ep.n_threads = a->threads;
    ep.max_batch = a->batch;
    clipskip_encode_options o = clipskip_encode_default_options();
    o.row.clip_skip = skip;
    o.row.final_ln = (clipskip_final_ln)a->final_ln;
    o.outputs = (a->no_hidden ? 0 : CLIPSKIP_OUT_HIDDEN) | (a->pooled ? CLIPSKIP_OUT_POOLED : 0) |
                (a->text_embeds ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
    /* dtype auto: f32 for --out / the summary, f16 for dataset shards */
    o.out_dtype = a->dtype == 2 || (a->dtype == 0 && a->out_dir) ? CLIPSKIP_DTYPE_F16 : CLIPSKIP_DTYPE_F32;
    o.tower = tower;
    o.clean = a->clean - 1; /* choice 0 = "default" → -1 */
    if (skip < 0 || tower == -2) {
        rc = CS_EXIT_USAGE;
        goto done;
    }
    int32_t chunks = 1;
    clipskip_status st = check_prompts(m, &o, (clipskip_prompt_style)a->syntax, p, &chunks); /* before the weights */
    if (st == CLIPSKIP_OK) st = clipskip_encoder_init(m, &ep, &enc);
    if (st == CLIPSKIP_OK && a->out_dir) {
        cs_dataset_args da = {a->out_dir, a->file, a->input_format, a->field, a->column,
                              a->model ? a->model : "random", a->shard_size, a->shard_format == 1,
                              a->resume, a->on_error == 1, a->quiet, a->batch};
        rc = cs_encode_dataset(&da, m, enc, &o);
        goto done;
    }
    if (st == CLIPSKIP_OK) st = cs_encode_result_alloc(&r, m, &o, p->n, chunks, SYNTAX_NAMES[a->syntax]);
    if (st == CLIPSKIP_OK) st = encode_all(enc, p, &o, a, &r);
    if (st == CLIPSKIP_OK)
        st = a->out ? cs_encode_write(a->out, &r, m, &o, p, a->quiet) : cs_encode_print(&r, &o, p);
    if (st != CLIPSKIP_OK) {
        cs_cli_error("encode", st);
        rc = st == CLIPSKIP_ERR_INVALID_ARG ? CS_EXIT_USAGE : CS_EXIT_FAIL;
    } else {
        rc = CS_EXIT_OK;
        if (!a->quiet) cs_encode_report(&r, enc, p);
    }
done:
    cs_encode_result_free(&r);
    clipskip_encoder_free(enc);
    clipskip_model_free(m);
    return rc;
}

int cs_cmd_encode(int argc, char **argv) {
    encode_args a = {.batch = 64, .tower = "auto", .shard_size = 1024};
    const cs_opt opts[] = {
        {"model", CS_OPT_STR, &a.model, "FILE", "model .safetensors (SD1/SD2/SDXL, diffusers text_encoder, OpenCLIP)", 0, 0, 0},
        {"random", CS_OPT_CHOICE, &a.random, 0, "random weights of a real shape instead of --model", CS_RANDOM_CHOICES, 0, 0},
        {"vocab", CS_OPT_STR, &a.vocab, "PATH", "tokenizer: bpe_simple_vocab_16e6.txt[.gz] or a folder with vocab.json+merges.txt (default built in)", 0, 0, 0},
        {"file", CS_OPT_STR, &a.file, "FILE", "prompts, one per line ('-' = stdin; stdin is also read when no prompt is given)", 0, 0, 0},
        {"clip-skip", CS_OPT_INT, &a.clip_skip, "N", "A1111 clip skip: 1 = all layers, 2 = penultimate; 0 = model default", 0, 0, 1000},
        {"layer", CS_OPT_INT, &a.layer, "-N", "ComfyUI spelling: -1 = last layer, -2 = penultimate (same as --clip-skip N)", 0, -1000, 0},
        {"final-ln", CS_OPT_CHOICE, &a.final_ln, 0, "final LayerNorm on the hidden states (auto = the model's convention)", "auto|on|off", 0, 0},
        {"tower", CS_OPT_STR, &a.tower, "N|all|auto", "tower to run; auto = all towers concatenated for SDXL, else 0", 0, 0, 0},
        {"pooled", CS_OPT_FLAG, &a.pooled, 0, "also output the pooled vector (needs all layers; rows past the EOS skipped)", 0, 0, 0},
        {"text-embeds", CS_OPT_FLAG, &a.text_embeds, 0, "also output the projected pooled vector (towers with a projection)", 0, 0, 0},
        {"no-hidden", CS_OPT_FLAG, &a.no_hidden, 0, "skip the hidden states (with --pooled / --text-embeds)", 0, 0, 0},
        {"out", CS_OPT_STR, &a.out, "FILE", "write FILE.safetensors or FILE.npy (atomically)", 0, 0, 0},
        {"dtype", CS_OPT_CHOICE, &a.dtype, 0, "output dtype (auto: f32, f16 with --out-dir)", "auto|f32|f16", 0, 0},
        {"out-dir", CS_OPT_STR, &a.out_dir, "DIR", "dataset mode: stream --file into shards + manifest in DIR", 0, 0, 0},
        {"input-format", CS_OPT_STR, &a.input_format, "FMT", "dataset input: auto (by extension), lines, jsonl, csv, tsv", 0, 0, 0},
        {"field", CS_OPT_STR, &a.field, "NAME", "JSONL field holding the caption (default caption)", 0, 0, 0},
        {"column", CS_OPT_STR, &a.column, "NAME|N", "CSV/TSV column: header name or 1-based index (default caption)", 0, 0, 0},
        {"shard-size", CS_OPT_INT, &a.shard_size, "N", "input records per shard (dataset mode)", 0, 1, 1 << 24},
        {"shard-format", CS_OPT_CHOICE, &a.shard_format, 0, "shard files (dataset mode)", "safetensors|npy", 0, 0},
        {"resume", CS_OPT_FLAG, &a.resume, 0, "dataset mode: keep complete shards of an interrupted run, encode the rest", 0, 0, 0},
        {"on-error", CS_OPT_CHOICE, &a.on_error, 0, "dataset mode: a bad input line stops the run or is skipped (noted in the manifest)", "fail|skip", 0, 0},
        {"backend", CS_OPT_CHOICE, &a.backend, 0, "compute backend (auto = CUDA when usable)", CS_BACKEND_CHOICES, 0, 0},
        {"batch", CS_OPT_INT, &a.batch, "N", "prompts per encode call", 0, 1, 1 << 20},
        {"threads", CS_OPT_INT, &a.threads, "N", "CPU threads (0 = all cores)", 0, 0, 4096},
        {"syntax", CS_OPT_CHOICE, &a.syntax, 0, "plain: as written, 75 tokens (HF, diffusers); a1111: webui's (x) [x] (x:1.2) BREAK emphasis, chunks of 75 tokens, hidden (B, 77 x chunks, D)", "plain|a1111", 0, 0},
        {"clean", CS_OPT_CHOICE, &a.clean, 0, "text cleanup: HF CLIPTokenizer+ftfy, open_clip (+html unescape), HF fast (no ftfy)", "default|hf|openclip|hf-fast", 0, 0},
        {"quiet", CS_OPT_FLAG, &a.quiet, 0, "no progress or report on stderr", 0, 0, 0},
        {0},
    };
    const cs_cli cli = {"encode", "[options] [PROMPT...]", DESCRIPTION, opts};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos, rc = pos ? cs_opts_parse(&cli, argc, argv, pos, &n_pos) : CS_EXIT_FAIL;
    if (rc < 0) {
        if (a.no_hidden && !a.pooled && !a.text_embeds) {
            fprintf(stderr, "clipskip encode: --no-hidden leaves nothing to output: add --pooled "
                            "or --text-embeds\n");
            rc = CS_EXIT_USAGE;
        } else if (a.out_dir && a.syntax) {
            fprintf(stderr, "clipskip encode: --syntax %s is not available in dataset mode (--out-dir) yet: "
                            "its shards hold 77 tokens a row\n", SYNTAX_NAMES[a.syntax]);
            rc = CS_EXIT_USAGE;
        } else if (a.out_dir && (n_pos > 0 || a.out)) {
            fprintf(stderr, "clipskip encode: --out-dir reads its captions from --file or stdin "
                            "and writes only shards: no prompt arguments, no --out\n");
            rc = CS_EXIT_USAGE;
        } else if (a.out_dir) {
            cs_prompts none = {0};
            rc = run(&a, &none);
        } else {
            cs_prompts p;
            rc = cs_prompts_read(&p, pos, n_pos, a.file) ? CS_EXIT_USAGE : -1;
            if (rc < 0 && p.n == 0) {
                fprintf(stderr, "clipskip encode: no prompts given\n");
                rc = CS_EXIT_USAGE;
            }
            if (rc < 0) rc = run(&a, &p);
            cs_prompts_free(&p);
        }
    }
    free(pos);
    return rc;
}
