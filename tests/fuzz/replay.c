/*
 * Replays a fuzz target's corpus without libFuzzer, so that `make check`
 * runs every seed (and every crash once found) with the normal compiler.
 *
 *   replay_<target> [dir-or-file ...]
 *
 * Each argument is a corpus directory (every regular file in it is one
 * input) or a single input file. Without arguments, the directory the build
 * compiled in as LLMGW_FUZZ_CORPUS is used. A target reports a failed
 * property by aborting, so reaching the closing line means every input
 * passed. An empty or missing corpus fails: a replay of nothing proves
 * nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read @p path whole into an exact-size heap buffer, so that an overread is an overread. */
static int read_input(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;

    if (!f)
        return -1;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0) {
        fclose(f);
        return -1;
    }
    *len = (size_t)sb.st_size;
    *buf = malloc(*len ? *len : 1);
    if (!*buf || fread(*buf, 1, *len, f) != *len) {
        free(*buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

static int run_file(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    if (read_input(path, &buf, &len) != 0) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* Named first: a target that aborts leaves this as the last line of the log. */
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of @p dir, in name order so that runs are reproducible; the count or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    long ran = 0;

    if (!d) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            if (!names)
                abort();
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    for (i = 0; i < n; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        struct stat sb;

        snprintf(path, plen, "%s/%s", dir, names[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(path) != 0)
                ran = -1;
            else if (ran >= 0)
                ran++;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return ran;
}

static long run_path(const char *path)
{
    struct stat sb;

    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode))
        return run_dir(path);
    return run_file(path) == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
#ifdef LLMGW_FUZZ_CORPUS
    static char *fallback[] = {NULL, LLMGW_FUZZ_CORPUS, NULL};
#else
    static char *fallback[] = {NULL, NULL};
#endif
    long total = 0;
    int i;

    if (argc < 2) {
        fallback[0] = argv[0];
        argv = fallback;
        argc = (int)(sizeof(fallback) / sizeof(fallback[0])) - 1;
    }
    for (i = 1; i < argc; i++) {
        long n = run_path(argv[i]);
        if (n < 0)
            return EXIT_FAILURE;
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "%s: no input to replay\n", argv[0]);
        return EXIT_FAILURE;
    }
    printf("%s: %ld inputs replayed, all properties held\n", argv[0], total);
    return EXIT_SUCCESS;
}
