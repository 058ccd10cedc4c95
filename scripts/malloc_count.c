/*
 * A counting allocator to preload into any glibc program:
 *
 *   cc -shared -fPIC -O2 -o malloc_count.so scripts/malloc_count.c
 *   LD_PRELOAD=./malloc_count.so ./target/release/examples/server
 *   kill -USR1 <pid>     # prints the counts so far on stderr
 *
 * It counts the calls that take memory from the heap (malloc, calloc,
 * realloc, posix_memalign, aligned_alloc, memalign, valloc) in the whole
 * process, and passes each call on to glibc unchanged. On SIGUSR1, and at
 * exit, it writes one line to stderr:
 *
 *   malloc_count pid=<pid> allocs=<n> frees=<n>
 *
 * Counting from outside the program checks what tests/alloc.rs counts from
 * inside (a Rust global allocator): nothing in the process allocates behind
 * the Rust allocator's back, and the release binary behaves as the test
 * build does. (This is test tooling in C; the crate itself has no unsafe.)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* glibc's own entry points: no dlsym (which itself allocates) needed. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *ptr);

static atomic_ulong allocs;
static atomic_ulong frees;

void *malloc(size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_realloc(ptr, size);
}

void free(void *ptr) {
    if (ptr) {
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    }
    __libc_free(ptr);
}

int posix_memalign(void **out, size_t align, size_t size) {
    /* The alignment must be a power of two multiple of sizeof(void *). */
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0) {
        return 22; /* EINVAL */
    }
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    void *p = __libc_memalign(align, size);
    if (!p) {
        return 12; /* ENOMEM */
    }
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_memalign(align, size);
}

void *memalign(size_t align, size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_memalign(align, size);
}

void *valloc(size_t size) {
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

/* Decimal digits of v at the end of buf; returns where they start. */
static char *digits(char *end, unsigned long v) {
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void append(char **at, const char *s, size_t n) {
    memcpy(*at, s, n);
    *at += n;
}

/* Async-signal-safe: formats on the stack, one write(2). */
static void report(void) {
    char line[128], num[24];
    char *at = line, *d;
    const char *end = num + sizeof num;
    append(&at, "malloc_count pid=", 17);
    d = digits(num + sizeof num, (unsigned long)getpid());
    append(&at, d, (size_t)(end - d));
    append(&at, " allocs=", 8);
    d = digits(num + sizeof num, atomic_load(&allocs));
    append(&at, d, (size_t)(end - d));
    append(&at, " frees=", 7);
    d = digits(num + sizeof num, atomic_load(&frees));
    append(&at, d, (size_t)(end - d));
    append(&at, "\n", 1);
    ssize_t ignored = write(2, line, (size_t)(at - line));
    (void)ignored;
}

static void on_signal(int sig) {
    (void)sig;
    report();
}

__attribute__((constructor)) static void start(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

__attribute__((destructor)) static void stop(void) { report(); }
