/*
 * clipskip: a CLIP text encoder engine (C11, optional CUDA backend).
 *
 * Usage:
 *
 *   clipskip_model *model;
 *   if (clipskip_model_load("sd15.safetensors", NULL, &model) != CLIPSKIP_OK) {
 *       fprintf(stderr, "%s\n", clipskip_last_error());
 *       return 1;
 *   }
 *   clipskip_encoder *enc;
 *   clipskip_encoder_init(model, NULL, &enc);               // backend auto: CUDA or CPU
 *   clipskip_encode_options opt = clipskip_encode_default_options();
 *   opt.row.clip_skip = 2;                                  // A1111: stop one layer early
 *   const char *prompts[] = {"a photo of a cat", ""};
 *   float *hidden = malloc(2 * 77 * 768 * sizeof(float));  // (B, 77, D)
 *   clipskip_outputs out = {.hidden = hidden};
 *   clipskip_encode_text(enc, prompts, 2, &opt, &out, NULL);
 *   clipskip_encoder_free(enc);
 *   clipskip_model_free(model);
 *
 * Thread safety: a clipskip_model and a clipskip_tokenizer are immutable once loaded and may be
 * shared by any number of threads (the tokenizer's merge cache is internally locked). A
 * clipskip_encoder holds run state (buffers, streams, graphs) and must be used by one thread at
 * a time; make one encoder per thread. clipskip_last_error() is per thread.
 *
 * Return codes: every fallible function returns clipskip_status. CLIPSKIP_OK is 0; any other
 * value is a failure, and clipskip_last_error() then describes it (file, tensor, byte, expected
 * vs found). Library code never exits or aborts on bad input.
 */
#ifndef CLIPSKIP_H
#define CLIPSKIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLIPSKIP_VERSION_MAJOR 0
#define CLIPSKIP_VERSION_MINOR 1
#define CLIPSKIP_VERSION_PATCH 0
#define CLIPSKIP_VERSION_STRING "0.1.0"
#define CLIPSKIP_VERSION_NUMBER \
    (CLIPSKIP_VERSION_MAJOR * 10000 + CLIPSKIP_VERSION_MINOR * 100 + CLIPSKIP_VERSION_PATCH)

/* The library's version string, e.g. "0.1.0"; compare with CLIPSKIP_VERSION_STRING. */
const char *clipskip_version(void);
/* Short description of how the library was built, e.g. "cpu+cuda(sm_80,86,89,90) openblas". */
const char *clipskip_build_info(void);

/* ---------------------------------------------------------------- status and errors */

typedef enum {
    CLIPSKIP_OK = 0,
    CLIPSKIP_ERR_INVALID_ARG = 1,  /* NULL pointer, option or size out of range (message says which) */
    CLIPSKIP_ERR_IO = 2,           /* open/read/write/rename/mmap failed (path and errno text) */
    CLIPSKIP_ERR_FORMAT = 3,       /* malformed file: safetensors header, JSON, vocab (file, byte, rule) */
    CLIPSKIP_ERR_UNSUPPORTED = 4,  /* well-formed but not supported: pickle, dtype, no text tower */
    CLIPSKIP_ERR_SHAPE = 5,        /* a tensor has the wrong shape (tensor, expected vs found) */
    CLIPSKIP_ERR_NOMEM = 6,        /* host or device allocation failed (bytes asked) */
    CLIPSKIP_ERR_BACKEND = 7,      /* backend unavailable or a device call failed (statement) */
    CLIPSKIP_ERR_TEXT = 8,         /* text rejected: invalid UTF-8 or NUL byte (byte offset) */
    CLIPSKIP_ERR_TOO_LARGE = 9     /* input over a documented limit (prompt bytes, batch) */
} clipskip_status;

/* Static, never NULL: "ok", "invalid argument", ... */
const char *clipskip_status_str(clipskip_status s);
/* The detail of the last failure on the calling thread ("" when none). Valid until the next
 * failing call on this thread. */
const char *clipskip_last_error(void);
/* Status of that failure (CLIPSKIP_OK when none). */
clipskip_status clipskip_last_status(void);

/* ---------------------------------------------------------------- enums */

typedef enum {
    CLIPSKIP_DTYPE_F32 = 0,
    CLIPSKIP_DTYPE_F16 = 1,
    CLIPSKIP_DTYPE_BF16 = 2
} clipskip_dtype;

typedef enum {
    CLIPSKIP_BACKEND_AUTO = 0, /* CUDA when built with it and a device is usable, else CPU */
    CLIPSKIP_BACKEND_CPU = 1,
    CLIPSKIP_BACKEND_CUDA = 2
} clipskip_backend;

typedef enum {
    CLIPSKIP_FAMILY_OTHER = 0,        /* a CLIP text tower described only by its shapes/config */
    CLIPSKIP_FAMILY_CLIP_L = 1,       /* OpenAI ViT-L/14: SD 1.x, SDXL tower one */
    CLIPSKIP_FAMILY_OPENCLIP_H = 2,   /* OpenCLIP ViT-H/14: SD 2.x */
    CLIPSKIP_FAMILY_OPENCLIP_BIGG = 3 /* OpenCLIP ViT-bigG/14: SDXL tower two */
} clipskip_family;

typedef enum {
    CLIPSKIP_ACT_QUICK_GELU = 0, /* x * sigmoid(1.702 x) */
    CLIPSKIP_ACT_GELU = 1        /* exact erf GELU */
} clipskip_act;

/* What the whole file is: decides the per-tower defaults (SEMANTICS.md). */
typedef enum {
    CLIPSKIP_PIPELINE_TOWER = 0,  /* a lone text encoder file (defaults of its family) */
    CLIPSKIP_PIPELINE_SD1 = 1,
    CLIPSKIP_PIPELINE_SD2 = 2,
    CLIPSKIP_PIPELINE_SDXL = 3,
    CLIPSKIP_PIPELINE_SDXL_REFINER = 4
} clipskip_pipeline;

typedef enum {
    CLIPSKIP_FINAL_LN_AUTO = 0, /* the family/pipeline default (SEMANTICS.md "Final LayerNorm") */
    CLIPSKIP_FINAL_LN_ON = 1,
    CLIPSKIP_FINAL_LN_OFF = 2
} clipskip_final_ln;

/* Text cleanup before BPE; each matches one reference tokenizer exactly (SEMANTICS.md "Tokens"). */
typedef enum {
    CLIPSKIP_CLEAN_HF = 0,       /* HF CLIPTokenizer (Python) with ftfy: diffusers, A1111 SD1, ComfyUI */
    CLIPSKIP_CLEAN_OPENCLIP = 1, /* open_clip / OpenAI: ftfy + HTML unescape twice (A1111 SD2/SDXL-G) */
    CLIPSKIP_CLEAN_HF_FAST = 2   /* HF CLIPTokenizerFast (Rust): NFC + whitespace + lowercase only */
} clipskip_clean;

/* Which outputs an encode call writes (bit flags). */
enum {
    CLIPSKIP_OUT_HIDDEN = 1u,      /* (B, 77, D) hidden states at the clip-skip depth */
    CLIPSKIP_OUT_POOLED = 2u,      /* (B, D) final-LN'd full-depth row at the EOS position */
    CLIPSKIP_OUT_TEXT_EMBEDS = 4u  /* (B, E) pooled @ text_projection^T (towers with projection) */
};

#define CLIPSKIP_CONTEXT 77      /* tokens per sequence: BOS + 75 + EOS */
#define CLIPSKIP_MAX_CONTENT 75
#define CLIPSKIP_VOCAB 49408
#define CLIPSKIP_BOS 49406
#define CLIPSKIP_EOS 49407
#define CLIPSKIP_TOWER_ALL (-1)  /* every tower of the file, SDXL style (see clipskip_encode_options) */
#define CLIPSKIP_MAX_PROMPT_BYTES (16u << 20) /* longer prompts fail with CLIPSKIP_ERR_TOO_LARGE */

/* ---------------------------------------------------------------- tokenizer */

typedef struct clipskip_tokenizer clipskip_tokenizer;

/* path: NULL for the vocabulary built into the library (OpenAI bpe_simple_vocab_16e6, MIT);
 * a bpe_simple_vocab_16e6.txt(.gz) file; or a folder holding vocab.json + merges.txt
 * (a diffusers/HF tokenizer/ folder). The vocabulary must have 49408 entries with
 * <|startoftext|> = 49406 and <|endoftext|> = 49407. */
clipskip_status clipskip_tokenizer_load(const char *path, clipskip_tokenizer **out);
void clipskip_tokenizer_free(clipskip_tokenizer *tok);

typedef struct {
    int32_t n_tokens;  /* content tokens before truncation (excluding BOS/EOS) */
    int32_t truncated; /* content tokens dropped to fit 75 (0 when none) */
    int32_t eos_pos;   /* position of the first EOS in the 77-id sequence */
} clipskip_token_info;

/* The raw id stream of text (no BOS/EOS, no truncation), for chunking.
 * Writes min(n, cap) ids to ids and the full count to *n_out; ids may be NULL when cap is 0.
 * Invalid UTF-8 or a NUL byte fails with CLIPSKIP_ERR_TEXT naming the byte offset (so does, in
 * the ftfy modes, HTML entities nested over 30 levels deep); text over
 * CLIPSKIP_MAX_PROMPT_BYTES fails with CLIPSKIP_ERR_TOO_LARGE. Time is linear in len. */
clipskip_status clipskip_tokenize_raw(const clipskip_tokenizer *tok, const char *text, size_t len,
                                      clipskip_clean clean, int32_t *ids, size_t cap,
                                      size_t *n_out);
/* One 77-id sequence: BOS, up to 75 content ids, EOS, then pad_id (49407 for CLIP-L, 0 for
 * OpenCLIP towers). Truncation is reported in info->truncated. info may be NULL. */
clipskip_status clipskip_tokenize(const clipskip_tokenizer *tok, const char *text, size_t len,
                                  clipskip_clean clean, int32_t pad_id,
                                  int32_t ids[CLIPSKIP_CONTEXT], clipskip_token_info *info);
/* ids back to text (BPE symbols joined, "</w>" → space, special tokens dropped, stripped).
 * Writes at most cap-1 bytes plus a NUL; *len_out gets the full length (excluding NUL).
 * An id outside 0..49407 fails with CLIPSKIP_ERR_INVALID_ARG naming its index. */
clipskip_status clipskip_decode(const clipskip_tokenizer *tok, const int32_t *ids, size_t n,
                                char *buf, size_t cap, size_t *len_out);
/* The vocabulary string of one id (e.g. "cat</w>"), or NULL when out of range. */
const char *clipskip_token_str(const clipskip_tokenizer *tok, int32_t id);
/* Id of one vocabulary string, or -1. */
int32_t clipskip_token_id(const clipskip_tokenizer *tok, const char *str);

/* ---------------------------------------------------------------- model */

typedef struct clipskip_model clipskip_model;

typedef struct {
    const char *tokenizer_path; /* NULL: a tokenizer/ folder next to a diffusers file if any,
                                   else the built-in vocabulary */
    int verbose;                /* 1: warnings (e.g. trailing bytes) to stderr; 0: silent */
} clipskip_model_params;

clipskip_model_params clipskip_model_default_params(void);

/* path: a .safetensors file (diffusers text_encoder[_2]/model.safetensors, SD1/SD2/SDXL single
 * file, OpenCLIP). Pickle files (.ckpt/.pt/.bin) are refused with CLIPSKIP_ERR_UNSUPPORTED.
 * params may be NULL (defaults). */
clipskip_status clipskip_model_load(const char *path, const clipskip_model_params *params,
                                    clipskip_model **out);
void clipskip_model_free(clipskip_model *model);
/* A tower of real shape with random weights (stored fp16), for benchmarks and demos without a
 * download: CLIP_L (SD 1.x defaults), OPENCLIP_H (SD 2.x defaults), OPENCLIP_BIGG (SDXL tower
 * two defaults, with projection); OTHER gives a tiny tower (D 64, 4 heads, 4 layers). The same
 * seed gives the same weights. Its tokenizer is the built-in vocabulary. */
clipskip_status clipskip_model_random(clipskip_family family, uint64_t seed,
                                      clipskip_model **out);

typedef struct {
    clipskip_family family;
    const char *layout;         /* where it came from, e.g. "sd1-single-file", "diffusers" */
    const char *prefix;         /* tensor name prefix in the file */
    int32_t n_layers, d_model, n_heads, d_mlp;
    int32_t vocab, context;
    int32_t proj_dim;           /* E of text_projection, 0 when the tower has none */
    clipskip_act act;
    clipskip_dtype file_dtype;  /* dtype of the matmul weights in the file */
    int64_t n_params;
    int32_t pad_id;             /* 49407 (CLIP-L) or 0 (OpenCLIP) */
    int32_t default_clip_skip;  /* for this tower in this pipeline */
    int32_t default_final_ln;   /* 1 = final LN applied by default, 0 = not */
    clipskip_clean default_clean;
} clipskip_tower_info;

int clipskip_model_n_towers(const clipskip_model *model);
clipskip_pipeline clipskip_model_pipeline(const clipskip_model *model);
clipskip_status clipskip_model_tower_info(const clipskip_model *model, int tower,
                                          clipskip_tower_info *out);
/* The model's tokenizer (owned by the model, valid while it lives). */
const clipskip_tokenizer *clipskip_model_tokenizer(const clipskip_model *model);

/* ---------------------------------------------------------------- encoder (run context) */

typedef struct clipskip_encoder clipskip_encoder;

typedef enum {
    CLIPSKIP_GEMM_NATIVE = 0,   /* hand-written tensor-core kernels (CUDA) / OpenBLAS (CPU) */
    CLIPSKIP_GEMM_CUBLASLT = 1  /* CUDA only: cuBLASLt with the same epilogues, for comparison */
} clipskip_gemm;

typedef struct {
    clipskip_backend backend;   /* default AUTO */
    int device;                 /* CUDA device ordinal, default 0 */
    int max_batch;              /* rows per device pass buffers are sized for (default 256);
                                   larger calls are split into passes of max_batch rows */
    int n_threads;              /* CPU threads, 0 = all cores. With more than one, the CPU
                                   backend splits each GEMM by columns over its own threads and
                                   sets OpenBLAS (process-wide) to one thread; the environment
                                   variable CLIPSKIP_CPU_GEMM=blas keeps OpenBLAS's threads */
    clipskip_dtype compute_dtype; /* CUDA weight/activation dtype: F16 (default) or BF16 */
    clipskip_gemm gemm;
} clipskip_encoder_params;

clipskip_encoder_params clipskip_encoder_default_params(void);

/* params may be NULL. BACKEND_CUDA without a usable device fails with CLIPSKIP_ERR_BACKEND. */
clipskip_status clipskip_encoder_init(const clipskip_model *model,
                                      const clipskip_encoder_params *params,
                                      clipskip_encoder **out);
void clipskip_encoder_free(clipskip_encoder *enc);
/* The backend actually chosen (CPU or CUDA, never AUTO). */
clipskip_backend clipskip_encoder_backend(const clipskip_encoder *enc);
/* Human-readable device name ("cpu: 2 threads", "NVIDIA H100 80GB HBM3"). */
const char *clipskip_encoder_device(const clipskip_encoder *enc);
/* Bytes the encoder holds for weights and for activations (device memory on CUDA). */
void clipskip_encoder_memory(const clipskip_encoder *enc, size_t *weight_bytes,
                             size_t *activation_bytes);

/* Host memory for encode outputs that the encoder's device can write straight into: page-locked
 * (pinned) on CUDA, so a download is one direct copy instead of the driver staging pageable
 * memory (on the first H100 measured, 2026-11-27, a (256, 77, 768) f32 output took ~10 ms into
 * pageable memory). Any encoder output may live there or in ordinary memory; pinned memory
 * is a scarce OS resource, so allocate it once and reuse it. When the system will not pin that
 * much (cudaHostAlloc fails: memlock limit, size), ordinary memory instead: correct, with
 * slower copies. On CPU: ordinary 64-byte aligned memory. Free with clipskip_host_free on the
 * same encoder, before clipskip_encoder_free. NULL (with clipskip_last_error) on failure. */
void *clipskip_host_alloc(clipskip_encoder *enc, size_t bytes);
void clipskip_host_free(clipskip_encoder *enc, void *p);

/* Device-timed seconds (CUDA events) of the last encode call on this encoder, or -1 when the
 * backend has no device timer (CPU: use a host clock). */
double clipskip_encoder_last_device_seconds(const clipskip_encoder *enc);
/* Measure the device's dense matrix rate in the compute dtype (FLOP/s) and memory bandwidth
 * (bytes read + written per second) with a large GEMM and a large copy: the floor against
 * which benchmarks report. Takes about a second. */
clipskip_status clipskip_encoder_measure_peak(clipskip_encoder *enc, double *flops_per_s,
                                              double *bytes_per_s);

/* Per-row choices: rows of one call may differ (mixed depths in one batch). */
typedef struct {
    int32_t clip_skip;          /* A1111 convention 1..L (1 = all layers); 0 = tower default */
    clipskip_final_ln final_ln; /* on the hidden-state output; pooled is always final-LN'd */
} clipskip_row_options;

typedef struct {
    clipskip_row_options row;            /* every row's choice when per_row is NULL */
    const clipskip_row_options *per_row; /* optional: B entries, one per row */
    uint32_t outputs;                    /* CLIPSKIP_OUT_* flags, default HIDDEN */
    clipskip_dtype out_dtype;            /* F32 (default) or F16, for every output */
    int32_t tower;     /* tower index, default 0; CLIPSKIP_TOWER_ALL: every tower with the same
                          row options, hidden states concatenated along D (SDXL context
                          (B,77,768+1280)); pooled/text_embeds from the last tower */
    int32_t clean;     /* text only: a clipskip_clean, or -1 (default) for the tower's default */
} clipskip_encode_options;

clipskip_encode_options clipskip_encode_default_options(void);

/* Caller-owned output buffers; those not asked for may be NULL. Row-major, C-contiguous:
 *   hidden      (B, 77, D)   D = tower width (sum of widths for TOWER_ALL)
 *   pooled      (B, D)       D = width of the (last) tower
 *   text_embeds (B, E)       E = proj_dim of the (last) tower */
typedef struct {
    void *hidden;
    void *pooled;
    void *text_embeds;
} clipskip_outputs;

/* Encode B sequences of 77 token ids (int32, (B,77), row-major, values 0..vocab-1), used as
 * given for every tower. Fails with CLIPSKIP_ERR_INVALID_ARG naming the row/position of a bad
 * id or the out-of-range clip skip (with the valid range). */
clipskip_status clipskip_encode_ids(clipskip_encoder *enc, const int32_t *ids, int32_t n_rows,
                                    const clipskip_encode_options *opt, clipskip_outputs *out);

/* As clipskip_encode_ids, with each tower's own ids: ids_per_tower[i] (B, 77) for the i-th tower
 * the call runs (opt->tower, or every tower for CLIPSKIP_TOWER_ALL), e.g. tokenized elsewhere
 * with each tower's pad id (SDXL: 49407 for tower one, 0 for tower two). */
clipskip_status clipskip_encode_tower_ids(clipskip_encoder *enc,
                                          const int32_t *const *ids_per_tower, int32_t n_rows,
                                          const clipskip_encode_options *opt,
                                          clipskip_outputs *out);

/* Tokenize and encode B prompts (NUL-terminated UTF-8), each tower with its own pad id and
 * cleanup mode. info (optional, B entries) receives truncation and EOS positions of the last
 * tower encoded. Over-long prompts are truncated to 75 tokens and reported there.
 * On CUDA a call of more than max_batch prompts tokenizes pass n + 1 on a second thread while
 * pass n runs. A prompt that fails to tokenize (its index in the message) fails the call; the
 * passes before it may already be written: after any failure the outputs are unspecified. */
clipskip_status clipskip_encode_text(clipskip_encoder *enc, const char *const *texts,
                                     int32_t n_rows, const clipskip_encode_options *opt,
                                     clipskip_outputs *out, clipskip_token_info *info);

/* How prompt text becomes token rows (SEMANTICS.md "Long prompts and emphasis"). */
typedef enum {
    CLIPSKIP_PROMPT_PLAIN = 0, /* the text as written, one 77-id row, truncated to 75 tokens
                                  (HF transformers, diffusers): clipskip_encode_text */
    CLIPSKIP_PROMPT_A1111 = 1  /* AUTOMATIC1111 webui 1.10: (x) x1.1, [x] /1.1, (x:W) xW, nesting
                                  multiplies, \( \) \[ \] \\ literal, BREAK starts a chunk; any
                                  length, in chunks of 75 tokens (cut after a comma among a full
                                  chunk's last 20 tokens); "Original" emphasis */
} clipskip_prompt_style;

/* Chunks of 77 ids that text takes under style (1 for PLAIN), the most over the towers that
 * opt->tower selects (each tokenizes with its own cleanup, opt->clean). Fails as the
 * tokenizer does (invalid UTF-8, NUL, over CLIPSKIP_MAX_PROMPT_BYTES) and, for A1111, on a
 * weight that is not a number ("(x:1.2.3)"), naming the byte. */
clipskip_status clipskip_prompt_chunks(const clipskip_model *model, const char *text,
                                       const clipskip_encode_options *opt,
                                       clipskip_prompt_style style, int32_t *n_chunks);

/* Encode B prompts under style, n_chunks chunks each: every prompt's chunks, then empty ones
 * (BOS, EOS, padding: webui pads a batch so) up to n_chunks, each chunk encoded as its own
 * sequence. A prompt that takes more than n_chunks fails the call with CLIPSKIP_ERR_TOO_LARGE
 * (clipskip_prompt_chunks gives the count). Outputs:
 *   hidden      (B, 77 * n_chunks, D): the chunks' hidden states one after another (webui's
 *               torch.hstack); A1111: each chunk's rows multiplied by their tokens' weights,
 *               then the chunk rescaled to its unweighted mean. webui takes that mean over the
 *               whole batch tensor of the chunk; clipskip over each prompt's chunk (per tower
 *               for TOWER_ALL), so a prompt's result never depends on its batch
 *   pooled / text_embeds (B, D) / (B, E): from each prompt's first chunk, unweighted
 * Row options (clip skip, final LN, per_row: one per prompt) apply to every chunk. PLAIN with
 * n_chunks 1 is clipskip_encode_text. */
clipskip_status clipskip_encode_prompts(clipskip_encoder *enc, const char *const *texts,
                                        int32_t n, const clipskip_encode_options *opt,
                                        clipskip_prompt_style style, int32_t n_chunks,
                                        clipskip_outputs *out);

/* Sizes of the outputs for these options: D of hidden, D of pooled, E (0 when absent). */
clipskip_status clipskip_output_dims(const clipskip_model *model,
                                     const clipskip_encode_options *opt, int32_t *hidden_dim,
                                     int32_t *pooled_dim, int32_t *embeds_dim);

#ifdef __cplusplus
}
#endif
#endif /* CLIPSKIP_H */
