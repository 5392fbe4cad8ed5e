/* Inputs of the bench (token ids, SD prompts) and the statistics of its timings. */
#include "bench.h"

#include <stdlib.h>

/* splitmix64: the same stream in bench/baseline_hf.py (ids_for_rows). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cs_bench_make_ids(uint64_t seed, int32_t n_rows, int32_t pad_id, int32_t *ids,
                       int32_t *eos) {
    uint64_t s = seed;
    for (int32_t r = 0; r < n_rows; r++) {
        int32_t *row = ids + (size_t)r * CLIPSKIP_CONTEXT;
        int32_t n = 10 + (int32_t)(next_u64(&s) % 66u); /* 10..75 content tokens */
        row[0] = CLIPSKIP_BOS;
        for (int32_t i = 1; i <= n; i++) row[i] = (int32_t)(next_u64(&s) % 49406u);
        row[n + 1] = CLIPSKIP_EOS;
        for (int32_t i = n + 2; i < CLIPSKIP_CONTEXT; i++) row[i] = pad_id;
        if (eos) eos[r] = n + 1;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics at q*(n-1) (numpy "linear"). */
static double percentile(const double *sorted, int32_t n, double q) {
    double pos = q * (n - 1);
    int32_t i = (int32_t)pos;
    if (i >= n - 1) return sorted[n - 1];
    double frac = pos - i;
    return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

cs_bench_stats cs_bench_stats_of(double *x, int32_t n) {
    cs_bench_stats st = {0};
    if (n <= 0) return st;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += x[i];
    st.n = n;
    st.p50 = percentile(x, n, 0.50);
    st.p90 = percentile(x, n, 0.90);
    st.p99 = percentile(x, n, 0.99);
    st.mean = sum / n;
    st.min = x[0];
    st.max = x[n - 1];
    return st;
}

/* Prompts of the kind SD users write: short captions, tag lists, long descriptions (a few
 * past 75 tokens, so truncation is exercised), A1111 emphasis syntax as plain text. */
const char *const cs_bench_prompts[] = {
    "a photo of a cat",
    "an astronaut riding a horse on the moon, photorealistic",
    "portrait of an old fisherman, weathered face, dramatic lighting, 85mm, f/1.8",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile, outdoors, "
    "cherry blossoms, school uniform, wind, petals",
    "a cozy cabin in a snowy forest at night, warm light from the windows, aurora borealis in "
    "the sky, highly detailed, digital painting, trending on artstation",
    "isometric view of a tiny floating island with a lighthouse, low poly, pastel colors",
    "(masterpiece:1.2), (best quality:1.2), ultra-detailed, cinematic still of a cyberpunk "
    "street market in the rain, neon signs, reflections, crowded, [blurry:0.5]",
    "a bowl of ramen, food photography, steam, top view",
    "watercolor illustration of a fox in a meadow",
    "concept art of a colossal ancient robot overgrown with moss standing in a misty valley at "
    "dawn, tiny travellers on a path in the foreground, volumetric light, god rays, epic scale, "
    "matte painting, by a famous concept artist, 8k, sharp focus, intricate details, "
    "unreal engine 5 render, octane render, award winning",
    "low quality, worst quality, blurry, jpeg artifacts, watermark, signature, text, deformed "
    "hands, extra fingers, bad anatomy",
    "logo of a coffee shop, minimalist, vector, flat design, white background",
    "a golden retriever puppy wearing sunglasses on a beach, summer vibe",
    "studio photo of a red sports car, studio lighting, glossy paint, 3/4 view",
    "medieval castle on a cliff above a stormy sea, lightning, oil painting in the style of "
    "romanticism",
    "close-up macro photograph of a dew drop on a spider web, bokeh background",
    "pixel art of a knight fighting a dragon, 16-bit, retro game",
    "interior design of a scandinavian living room, natural light, plants, wooden floor, "
    "minimalist furniture, photorealistic, architectural photography",
    "anime key visual, boy and girl on a rooftop watching fireworks, summer festival, yukata",
    "a surreal landscape with melting clocks and floating stones",
    "highly detailed photo of a hummingbird drinking from a flower, 1/8000s shutter speed",
    "sci-fi spaceship interior corridor, clean white panels, blue accent lights, wide angle",
    "children's book illustration of a bear having tea with a rabbit, soft colors, whimsical",
    "a steampunk airship above victorian london, brass and copper, clouds, sunset",
    "product shot of a perfume bottle on a marble table with roses",
    "ukiyo-e woodblock print of a great wave and mount fuji, with a modern container ship",
    "an elderly woman reading a book by the window on a rainy afternoon, film grain, kodak "
    "portra 400",
    "epic fantasy battle between elves and orcs, hundreds of soldiers, burning siege towers, "
    "dragons in the sky, dark clouds, rain, muddy battlefield, cinematic composition, extreme "
    "detail, by several famous fantasy illustrators, dramatic contrast, 4k wallpaper, trending, "
    "masterpiece, best quality, highres",
    "simple line drawing of a cat",
    "texture, seamless, mossy stone wall, pbr",
};
const int32_t cs_bench_n_prompts = (int32_t)(sizeof cs_bench_prompts / sizeof cs_bench_prompts[0]);
