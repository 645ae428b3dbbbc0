/*
 * ezipc_aead: Noise's two AEAD ciphers (ChaCha20-Poly1305, AES-256-GCM) on the OpenSSL that Node itself
 * carries (Node exports its libcrypto's symbols to addons; no other library is linked).
 *
 * Why it exists: node:crypto makes a cipher object per record, returns a fresh Buffer per update and
 * cannot work in place, which costs several microseconds a record and halves the cipher's speed on
 * 64 KiB records. Here one EVP context per cipher and direction lives for the whole process (per Node
 * environment), is re-keyed per call (a key schedule is well under a microsecond), and seals a record's
 * pieces straight into one output buffer; opening can write the plaintext over the ciphertext.
 *
 *   seal(alg, key, n, ad, parts, out)  -> bytes written to out: ciphertext of parts joined, then the tag
 *   open(alg, key, n, ad, sealed, out) -> true, or false when authentication fails (out then undefined)
 *   openParts(alg, key, n, ad, parts)  -> the same for a record in pieces, each opened where it lies
 *
 * alg: 0 ChaCha20-Poly1305 (nonce = 4 zero bytes, n little-endian), 1 AES-256-GCM (n big-endian).
 * n: a number below 2^53 or a bigint below 2^64. Everything else is checked and throws a TypeError or
 * RangeError; nothing here keeps a pointer to a JavaScript buffer after it returns.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TAG 16
#define KEY 32
#define MAX_PARTS 64

typedef struct {
  EVP_CIPHER_CTX* enc[2];
  EVP_CIPHER_CTX* dec[2];
} aead_t;

static void free_instance(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  aead_t* a = (aead_t*)data;
  for (int i = 0; i < 2; i++) {
    if (a->enc[i]) EVP_CIPHER_CTX_free(a->enc[i]);
    if (a->dec[i]) EVP_CIPHER_CTX_free(a->dec[i]);
  }
  free(a);
}

static const EVP_CIPHER* cipher_of(int alg) { return alg == 0 ? EVP_chacha20_poly1305() : EVP_aes_256_gcm(); }

/* The context for (alg, direction), made and given its cipher once. */
static EVP_CIPHER_CTX* context(napi_env env, int alg, int encrypt) {
  aead_t* a = NULL;
  if (napi_get_instance_data(env, (void**)&a) != napi_ok || a == NULL) return NULL;
  EVP_CIPHER_CTX** slot = encrypt ? &a->enc[alg] : &a->dec[alg];
  if (*slot == NULL) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return NULL;
    if (EVP_CipherInit_ex(ctx, cipher_of(alg), NULL, NULL, NULL, encrypt) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      return NULL;
    }
    *slot = ctx;
  }
  return *slot;
}

static int bytes_of(napi_env env, napi_value v, uint8_t** data, size_t* length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void* p = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) goto bad;
  if (napi_get_typedarray_info(env, v, &type, length, &p, NULL, NULL) != napi_ok) goto bad;
  if (type != napi_uint8_array) goto bad;
  *data = (uint8_t*)p;
  return 1;
bad:
  napi_throw_type_error(env, NULL, "expected a Uint8Array");
  return 0;
}

/* args: alg, key, n -> alg index, key pointer, the 12-byte nonce */
static int common_args(napi_env env, napi_value* argv, int* alg, uint8_t** key, uint8_t nonce[12]) {
  int32_t a = -1;
  if (napi_get_value_int32(env, argv[0], &a) != napi_ok || (a != 0 && a != 1)) {
    napi_throw_type_error(env, NULL, "alg is 0 (ChaCha20-Poly1305) or 1 (AES-256-GCM)");
    return 0;
  }
  *alg = a;
  size_t key_length = 0;
  if (!bytes_of(env, argv[1], key, &key_length)) return 0;
  if (key_length != KEY) {
    napi_throw_range_error(env, NULL, "a key is 32 bytes");
    return 0;
  }
  napi_valuetype t;
  uint64_t n = 0;
  if (napi_typeof(env, argv[2], &t) != napi_ok) return 0;
  if (t == napi_bigint) {
    bool lossless = false;
    if (napi_get_value_bigint_uint64(env, argv[2], &n, &lossless) != napi_ok || !lossless) {
      napi_throw_range_error(env, NULL, "a nonce is below 2^64");
      return 0;
    }
  } else {
    double d = -1;
    if (napi_get_value_double(env, argv[2], &d) != napi_ok || !(d >= 0 && d < 9007199254740992.0) ||
        d != (double)(uint64_t)d) {
      napi_throw_range_error(env, NULL, "a nonce is an integer from 0 to 2^53-1 (or a bigint)");
      return 0;
    }
    n = (uint64_t)d;
  }
  memset(nonce, 0, 12);
  for (int i = 0; i < 8; i++) {
    uint8_t b = (uint8_t)(n >> (8 * i));
    if (a == 0)
      nonce[4 + i] = b; /* little-endian */
    else
      nonce[11 - i] = b; /* big-endian */
  }
  return 1;
}

static napi_value throw_openssl(napi_env env, const char* what) {
  napi_throw_error(env, "EZIPC_SECURE_UNAVAILABLE", what); /* OpenSSL failed: not expected */
  return NULL;
}

/* The `want` arguments of a call, the first three read as (alg, key, n); throws with `usage` if too few. */
static int call_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* usage,
                     int* alg, uint8_t** key, uint8_t nonce[12]) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return common_args(env, argv, alg, key, nonce);
}

/* Up to MAX_PARTS Uint8Arrays from an array of them (or, if `single_ok`, one Uint8Array). */
static int parts_of(napi_env env, napi_value v, int single_ok, uint8_t** data, size_t* lengths,
                    uint32_t* count) {
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok) return 0;
  if (!is_array) {
    if (!single_ok) {
      napi_throw_type_error(env, NULL, "parts is an array of Uint8Arrays");
      return 0;
    }
    *count = 1;
    return bytes_of(env, v, &data[0], &lengths[0]);
  }
  if (napi_get_array_length(env, v, count) != napi_ok) return 0;
  if (*count > MAX_PARTS) {
    napi_throw_range_error(env, NULL, "at most 64 parts");
    return 0;
  }
  for (uint32_t i = 0; i < *count; i++) {
    napi_value e;
    if (napi_get_element(env, v, i, &e) != napi_ok) return 0;
    if (!bytes_of(env, e, &data[i], &lengths[i])) return 0;
  }
  return 1;
}

static napi_value js_seal(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int alg;
  uint8_t* key;
  uint8_t nonce[12];
  if (!call_args(env, info, 6, argv, "seal(alg, key, n, ad, parts, out)", &alg, &key, nonce)) return NULL;
  uint8_t *ad, *out;
  size_t ad_length, out_length;
  if (!bytes_of(env, argv[3], &ad, &ad_length) || !bytes_of(env, argv[5], &out, &out_length)) return NULL;
  uint8_t* part_data[MAX_PARTS];
  size_t part_length[MAX_PARTS];
  uint32_t count = 0;
  if (!parts_of(env, argv[4], 1, part_data, part_length, &count)) return NULL;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) total += part_length[i];
  if (total > INT32_MAX || out_length < total + TAG) {
    napi_throw_range_error(env, NULL, "out is shorter than the parts and the tag");
    return NULL;
  }
  /* Parts may not overlap out except exactly in place (part i at out's position i): checked loosely by
     the caller; OpenSSL's ciphers handle in == out. */
  EVP_CIPHER_CTX* ctx = context(env, alg, 1);
  if (ctx == NULL) return throw_openssl(env, "could not make a cipher context");
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) return throw_openssl(env, "EVP_EncryptInit_ex failed");
  if (ad_length > 0 && EVP_EncryptUpdate(ctx, NULL, &len, ad, (int)ad_length) != 1)
    return throw_openssl(env, "EVP_EncryptUpdate (ad) failed");
  size_t pos = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (part_length[i] == 0) continue;
    if (EVP_EncryptUpdate(ctx, out + pos, &len, part_data[i], (int)part_length[i]) != 1)
      return throw_openssl(env, "EVP_EncryptUpdate failed");
    pos += (size_t)len;
  }
  if (EVP_EncryptFinal_ex(ctx, out + pos, &len) != 1) return throw_openssl(env, "EVP_EncryptFinal_ex failed");
  pos += (size_t)len;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, out + pos) != 1)
    return throw_openssl(env, "could not read the tag");
  pos += TAG;
  napi_value result;
  napi_create_uint32(env, (uint32_t)pos, &result);
  return result;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int alg;
  uint8_t* key;
  uint8_t nonce[12];
  if (!call_args(env, info, 6, argv, "open(alg, key, n, ad, sealed, out)", &alg, &key, nonce)) return NULL;
  uint8_t *ad, *sealed, *out;
  size_t ad_length, sealed_length, out_length;
  if (!bytes_of(env, argv[3], &ad, &ad_length) || !bytes_of(env, argv[4], &sealed, &sealed_length) ||
      !bytes_of(env, argv[5], &out, &out_length))
    return NULL;
  napi_value result;
  if (sealed_length < TAG) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  size_t body = sealed_length - TAG;
  if (body > INT32_MAX || out_length < body) {
    napi_throw_range_error(env, NULL, "out is shorter than the plaintext");
    return NULL;
  }
  uint8_t tag[TAG];
  memcpy(tag, sealed + body, TAG); /* before any plaintext is written: out may overlap the tag */
  EVP_CIPHER_CTX* ctx = context(env, alg, 0);
  if (ctx == NULL) return throw_openssl(env, "could not make a cipher context");
  int len = 0;
  int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) == 1 &&
           (ad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &len, ad, (int)ad_length) == 1) &&
           (body == 0 || EVP_DecryptUpdate(ctx, out, &len, sealed, (int)body) == 1);
  int final_len = 0;
  ok = ok && EVP_DecryptFinal_ex(ctx, out + (body == 0 ? 0 : len), &final_len) == 1;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* A record whose bytes arrived in several chunks, opened where it lies: the plaintext is written over the
   ciphertext in each part, the tag is the last 16 bytes of the parts joined (it may straddle parts). */
static napi_value js_open_parts(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int alg;
  uint8_t* key;
  uint8_t nonce[12];
  if (!call_args(env, info, 5, argv, "openParts(alg, key, n, ad, parts)", &alg, &key, nonce)) return NULL;
  uint8_t* ad;
  size_t ad_length;
  if (!bytes_of(env, argv[3], &ad, &ad_length)) return NULL;
  uint8_t* part_data[MAX_PARTS];
  size_t part_length[MAX_PARTS];
  uint32_t count = 0;
  if (!parts_of(env, argv[4], 0, part_data, part_length, &count)) return NULL;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) total += part_length[i];
  napi_value result;
  if (total < TAG || total - TAG > INT32_MAX) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  /* The tag, gathered from the end before any plaintext is written. */
  uint8_t tag[TAG];
  size_t need = TAG;
  for (uint32_t i = count; i-- > 0 && need > 0;) {
    size_t take = part_length[i] < need ? part_length[i] : need;
    memcpy(tag + need - take, part_data[i] + part_length[i] - take, take);
    need -= take;
  }
  EVP_CIPHER_CTX* ctx = context(env, alg, 0);
  if (ctx == NULL) return throw_openssl(env, "could not make a cipher context");
  int len = 0;
  int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) == 1 &&
           (ad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &len, ad, (int)ad_length) == 1);
  size_t body = total - TAG;
  /* A stream cipher mode: each update's output is exactly its input, written in place. */
  for (uint32_t i = 0; ok && i < count && body > 0; i++) {
    size_t take = part_length[i] < body ? part_length[i] : body;
    if (take == 0) continue;
    ok = EVP_DecryptUpdate(ctx, part_data[i], &len, part_data[i], (int)take) == 1 && (size_t)len == take;
    body -= take;
  }
  uint8_t scratch[TAG];
  int final_len = 0;
  ok = ok && EVP_DecryptFinal_ex(ctx, scratch, &final_len) == 1;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  aead_t* a = (aead_t*)calloc(1, sizeof(aead_t));
  if (a == NULL || napi_set_instance_data(env, a, free_instance, NULL) != napi_ok) {
    free(a);
    napi_throw_error(env, NULL, "ezipc_aead: out of memory");
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"seal", NULL, js_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openParts", NULL, js_open_parts, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
