/* Random-access latency of this machine's memory by working-set size: a pointer chase through
 * a random cycle (each load depends on the one before, so nothing overlaps). The engine's
 * per-event cost is mostly such loads; docs/performance.md explains what these figures mean
 * for engine apply.
 *
 *   gcc -O2 -o /tmp/memory-latency bench/memory-latency.c && /tmp/memory-latency
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    for (size_t mb = 1; mb <= 256; mb *= 2) {
        size_t n = mb * 1024 * 1024 / sizeof(size_t);
        size_t *next = malloc(n * sizeof(size_t));
        if (!next) return 1;
        /* Sattolo's shuffle: one cycle through every slot. */
        for (size_t i = 0; i < n; i++) next[i] = i;
        srand(7);
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)rand() % i, t = next[i];
            next[i] = next[j];
            next[j] = t;
        }
        struct timespec start, end;
        size_t at = 0;
        const int loads = 5000000;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int k = 0; k < loads; k++) at = next[at];
        clock_gettime(CLOCK_MONOTONIC, &end);
        double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
        printf("%4zu MB: %6.1f ns per dependent load (%zu)\n", mb, ns / loads, at & 1);
        free(next);
    }
    return 0;
}
