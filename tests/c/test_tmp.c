/* test_tmp.c: the temp area and blobs: arena vs dedicated files, removal at the last
 * reference, forked children, reaping dead processes' directories, shutdown. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static char *dup_procdir(void) {
    const char *d;
    idt_error err;
    if (idt_tmp_procdir(&d, &err)) return NULL;
    return strdup(d);
}

/* Run `argv0 mode arg` in a fresh process (exec: no temp state inherited) with
 * INFINIDATA_TMPDIR=root; returns its exit status (or -1). */
static int run_child(const char *mode, const char *root, const char *arg) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setenv("INFINIDATA_TMPDIR", root, 1);
        execl("/proc/self/exe", "test_tmp", mode, arg, (char *)NULL);
        _exit(99);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Child mode: the temp root cannot be made or used; every way in fails with IDT_EIO naming
 * the path. */
static int child_bad_root(const char *frag) {
    idt_blob *b;
    idt_error err;
    int rc = idt_blob_new(10, &b, &err);
    if (rc != IDT_EIO || !strstr(err.msg, frag)) {
        fprintf(stderr, "blob_new: rc %d msg '%s' (want IDT_EIO naming '%s')\n", rc, err.msg, frag);
        return 1;
    }
    rc = idt_blob_new(IDT_ARENA_MAX + 1, &b, &err);
    if (rc != IDT_EIO || !strstr(err.msg, frag)) {
        fprintf(stderr, "blob_new (file): rc %d msg '%s'\n", rc, err.msg);
        return 1;
    }
    const char *d;
    rc = idt_tmp_procdir(&d, &err);
    if (rc != IDT_EIO || !strstr(err.msg, frag)) {
        fprintf(stderr, "procdir: rc %d msg '%s'\n", rc, err.msg);
        return 1;
    }
    idt_sys_stats s;
    idt_sys_stats_get(&s);
    if (s.allocs || s.maps || s.fds) {
        fprintf(stderr, "leaked: %lld allocs %lld maps %lld fds\n", (long long)s.allocs,
                (long long)s.maps, (long long)s.fds);
        return 1;
    }
    return 0;
}

/* Child mode: nothing is created before the first blob; the first blob creates the root and
 * a process directory; exit removes both. */
static int child_fresh_root(const char *root) {
    if (h_exists(root) || idt_tmp_root() != NULL) return 2;
    idt_column c;
    memset(&c, 0, sizeof c);
    c.name = "x";
    c.kind = IDT_COL_UTF8;
    idt_schema *s;
    idt_error err;
    if (idt_schema_new(&c, 1, &s, &err)) return 3;
    idt_schema_decref(s);
    if (h_exists(root)) return 4;
    idt_blob *b;
    if (idt_blob_new(10, &b, &err)) return 5;
    if (!h_exists(root) || !idt_tmp_root()) return 6;
    const char *d;
    if (idt_tmp_procdir(&d, &err) || strncmp(d, idt_tmp_root(), strlen(idt_tmp_root()))) return 7;
    idt_blob_decref(b);
    return 0; /* exit: the atexit shutdown removes the directory and the (empty) root */
}

/* ---- tests ---- */

static void test_bad_root(void) {
    CHECK_EQ(run_child("--child-bad-root", "/dev/null/sub", "/dev/null/sub"), 0);
    /* a root that is a file */
    char path[] = "/tmp/idt-test-rootfile-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    CHECK_EQ(run_child("--child-bad-root", path, "not a directory"), 0);
    unlink(path);
}

static void test_fresh_root(void) {
    char base[] = "/tmp/idt-test-fresh-XXXXXX";
    REQUIRE(mkdtemp(base) != NULL);
    char root[300];
    snprintf(root, sizeof root, "%s/root", base);
    CHECK_EQ(run_child("--child-fresh-root", root, root), 0);
    CHECK(!h_exists(root)); /* removed at exit */
    rmdir(root);
    rmdir(base);
}

static void test_procdir(void) {
    const char *d;
    idt_error err;
    REQUIRE(CHECK_OK(idt_tmp_procdir(&d, &err), err) == 0);
    const char *root = idt_tmp_root();
    REQUIRE(root != NULL);
    CHECK(root[0] == '/');
    size_t rl = strlen(root);
    CHECK(!strncmp(d, root, rl) && d[rl] == '/');
    char want[32];
    snprintf(want, sizeof want, "p%d-", (int)getpid());
    CHECK(!strncmp(d + rl + 1, want, strlen(want)));
    /* the lock is held: another open file description cannot take it */
    char lock[600];
    snprintf(lock, sizeof lock, "%s/lock", d);
    int fd = open(lock, O_RDWR);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK);
        close(fd);
    }
    char *p1, *p2;
    REQUIRE(CHECK_OK(idt_tmp_newpath("zz", &p1, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_tmp_newpath("zz", &p2, &err), err) == 0);
    CHECK(strcmp(p1, p2) != 0);
    CHECK(!strncmp(p1, d, strlen(d)));
    CHECK(strstr(p1 + strlen(d), "/zz") != NULL);
    CHECK(!h_exists(p1)); /* only a name */
    idt_free(p1);
    idt_free(p2);
    unsigned char r1[32] = {0}, r2[32] = {0}, zero[32] = {0};
    idt_random_bytes(r1, sizeof r1);
    idt_random_bytes(r2, sizeof r2);
    CHECK(memcmp(r1, zero, 32) && memcmp(r1, r2, 32));
}

static void test_blob_kinds(void) {
    const char *d;
    idt_error err;
    REQUIRE(CHECK_OK(idt_tmp_procdir(&d, &err), err) == 0);
    int files = h_count_files();
    idt_tmp_stats t0, t1;
    idt_tmp_stats_get(&t0);
    size_t sizes[5] = {0, 1, 100, 4096, IDT_ARENA_MAX};
    idt_blob *a[5];
    for (int i = 0; i < 5; i++) {
        REQUIRE(CHECK_OK(idt_blob_new(sizes[i], &a[i], &err), err) == 0);
        CHECK_EQ(a[i]->kind, IDT_BLOB_ARENA);
        CHECK_EQ(a[i]->size, sizes[i]);
        CHECK(((uintptr_t)a[i]->data % IDT_BLOB_ALIGN) == 0);
        CHECK(a[i]->chunk != NULL);
        CHECK(!strncmp(a[i]->path, d, strlen(d)));
        CHECK_EQ(a[i]->owner, getpid());
        int zero = 1;
        for (size_t k = 0; k < sizes[i]; k++) zero &= a[i]->data[k] == 0;
        CHECK(zero);
        memset(a[i]->data, 0x11 * (i + 1), sizes[i]);
    }
    /* no two overlap */
    for (int i = 0; i < 5; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            if ((unsigned char)a[i]->data[k] != 0x11 * (i + 1)) {
                h_fail(__FILE__, __LINE__, "arena blob %d overwritten at %zu", i, k);
                break;
            }
    CHECK_EQ(h_count_files(), files); /* arena blobs share the current chunk's file */
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.live_blobs, t0.live_blobs + 5);
    CHECK_EQ(t1.file_blobs, t0.file_blobs);
    /* a dedicated file */
    idt_blob *f;
    REQUIRE(CHECK_OK(idt_blob_new(IDT_ARENA_MAX + 1, &f, &err), err) == 0);
    CHECK_EQ(f->kind, IDT_BLOB_FILE);
    CHECK_EQ(f->offset, 0);
    CHECK(f->chunk == NULL);
    CHECK(h_exists(f->path));
    CHECK(file_size(f->path) >= (off_t)(IDT_ARENA_MAX + 1));
    CHECK_EQ(h_count_files(), files + 1);
    CHECK_EQ(f->data[IDT_ARENA_MAX], 0);
    f->data[IDT_ARENA_MAX] = 7;
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.file_blobs, t0.file_blobs + 1);
    /* a blob's dev/ino identify its file */
    struct stat st;
    CHECK(stat(f->path, &st) == 0 && (uint64_t)st.st_ino == f->ino);
    CHECK(stat(a[0]->path, &st) == 0 && (uint64_t)st.st_ino == a[0]->ino);
    idt_blob_decref(f);
    for (int i = 0; i < 5; i++) idt_blob_decref(a[i]);
    CHECK_EQ(h_count_files(), files);
    idt_blob_decref(NULL);
}

static void test_file_removed_at_last_decref(void) {
    idt_blob *f;
    idt_error err;
    int files = h_count_files();
    REQUIRE(CHECK_OK(idt_blob_new(3 << 20, &f, &err), err) == 0);
    char *path = strdup(f->path);
    idt_blob_incref(f);
    idt_blob_incref(f);
    idt_blob_decref(f);
    idt_blob_decref(f);
    CHECK(h_exists(path));
    CHECK_EQ(f->data[5], 0);
    idt_blob_decref(f);
    CHECK(!h_exists(path));
    CHECK_EQ(h_count_files(), files);
    free(path);
}

/* An arena file goes when it is no longer current and its last blob goes. */
static void test_arena_file_removed(void) {
    h_no_leak_check(); /* the current chunk changes name; counts are checked below */
    h_snap before;
    h_snap_take(&before);
    int files = h_count_files();
    idt_error err;
    enum { MAXB = 200 };
    idt_blob *bl[MAXB];
    int n = 0;
    char *first = NULL;
    /* fill the current chunk until a blob lands in a new one */
    while (n < MAXB) {
        if (CHECK_OK(idt_blob_new(IDT_ARENA_MAX, &bl[n], &err), err)) break;
        if (!first) first = strdup(bl[0]->path);
        n++;
        if (strcmp(bl[n - 1]->path, first)) break;
    }
    REQUIRE(first != NULL);
    REQUIRE(n < MAXB);
    CHECK(n >= 2);
    CHECK_EQ(h_count_files(), files + 1); /* old chunk (with blobs) and the new one */
    idt_tmp_stats ts;
    idt_tmp_stats_get(&ts);
    CHECK_EQ(ts.arena_chunks, before.tmp.arena_chunks + 1);
    /* drop the old chunk's blobs but one: the file stays */
    for (int i = 0; i < n - 2; i++) idt_blob_decref(bl[i]);
    CHECK(h_exists(first));
    idt_blob_decref(bl[n - 2]);
    CHECK(!h_exists(first)); /* its last blob went */
    CHECK_EQ(h_count_files(), files);
    idt_blob_decref(bl[n - 1]);
    CHECK_EQ(h_count_files(), files); /* the new chunk is current: it stays */
    free(first);
    CHECK_SNAP(before);
}

static void test_shrink(void) {
    idt_error err;
    idt_blob *f;
    REQUIRE(CHECK_OK(idt_blob_new(8 << 20, &f, &err), err) == 0);
    memset(f->data, 'x', 100);
    idt_blob_shrink(f, 100);
    CHECK_EQ(f->size, 100);
    CHECK(file_size(f->path) < (8 << 20));
    CHECK_EQ(f->data[99], 'x');
    idt_blob_shrink(f, 1000); /* growing is a no-op */
    CHECK_EQ(f->size, 100);
    idt_blob_decref(f);
    /* the newest arena blob gives its tail back to the chunk */
    idt_blob *a, *b;
    REQUIRE(CHECK_OK(idt_blob_new(10000, &a, &err), err) == 0);
    idt_blob_shrink(a, 10);
    CHECK_EQ(a->size, 10);
    REQUIRE(CHECK_OK(idt_blob_new(10, &b, &err), err) == 0);
    if (b->chunk == a->chunk) CHECK_EQ(b->offset, a->offset + IDT_BLOB_ALIGN);
    idt_blob_shrink(b, 0);
    idt_blob_decref(a);
    idt_blob_decref(b);
}

static void test_map_file(void) {
    char path[] = "/tmp/idt-test-map-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "hello world", 11) == 11);
    close(fd);
    idt_blob *b;
    idt_error err;
    REQUIRE(CHECK_OK(idt_blob_map_file(path, &b, &err), err) == 0);
    CHECK_EQ(b->kind, IDT_BLOB_LOADED);
    CHECK_EQ(b->size, 11);
    CHECK(!memcmp(b->data, "hello world", 11));
    idt_blob_decref(b);
    CHECK(h_exists(path)); /* loaded files are never unlinked */
    /* empty file */
    REQUIRE(truncate(path, 0) == 0);
    REQUIRE(CHECK_OK(idt_blob_map_file(path, &b, &err), err) == 0);
    CHECK_EQ(b->size, 0);
    idt_blob_decref(b);
    unlink(path);
    CHECK_ERR(idt_blob_map_file(path, &b, &err), IDT_EIO, err, path);
    CHECK_EQ(err.sys_errno, ENOENT);
}

/* Adopting a loaded file of this process's temp directory: renamed to a temp name, removed at
 * the last decref; files elsewhere, arena blobs and a failing rename are refused unchanged. */
static void test_adopt(void) {
    const char *dir;
    idt_error err;
    REQUIRE(CHECK_OK(idt_tmp_procdir(&dir, &err), err) == 0);
    char *path = idt_path_join(dir, "s-adopt-me.idt");
    REQUIRE(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "part data", 9) == 9);
    close(fd);
    idt_blob *b;
    REQUIRE(CHECK_OK(idt_blob_map_file(path, &b, &err), err) == 0);
    idt_fault_arm(IDT_FAULT_RENAME, 1, 0, 0);
    CHECK_ERR(idt_blob_adopt(b, &err), IDT_EIO, err, "rename");
    idt_fault_reset();
    CHECK_EQ(b->kind, IDT_BLOB_LOADED);
    CHECK(h_exists(path));
    REQUIRE(CHECK_OK(idt_blob_adopt(b, &err), err) == 0);
    CHECK_EQ(b->kind, IDT_BLOB_FILE);
    CHECK(!h_exists(path));
    CHECK(h_exists(b->path));
    CHECK(strrchr(b->path, '/')[1] == 'b');
    CHECK(!memcmp(b->data, "part data", 9));
    char *now = idt_strdup(b->path);
    idt_blob_decref(b);
    CHECK(!h_exists(now)); /* ours now: removed with the last reference */
    idt_free(now);
    idt_free(path);
    /* a file outside the temp directory, and a blob that is not a loaded file */
    char out[] = "/tmp/idt-test-adopt-XXXXXX";
    fd = mkstemp(out);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(CHECK_OK(idt_blob_map_file(out, &b, &err), err) == 0);
    CHECK_ERR(idt_blob_adopt(b, &err), IDT_EVALUE, err, "temp directory");
    idt_blob_decref(b);
    CHECK(h_exists(out));
    unlink(out);
    REQUIRE(CHECK_OK(idt_blob_new(64, &b, &err), err) == 0);
    CHECK_ERR(idt_blob_adopt(b, &err), IDT_EVALUE, err, "loaded");
    idt_blob_decref(b);
}

/* A forked child that drops inherited blobs never unlinks the parent's files, and its exit
 * removes only its own directory. */
static void test_fork_child_drops(void) {
    idt_error err;
    idt_blob *f, *a;
    REQUIRE(CHECK_OK(idt_blob_new(IDT_ARENA_MAX * 2, &f, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_blob_new(1000, &a, &err), err) == 0);
    memset(a->data, 'p', 1000);
    char *mydir = dup_procdir();
    REQUIRE(mydir != NULL);
    h_names before;
    h_names_list(mydir, &before);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        int bad = a->data[999] != 'p';
        idt_blob_decref(f);
        idt_blob_decref(a);
        /* the child makes its own directory for its own blobs */
        idt_blob *c;
        if (idt_blob_new(50, &c, &err)) bad |= 2;
        const char *cd = "";
        if (idt_tmp_procdir(&cd, &err)) bad |= 4;
        if (!strcmp(cd, mydir)) bad |= 8;
        char msg[600];
        snprintf(msg, sizeof msg, "%s", cd);
        if (write(pfd[1], msg, strlen(msg) + 1) < 0) bad |= 16;
        idt_blob_decref(c);
        exit(bad); /* atexit shutdown: the child's own directory only */
    }
    close(pfd[1]);
    char childdir[600] = {0};
    ssize_t got = read(pfd[0], childdir, sizeof childdir - 1);
    close(pfd[0]);
    int st;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    CHECK(got > 0);
    CHECK(childdir[0] && strcmp(childdir, mydir) != 0);
    CHECK(!h_exists(childdir));
    CHECK(h_exists(f->path));
    CHECK(h_exists(a->path));
    h_names after;
    h_names_list(mydir, &after);
    char buf[256];
    if (!h_names_equal(&before, &after, buf, sizeof buf)) h_fail(__FILE__, __LINE__, "parent's files changed: %s", buf);
    h_names_free(&before);
    h_names_free(&after);
    CHECK_EQ(a->data[500], 'p');
    char *fpath = strdup(f->path);
    idt_blob_decref(f);
    idt_blob_decref(a);
    CHECK(!h_exists(fpath)); /* the parent still removes its own */
    free(fpath);
    free(mydir);
}

/* Fork a child that makes a blob of `size` bytes in its own directory and reports the
 * directory; with `hold`, it then waits for a byte on *go before exiting with _exit (no
 * cleanup either way). */
static pid_t spawn_blob_child(size_t size, int hold, char *dir, size_t dirlen, int *go) {
    int pfd[2], gfd[2];
    if (pipe(pfd) || pipe(gfd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(pfd[0]);
        close(gfd[1]);
        idt_blob *b;
        idt_error err;
        const char *d = "";
        if (idt_blob_new(size, &b, &err) || idt_tmp_procdir(&d, &err)) _exit(3);
        memset(b->data, 1, size);
        if (write(pfd[1], d, strlen(d) + 1) < 0) _exit(4);
        if (hold) {
            char c;
            if (read(gfd[0], &c, 1) < 0) _exit(5);
        }
        _exit(0); /* dies without removing anything */
    }
    close(pfd[1]);
    close(gfd[0]);
    memset(dir, 0, dirlen);
    ssize_t got = read(pfd[0], dir, dirlen - 1);
    close(pfd[0]);
    if (got <= 0) dir[0] = 0;
    if (hold) *go = gfd[1];
    else close(gfd[1]);
    if (!hold) {
        int st;
        waitpid(pid, &st, 0);
    }
    return pid;
}

/* Make directory `dir` (0700) holding a file `lock` with `content`. */
static int plant_dir(const char *dir, const char *content) {
    if (mkdir(dir, 0700) != 0) return -1;
    char lk[PATH_MAX];
    snprintf(lk, sizeof lk, "%s/lock", dir);
    int fd = open(lk, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) return -1;
    ssize_t n = write(fd, content, strlen(content));
    close(fd);
    return n == (ssize_t)strlen(content) ? 0 : -1;
}

static void test_gc(void) {
    idt_error err;
    char dead[600], live[600];
    int go = -1;
    pid_t pd = spawn_blob_child(IDT_ARENA_MAX + 4096, 0, dead, sizeof dead, NULL);
    pid_t pl = spawn_blob_child(100, 1, live, sizeof live, &go);
    REQUIRE(pd > 0 && pl > 0);
    REQUIRE(dead[0] && live[0]);
    CHECK(h_exists(dead));
    CHECK(h_exists(live));
    char *mine = dup_procdir();
    REQUIRE(mine != NULL);
    const char *root = idt_tmp_root();
    /* a half-made directory (.new-...) of a dead process: young ones are left alone */
    char young[700], old[700], lk[800];
    snprintf(young, sizeof young, "%s/.new-999999-00000000000000aa", root);
    snprintf(old, sizeof old, "%s/.new-999998-00000000000000bb", root);
    const char *left[2] = {young, old}; /* from an earlier run that crashed */
    for (int i = 0; i < 2; i++) {
        snprintf(lk, sizeof lk, "%s/lock", left[i]);
        unlink(lk);
        rmdir(left[i]);
    }
    CHECK(plant_dir(young, IDT_TMP_MARKER "999999-00000000000000aa\n") == 0);
    CHECK(plant_dir(old, IDT_TMP_MARKER "999998-00000000000000bb\n") == 0);
    struct timeval tv[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    CHECK(utimes(old, tv) == 0);
    /* a file and a non-matching directory under the root are not the collector's */
    char other[700];
    snprintf(other, sizeof other, "%s/zz-not-ours", root);
    rmdir(other);
    CHECK(mkdir(other, 0700) == 0);

    /* dry run: counts, removes nothing */
    idt_gc_report dry, real;
    REQUIRE(CHECK_OK(idt_tmp_gc(NULL, 1, &dry, &err), err) == 0);
    CHECK_EQ(dry.dirs, 2);           /* the dead child's and the old .new- */
    CHECK_EQ(dry.files, 3);          /* lock and blob file; lock */
    CHECK(dry.bytes >= (int64_t)IDT_ARENA_MAX);
    CHECK(h_exists(dead));
    CHECK(h_exists(old));
    CHECK(h_exists(live));
    CHECK(h_exists(mine));
    /* for real: the same counts */
    REQUIRE(CHECK_OK(idt_tmp_gc(root, 0, &real, &err), err) == 0);
    CHECK_EQ(real.dirs, dry.dirs);
    CHECK_EQ(real.files, dry.files);
    CHECK_EQ(real.bytes, dry.bytes);
    CHECK(!h_exists(dead));
    CHECK(!h_exists(old));
    CHECK(h_exists(young));
    CHECK(h_exists(live));   /* its lock is held */
    CHECK(h_exists(mine));   /* ours */
    CHECK(h_exists(other));
    /* again: nothing left to reap (report may be NULL) */
    CHECK_OK(idt_tmp_gc(NULL, 0, NULL, &err), err);
    CHECK(h_exists(live));
    /* the live child dies: now its directory goes */
    if (go >= 0) {
        CHECK(write(go, "x", 1) == 1);
        close(go);
    }
    int st;
    waitpid(pl, &st, 0);
    REQUIRE(CHECK_OK(idt_tmp_gc(NULL, 0, &real, &err), err) == 0);
    CHECK_EQ(real.dirs, 1);
    CHECK(!h_exists(live));
    CHECK(h_exists(mine));
    /* roots that cannot be read */
    CHECK_OK(idt_tmp_gc("/nonexistent/idt-root", 0, &real, &err), err);
    CHECK_EQ(real.dirs, 0);
    snprintf(lk, sizeof lk, "%s/lock", young); /* a file, not a directory */
    CHECK_ERR(idt_tmp_gc(lk, 0, &real, &err), IDT_EIO, err, lk);
    unlink(lk);
    rmdir(young);
    rmdir(other);
    free(mine);
}

static void test_shutdown(void) {
    h_no_leak_check(); /* a new directory is made after; counts are checked below */
    h_snap before;
    h_snap_take(&before);
    idt_error err;
    char *dir = dup_procdir();
    REQUIRE(dir != NULL);
    idt_blob *f, *a;
    REQUIRE(CHECK_OK(idt_blob_new(IDT_ARENA_MAX + 1, &f, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_blob_new(64, &a, &err), err) == 0);
    memset(f->data, 'f', 10);
    memset(a->data, 'a', 10);
    idt_tmp_shutdown();
    CHECK(!h_exists(dir));
    CHECK(!h_exists(f->path));
    CHECK_EQ(f->data[9], 'f'); /* mappings stay readable */
    CHECK_EQ(a->data[9], 'a');
    idt_tmp_shutdown(); /* twice is fine */
    /* the next blob makes a new directory */
    idt_blob *n;
    REQUIRE(CHECK_OK(idt_blob_new(64, &n, &err), err) == 0);
    char *dir2 = dup_procdir();
    CHECK(dir2 && strcmp(dir, dir2) != 0);
    CHECK(dir2 && h_exists(dir2));
    idt_blob_decref(f);
    idt_blob_decref(a);
    idt_blob_decref(n);
    CHECK_SNAP(before);
    free(dir);
    free(dir2);
}

/* Blobs made and dropped from several threads at once never overlap. */
typedef struct worker_arg {
    int id;
    int bad;
} worker_arg;

static void *blob_worker(void *p) {
    worker_arg *w = p;
    idt_blob *live[8] = {0};
    uint64_t r = 0x9E3779B97F4A7C15u * (uint64_t)(w->id + 1);
    for (int it = 0; it < 400; it++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        int k = (int)(r % 8);
        if (live[k]) {
            for (size_t i = 0; i < live[k]->size; i++)
                if ((unsigned char)live[k]->data[i] != (unsigned char)(w->id * 8 + k)) {
                    w->bad = 1;
                    break;
                }
            idt_blob_decref(live[k]);
            live[k] = NULL;
        }
        size_t size = it % 97 == 0 ? IDT_ARENA_MAX + 100 : (size_t)(r >> 20) % 5000;
        idt_error err;
        if (idt_blob_new(size, &live[k], &err)) {
            w->bad = 2;
            break;
        }
        memset(live[k]->data, w->id * 8 + k, size);
    }
    for (int k = 0; k < 8; k++) idt_blob_decref(live[k]);
    return NULL;
}

static void test_threads(void) {
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){i, 0};
        REQUIRE(pthread_create(&th[i], NULL, blob_worker, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].bad, 0);
    }
}

/* Allocated bytes (st_blocks) of every file in this process's directory. */
static int64_t dir_blocks_bytes(void) {
    const char *d;
    idt_error err;
    if (idt_tmp_procdir(&d, &err)) return -1;
    h_names l;
    h_names_list(d, &l);
    int64_t sum = 0;
    for (int i = 0; i < l.n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", d, l.names[i]);
        struct stat st;
        if (lstat(p, &st) == 0) sum += (int64_t)st.st_blocks * 512;
    }
    h_names_free(&l);
    return sum;
}

/* Can files in the temp area have holes punched? (Not every file system can.) */
static int punch_supported(void) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/punch-probe", idt_tmp_root());
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 0;
    int ok = posix_fallocate(fd, 0, 1 << 16) == 0 &&
             fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 16) == 0;
    close(fd);
    unlink(p);
    return ok;
}

/* Freed arena ranges are reused (first fit) and their blocks given back (at once with a
 * slack of 0; in a sweep once more than the slack is freed otherwise); what is reused reads
 * as zeros; with nothing alive the chunk holds no blocks. */
static void arena_reuse(size_t slack) {
    enum { NB = 200, SZ = 10000 };
    size_t old_slack = idt_tmp_slack_set(slack);
    idt_error err;
    idt_tmp_stats t0, t1;
    idt_tmp_stats_get(&t0);
    int64_t base = dir_blocks_bytes();
    int punch = punch_supported();
    idt_blob *b[NB];
    for (int i = 0; i < NB; i++) {
        REQUIRE(CHECK_OK(idt_blob_new(SZ, &b[i], &err), err) == 0);
        memset(b[i]->data, 0xA0 + i % 16, SZ);
    }
    idt_tmp_stats_get(&t1);
    size_t need = (SZ + IDT_BLOB_ALIGN - 1) / IDT_BLOB_ALIGN * IDT_BLOB_ALIGN;
    CHECK_EQ(t1.arena_bytes - t0.arena_bytes, (int64_t)(NB * need));
    CHECK(dir_blocks_bytes() - base >= (int64_t)(NB * SZ));
    /* keep every 10th */
    int64_t live = 0;
    for (int i = 0; i < NB; i++)
        if (i % 10) {
            idt_blob_decref(b[i]);
            b[i] = NULL;
        } else {
            live += SZ;
        }
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.arena_bytes - t0.arena_bytes, (int64_t)(NB / 10 * need));
    /* live bytes plus at most two partial pages per live blob, plus the slack */
    if (punch) CHECK(dir_blocks_bytes() - base <= live + NB / 10 * 2 * 4096 + (int64_t)slack);
    for (int i = 0; i < NB; i += 10)
        CHECK_EQ((unsigned char)b[i]->data[SZ - 1], 0xA0 + i % 16);
    /* new blobs go into the holes (no new chunk) and read as zeros */
    idt_blob *n[NB];
    for (int i = 0; i < NB; i++) {
        if (i % 10 == 0) {
            n[i] = NULL;
            continue;
        }
        REQUIRE(CHECK_OK(idt_blob_new(SZ, &n[i], &err), err) == 0);
        int zero = 1;
        for (size_t k = 0; k < SZ; k++) zero &= n[i]->data[k] == 0;
        CHECK(zero);
        memset(n[i]->data, 0x55, SZ);
    }
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.arena_chunks, t0.arena_chunks);
    CHECK_EQ(t1.arena_bytes - t0.arena_bytes, (int64_t)(NB * need));
    for (int i = 0; i < NB; i++) {
        idt_blob_decref(b[i]);
        idt_blob_decref(n[i]);
    }
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.arena_bytes, t0.arena_bytes);
    if (punch) CHECK(dir_blocks_bytes() <= base); /* nothing alive: all given back */
    /* churn with a few tiny blobs alive: blocks stay near what is alive */
    idt_blob *keep[20];
    for (int k = 0; k < 20; k++) REQUIRE(CHECK_OK(idt_blob_new(24, &keep[k], &err), err) == 0);
    int64_t peak = 0;
    int iters = slack ? 3000 : 300; /* punching at every free is slow (ms each on ext4) */
    for (int it = 0; it < iters; it++) {
        idt_blob *x, *y;
        REQUIRE(CHECK_OK(idt_blob_new(1000 + (size_t)(it * 37) % 60000, &x, &err), err) == 0);
        REQUIRE(CHECK_OK(idt_blob_new(64 + (size_t)it % 5000, &y, &err), err) == 0);
        CHECK(x->data[x->size - 1] == 0 && y->data[0] == 0);
        memset(x->data, 1, x->size);
        memset(y->data, 2, y->size);
        idt_blob_decref(x);
        if (it % 100 == 0) {
            int64_t h = dir_blocks_bytes() - base;
            if (h > peak) peak = h;
        }
        idt_blob_decref(y);
    }
    if (punch) CHECK(peak <= 20 * 2 * 4096 + 2 * 70000 + (int64_t)slack);
    printf("  slack %zu: churn peak %lld bytes held above the start, 20 tiny blobs alive\n", slack,
           (long long)peak);
    for (int k = 0; k < 20; k++) idt_blob_decref(keep[k]);
    if (punch) CHECK(dir_blocks_bytes() <= base);
    idt_tmp_slack_set(old_slack);
}

static void test_arena_reuse_and_punch(void) {
    arena_reuse(0);
    arena_reuse(IDT_ARENA_SLACK);
}

/* Child mode: a file system that cannot punch holes (every punch fails with EOPNOTSUPP):
 * freed space is still reused and reads as zeros, and the last blob's chunk is removed. */
static int child_nopunch(void) {
    idt_fault_arm(IDT_FAULT_PUNCH, 1, EOPNOTSUPP, 1);
    idt_tmp_slack_set(0);
    idt_error err;
    idt_blob *keep, *x;
    if (idt_blob_new(100, &keep, &err)) return 2;
    for (int it = 0; it < 200; it++) {
        if (idt_blob_new(5000 + (size_t)it * 13, &x, &err)) return 3;
        for (size_t k = 0; k < x->size; k++)
            if (x->data[k]) return 4;
        memset(x->data, 9, x->size);
        idt_blob_decref(x);
    }
    if (idt_fault_fired() == 0) return 5;
    idt_tmp_stats ts;
    idt_tmp_stats_get(&ts);
    if (ts.arena_chunks != 1) return 6;
    idt_blob_decref(keep);
    idt_tmp_stats_get(&ts);
    if (ts.arena_chunks != 0) return 7; /* it could not give its blocks back: removed */
    return 0;
}

static void test_arena_without_punching(void) {
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s-nopunch", idt_tmp_root());
    CHECK_EQ(run_child("--child-nopunch", root, "x"), 0);
    CHECK(!h_exists(root));
}

/* The shrunk tail of an arena blob is given back. */
static void test_arena_shrink_gives_back(void) {
    idt_error err;
    idt_tmp_stats t0, t1;
    idt_tmp_stats_get(&t0);
    idt_blob *a;
    REQUIRE(CHECK_OK(idt_blob_new(500000, &a, &err), err) == 0);
    memset(a->data, 7, 500000);
    idt_blob_shrink(a, 100);
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.arena_bytes - t0.arena_bytes, 128);
    CHECK_EQ(a->data[99], 7);
    idt_blob *b;
    REQUIRE(CHECK_OK(idt_blob_new(400000, &b, &err), err) == 0);
    CHECK(b->data[0] == 0 && b->data[399999] == 0);
    idt_blob_decref(a);
    idt_blob_decref(b);
    idt_tmp_stats_get(&t1);
    CHECK_EQ(t1.arena_bytes, t0.arena_bytes);
}

/* Child mode: under RLIMIT_FSIZE of 200 KiB (SIGXFSZ ignored: EFBIG), small blobs still work
 * and one over the limit is a clean IDT_EIO. */
static int child_fsize(void) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {200 * 1024, 200 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 2;
    idt_blob *b[10];
    idt_error err;
    for (int i = 0; i < 10; i++) {
        if (idt_blob_new(100, &b[i], &err)) {
            fprintf(stderr, "small blob: %s\n", err.msg);
            return 3;
        }
        memset(b[i]->data, i, 100);
    }
    idt_blob *big;
    int rc = idt_blob_new(IDT_ARENA_MAX, &big, &err);
    if (rc != IDT_EIO || err.sys_errno != EFBIG) {
        fprintf(stderr, "1 MiB blob: rc %d errno %d (%s)\n", rc, err.sys_errno, err.msg);
        return 4;
    }
    rc = idt_blob_new(IDT_ARENA_MAX + 1, &big, &err);
    if (rc != IDT_EIO) return 5;
    for (int i = 0; i < 10; i++) {
        if (b[i]->data[99] != i) return 6;
        idt_blob_decref(b[i]);
    }
    return 0;
}

static void test_fsize_limit(void) {
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s-fsize", idt_tmp_root());
    CHECK_EQ(run_child("--child-fsize", root, "x"), 0);
    CHECK(!h_exists(root)); /* made by the child, removed at its exit */
}

/* Reaping never follows a symlink, and leaves unmarked look-alikes alone. */
static void test_gc_hostile(void) {
    idt_error err;
    char root[PATH_MAX], victim[PATH_MAX], p[PATH_MAX + 64];
    snprintf(root, sizeof root, "%s-hostile", idt_tmp_root());
    snprintf(victim, sizeof victim, "%s-victim", idt_tmp_root());
    REQUIRE(mkdir(root, 0700) == 0 || errno == EEXIST);
    /* the victim carries a valid-looking marker for the link's name */
    REQUIRE(plant_dir(victim, IDT_TMP_MARKER "4242-00000000000000aa\n") == 0);
    snprintf(p, sizeof p, "%s/a1.idt", victim);
    close(open(p, O_CREAT | O_RDWR, 0600));
    snprintf(p, sizeof p, "%s/p4242-00000000000000aa", root);
    REQUIRE(symlink(victim, p) == 0);
    /* an unmarked look-alike with an unlocked lock */
    snprintf(p, sizeof p, "%s/p4243-00000000000000bb", root);
    REQUIRE(plant_dir(p, "") == 0);
    snprintf(p, sizeof p, "%s/p4243-00000000000000bb/b2.idt", root);
    close(open(p, O_CREAT | O_RDWR, 0600));
    idt_gc_report rep;
    REQUIRE(CHECK_OK(idt_tmp_gc(root, 0, &rep, &err), err) == 0);
    CHECK_EQ(rep.dirs, 0);
    CHECK_EQ(rep.files, 0);
    snprintf(p, sizeof p, "%s/a1.idt", victim);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/lock", victim);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/p4243-00000000000000bb/b2.idt", root);
    CHECK(h_exists(p));
    /* clean up */
    snprintf(p, sizeof p, "%s/p4242-00000000000000aa", root);
    unlink(p);
    const char *rm[] = {"p4243-00000000000000bb/b2.idt", "p4243-00000000000000bb/lock",
                        "p4243-00000000000000bb"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", root, rm[i]);
        if (i == 2) rmdir(p);
        else unlink(p);
    }
    rmdir(root);
    snprintf(p, sizeof p, "%s/a1.idt", victim);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock", victim);
    unlink(p);
    rmdir(victim);
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "--child-bad-root")) return child_bad_root(argv[2]);
    if (argc > 2 && !strcmp(argv[1], "--child-fresh-root")) return child_fresh_root(argv[2]);
    if (argc > 2 && !strcmp(argv[1], "--child-fsize")) return child_fsize();
    if (argc > 2 && !strcmp(argv[1], "--child-nopunch")) return child_nopunch();
    static const h_test tests[] = {
        H_TEST(test_bad_root),
        H_TEST(test_fresh_root),
        H_TEST(test_procdir),
        H_TEST(test_blob_kinds),
        H_TEST(test_file_removed_at_last_decref),
        H_TEST(test_arena_file_removed),
        H_TEST(test_shrink),
        H_TEST(test_map_file),
        H_TEST(test_adopt),
        H_TEST(test_fork_child_drops),
        H_TEST(test_gc),
        H_TEST(test_shutdown),
        H_TEST(test_threads),
        H_TEST(test_arena_reuse_and_punch),
        H_TEST(test_arena_shrink_gives_back),
        H_TEST(test_arena_without_punching),
        H_TEST(test_fsize_limit),
        H_TEST(test_gc_hostile),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}
