/* The public header alone, compiled as strict C11 (and as C++ by header_cxx.cc when a C++
 * compiler is around): no hidden dependencies, no extensions. */
#include "clipskip.h"

int main(void) {
    clipskip_encode_options o = clipskip_encode_default_options();
    return o.row.clip_skip == 0 && CLIPSKIP_CONTEXT == 77 ? 0 : 1;
}
