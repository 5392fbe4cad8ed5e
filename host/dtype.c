/* fp16 / bf16 <-> fp32 conversion, bit-exact round-to-nearest-even, no hardware assumptions. */
#include "internal.h"

#include <string.h>

size_t cs_dtype_size(clipskip_dtype dt) { return dt == CLIPSKIP_DTYPE_F32 ? 4 : 2; }

const char *cs_dtype_name(clipskip_dtype dt) {
    switch (dt) {
    case CLIPSKIP_DTYPE_F32: return "F32";
    case CLIPSKIP_DTYPE_F16: return "F16";
    case CLIPSKIP_DTYPE_BF16: return "BF16";
    }
    return "?";
}

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float cs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t cs_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) /* inf or NaN (keep a quiet NaN) */
        return sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0);
    if (au >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {                      /* below 2^-14: subnormal or zero */
        /* Adding 0.5 (as float) aligns the mantissa so that the FPU's own round-to-nearest-even
         * does the rounding at the subnormal's last place. */
        float a = bits_f32(au) + 0.5f;
        return sign | (uint16_t)(f32_bits(a) - 0x3f000000u);
    }
    uint32_t mant_odd = (au >> 13) & 1;
    au += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return sign | (uint16_t)(au >> 13);
}

float cs_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cs_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void cs_convert_to_f32(float *dst, const void *src, clipskip_dtype dt, size_t n) {
    if (dt == CLIPSKIP_DTYPE_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    const uint16_t *s = src;
    if (dt == CLIPSKIP_DTYPE_F16)
        for (size_t i = 0; i < n; i++) dst[i] = cs_f16_to_f32(s[i]);
    else
        for (size_t i = 0; i < n; i++) dst[i] = cs_bf16_to_f32(s[i]);
}

void cs_convert_from_f32(void *dst, const float *src, clipskip_dtype dt, size_t n) {
    if (dt == CLIPSKIP_DTYPE_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    uint16_t *d = dst;
    if (dt == CLIPSKIP_DTYPE_F16)
        for (size_t i = 0; i < n; i++) d[i] = cs_f32_to_f16(src[i]);
    else
        for (size_t i = 0; i < n; i++) d[i] = cs_f32_to_bf16(src[i]);
}
