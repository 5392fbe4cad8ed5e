/* JSON parsing through cJSON, one parse at a time.
 *
 * cJSON's parse functions write a process-wide error record (global_error) on every call,
 * which makes two parses on different threads a data race: the server parses request bodies
 * on its worker threads while a model may be loading on another. The parses here are small
 * (request bodies, safetensors headers, configs, vocabularies once per load), so one mutex
 * costs nothing measurable. Nothing in clipskip reads cJSON_GetErrorPtr: callers get the
 * position where parsing stopped through `end`. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>

static pthread_mutex_t json_lock = PTHREAD_MUTEX_INITIALIZER;

cJSON *cs_json_parse(const char *text, size_t len, const char **end) {
    pthread_mutex_lock(&json_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, end, 0);
    pthread_mutex_unlock(&json_lock);
    return root;
}
