/*
 * ezipc's native part for shm:// (Linux): the few things Node cannot do by itself. Everything else
 * (layout, ring, packets, protocols) is TypeScript over the mapped memory with Atomics.
 *
 *   map(fd, length)            mmap(MAP_SHARED) of an open file, as an ArrayBuffer (munmap when collected)
 *   populate(ab, off, length)  gives pages of a mapping their memory now (MADV_POPULATE_WRITE): 0, or ENOSPC
 *                              where a full /dev/shm would have killed the first write to them with SIGBUS,
 *                              or EINVAL where the kernel cannot (before Linux 5.14)
 *   mutexInit(ab, offset)      a robust, process-shared pthread mutex at ab[offset]
 *   mutexLock(ab, offset, ms)  0 | EOWNERDEAD | ETIMEDOUT | ENOTRECOVERABLE (blocks at most ms)
 *   mutexTryLock(ab, offset)   0 | EBUSY | EOWNERDEAD | ENOTRECOVERABLE
 *   mutexConsistent(ab, off)   after EOWNERDEAD, once the protected state is repaired
 *   mutexUnlock(ab, offset)
 *   mkfifo(path, mode)         a named pipe (the wake-up channel of a sleeping reader)
 *   watchFd(fd, fn)            calls fn on the event loop whenever fd is readable, after reading it empty
 *                              (a uv_poll: no thread, no stream machinery); pollerRef/Unref/Close(handle)
 *   MUTEX_BYTES                sizeof(pthread_mutex_t)
 *
 * Errors are thrown as Error objects whose `code` is the errno name; callers map them to EZIPC_ codes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                                                        \
  do {                                                                                                     \
    if ((call) != napi_ok) return NULL;                                                                    \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char* name = err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : err == EEXIST ? "EEXIST"
                   : err == ENOMEM ? "ENOMEM" : err == EINVAL ? "EINVAL" : err == ENODEV ? "ENODEV"
                   : err == ENOSPC ? "ENOSPC" : err == EFBIG ? "EFBIG" : "EIO";
  napi_throw_error(env, name, msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return 0;
  }
  return 1;
}

static int get_i64(napi_env env, napi_value v, int64_t* out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return 0;
  }
  return 1;
}

typedef struct {
  size_t length;
} mapping_t;

static void unmap(napi_env env, void* data, void* hint) {
  (void)env;
  mapping_t* m = (mapping_t*)hint;
  munmap(data, m->length);
  free(m);
}

static napi_value js_map(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd, length;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &length))
    return NULL;
  if (fd < 0 || length <= 0) {
    napi_throw_range_error(env, NULL, "bad fd or length");
    return NULL;
  }
  void* p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
  if (p == MAP_FAILED) return throw_errno(env, errno, "mmap");
  mapping_t* m = malloc(sizeof *m);
  if (!m) {
    munmap(p, (size_t)length);
    return throw_errno(env, ENOMEM, "mmap");
  }
  m->length = (size_t)length;
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)length, unmap, m, &ab) != napi_ok) {
    munmap(p, (size_t)length);
    free(m);
    return NULL;
  }
  return ab;
}

/* The mutex at ab[offset], checked to lie inside the buffer and be 8-byte aligned. */
static pthread_mutex_t* mutex_at(napi_env env, napi_value abv, napi_value offv) {
  void* data;
  size_t length;
  int64_t off;
  if (napi_get_arraybuffer_info(env, abv, &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an ArrayBuffer");
    return NULL;
  }
  if (!get_i64(env, offv, &off)) return NULL;
  if (off < 0 || (off & 7) != 0 || (size_t)off + sizeof(pthread_mutex_t) > length) {
    napi_throw_range_error(env, NULL, "mutex offset outside the buffer or unaligned");
    return NULL;
  }
  return (pthread_mutex_t*)((char*)data + off);
}

static napi_value num(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static napi_value js_mutex_init(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_mutex_t* mu = mutex_at(env, argv[0], argv[1]);
  if (!mu) return NULL;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  int r = pthread_mutex_init(mu, &attr);
  pthread_mutexattr_destroy(&attr);
  if (r != 0) return throw_errno(env, r, "pthread_mutex_init");
  return num(env, 0);
}

static napi_value js_mutex_lock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t ms;
  if (!get_args(env, info, 3, argv)) return NULL;
  pthread_mutex_t* mu = mutex_at(env, argv[0], argv[1]);
  if (!mu || !get_i64(env, argv[2], &ms)) return NULL;
  int r = pthread_mutex_trylock(mu);
  if (r != EBUSY) return num(env, r);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return num(env, pthread_mutex_timedlock(mu, &until));
}

static napi_value js_mutex_trylock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_mutex_t* mu = mutex_at(env, argv[0], argv[1]);
  if (!mu) return NULL;
  return num(env, pthread_mutex_trylock(mu));
}

static napi_value js_mutex_consistent(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_mutex_t* mu = mutex_at(env, argv[0], argv[1]);
  if (!mu) return NULL;
  return num(env, pthread_mutex_consistent(mu));
}

static napi_value js_mutex_unlock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_mutex_t* mu = mutex_at(env, argv[0], argv[1]);
  if (!mu) return NULL;
  return num(env, pthread_mutex_unlock(mu));
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// A page of a tmpfs file gets its memory when it is first touched; if /dev/shm is full then, the touching
// process dies of SIGBUS. Populating pages ahead of the writes that will touch them turns that into an error.
static napi_value js_populate(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t off, len;
  void* data;
  size_t size;
  if (!get_args(env, info, 3, argv) || !get_i64(env, argv[1], &off) || !get_i64(env, argv[2], &len)) return NULL;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an ArrayBuffer");
    return NULL;
  }
  long page = sysconf(_SC_PAGESIZE);
  if (off < 0 || len < 0 || (uint64_t)off + (uint64_t)len > size) {
    napi_throw_range_error(env, NULL, "range outside the mapping");
    return NULL;
  }
  if (len == 0) return num(env, 0);
  int64_t start = off - off % page;  // (the mapping itself starts on a page)
  int r = 0;
  if (madvise((char*)data + start, (size_t)(off + len - start), MADV_POPULATE_WRITE) != 0) {
    // EFAULT: a page could not get memory (what would have been a SIGBUS); ENOMEM likewise.
    r = errno == EFAULT || errno == ENOMEM ? ENOSPC : errno;
  }
  return num(env, r);
}

static napi_value js_mkfifo(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[4096];
  size_t len;
  int64_t mode;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a path");
    return NULL;
  }
  if (len >= sizeof path - 1) {
    napi_throw_range_error(env, NULL, "path too long");
    return NULL;
  }
  if (!get_i64(env, argv[1], &mode)) return NULL;
  if (mkfifo(path, (mode_t)mode) != 0) return throw_errno(env, errno, "mkfifo");
  return num(env, 0);
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref fn;
  napi_async_context ctx;
  int fd;
  int closed;
} poller_t;

static void poller_freed(uv_handle_t* h) {
  free(h->data);
}

static void on_readable(uv_poll_t* h, int status, int events) {
  (void)events;
  poller_t* p = (poller_t*)h->data;
  if (p->closed) return;
  /* One read empties a pipe holding fewer bytes than the buffer (a second would only say EAGAIN). */
  char buf[512];
  while (read(p->fd, buf, sizeof buf) == (ssize_t)sizeof buf) {
  }
  (void)status;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, global, result;
  if (napi_get_reference_value(env, p->fn, &fn) == napi_ok && napi_get_global(env, &global) == napi_ok) {
    if (napi_make_callback(env, p->ctx, global, fn, 0, NULL, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void poller_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  (void)hint;
}

static napi_value js_watch_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &fd)) return NULL;
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  poller_t* p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, ENOMEM, "watchFd");
  p->env = env;
  p->fd = (int)fd;
  p->poll.data = p;
  napi_value name;
  napi_create_string_utf8(env, "ezipc:shm-wake", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &p->fn) != napi_ok ||
      napi_async_init(env, NULL, name, &p->ctx) != napi_ok) {
    free(p);
    return NULL;
  }
  int r = uv_poll_init(loop, &p->poll, p->fd);
  if (r == 0) r = uv_poll_start(&p->poll, UV_READABLE, on_readable);
  if (r != 0) {
    napi_delete_reference(env, p->fn);
    napi_async_destroy(env, p->ctx);
    free(p);
    napi_throw_error(env, "EIO", uv_strerror(r));
    return NULL;
  }
  napi_value handle;
  napi_create_external(env, p, poller_finalize, NULL, &handle);
  return handle;
}

static poller_t* poller_of(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void* data;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a poller");
    return NULL;
  }
  return (poller_t*)data;
}

static napi_value js_poller_ref(napi_env env, napi_callback_info info) {
  poller_t* p = poller_of(env, info);
  if (p && !p->closed) uv_ref((uv_handle_t*)&p->poll);
  return NULL;
}

static napi_value js_poller_unref(napi_env env, napi_callback_info info) {
  poller_t* p = poller_of(env, info);
  if (p && !p->closed) uv_unref((uv_handle_t*)&p->poll);
  return NULL;
}

/* Stops watching (the fd stays open: the caller closes it) and frees the poller once libuv is done. */
static napi_value js_poller_close(napi_env env, napi_callback_info info) {
  poller_t* p = poller_of(env, info);
  if (!p || p->closed) return NULL;
  p->closed = 1;
  uv_poll_stop(&p->poll);
  napi_delete_reference(env, p->fn);
  napi_async_destroy(env, p->ctx);
  uv_close((uv_handle_t*)&p->poll, poller_freed);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"map", NULL, js_map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mutexInit", NULL, js_mutex_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mutexLock", NULL, js_mutex_lock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mutexTryLock", NULL, js_mutex_trylock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mutexConsistent", NULL, js_mutex_consistent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mutexUnlock", NULL, js_mutex_unlock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"populate", NULL, js_populate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkfifo", NULL, js_mkfifo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchFd", NULL, js_watch_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerRef", NULL, js_poller_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerUnref", NULL, js_poller_unref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerClose", NULL, js_poller_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  napi_value v;
  CHECK(napi_create_int32(env, (int32_t)sizeof(pthread_mutex_t), &v));
  CHECK(napi_set_named_property(env, exports, "MUTEX_BYTES", v));
  CHECK(napi_create_int32(env, EOWNERDEAD, &v));
  CHECK(napi_set_named_property(env, exports, "EOWNERDEAD", v));
  CHECK(napi_create_int32(env, EBUSY, &v));
  CHECK(napi_set_named_property(env, exports, "EBUSY", v));
  CHECK(napi_create_int32(env, ETIMEDOUT, &v));
  CHECK(napi_set_named_property(env, exports, "ETIMEDOUT", v));
  CHECK(napi_create_int32(env, ENOSPC, &v));
  CHECK(napi_set_named_property(env, exports, "ENOSPC", v));
  CHECK(napi_create_int32(env, EINVAL, &v));
  CHECK(napi_set_named_property(env, exports, "EINVAL", v));
  CHECK(napi_create_int32(env, ENOTRECOVERABLE, &v));
  CHECK(napi_set_named_property(env, exports, "ENOTRECOVERABLE", v));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
