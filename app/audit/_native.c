/* The chain check over PostgreSQL's binary COPY stream (app.audit.native).
 *
 * PostgreSQL sends the columns of each record as they are stored (seq, the body's fields
 * in the canonical order, prev_hash, hash); this builds each record's canonical text
 * (app.audit.chain.canonical_body), hashes it with OpenSSL's SHA-256 and compares it with
 * the stored hash, and checks each record's seq and prev_hash against the record before.
 *
 * Only text Python writes byte for byte as it is stored is built here: printable ASCII
 * without quote or backslash, a uuid, a time between the years 1000 and 9999. A record
 * with anything else (an escape, a letter outside ASCII) is "unsure" and is checked by
 * the Python code (chain._hash_fits), as the in-database check does. A hash that matches
 * is proof by itself: the stored hash was computed over Python's text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

enum { KIND_TEXT = 0, KIND_UUID = 1, KIND_TIME = 2 };
/* What check() reports about a record (the codes app.audit.native names). */
enum { GAP = 0, UNLINKED = 1, UNHASHED = 2, UNSURE = 3 };

#define MAX_FIELDS 64
#define LAG_MAX 512
static const char HEX[] = "0123456789abcdef";
/* Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define DAYS_1970_TO_2000 10957
#define USECS_PER_DAY INT64_C(86400000000)

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64(const unsigned char *p) {
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

typedef struct {
    char *data;
    size_t len, cap;
} Buffer;

static int put(Buffer *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n) cap *= 2;
        char *grown = PyMem_Realloc(b->data, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

/* Text Python's json writes as it is: printable ASCII, no quote, no backslash. */
static int plain(const unsigned char *p, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\') return 0;
    }
    return 1;
}

/* Howard Hinnant's civil_from_days: days since 1970-01-01 to a proleptic Gregorian date. */
static void civil(int64_t z, int64_t *year, int *month, int *day) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

static void digits(char *out, int64_t value, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* chain.format_at: "YYYY-MM-DDTHH:MM:SS.ffffffZ" in quotes; 0 where Python's text could
 * differ (a year outside 1000-9999, PostgreSQL's infinities). */
static int format_time(const unsigned char *p, int32_t n, char out[30]) {
    if (n != 8) return 0;
    int64_t t = (int64_t)be64(p);
    if (t == INT64_MAX || t == INT64_MIN) return 0;
    int64_t days = t / USECS_PER_DAY, usec = t % USECS_PER_DAY;
    if (usec < 0) {
        usec += USECS_PER_DAY;
        days -= 1;
    }
    int64_t year;
    int month, day;
    civil(days + DAYS_1970_TO_2000, &year, &month, &day);
    if (year < 1000 || year > 9999) return 0;
    int64_t secs = usec / 1000000;
    out[0] = '"';
    digits(out + 1, year, 4);
    out[5] = '-';
    digits(out + 6, month, 2);
    out[8] = '-';
    digits(out + 9, day, 2);
    out[11] = 'T';
    digits(out + 12, secs / 3600, 2);
    out[14] = ':';
    digits(out + 15, secs / 60 % 60, 2);
    out[17] = ':';
    digits(out + 18, secs % 60, 2);
    out[20] = '.';
    digits(out + 21, usec % 1000000, 6);
    out[27] = 'Z';
    out[28] = '"';
    return 1;
}

static int format_uuid(const unsigned char *p, int32_t n, char out[38]) {
    if (n != 16) return 0;
    int o = 0;
    out[o++] = '"';
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = HEX[p[i] >> 4];
        out[o++] = HEX[p[i] & 15];
    }
    out[o] = '"';
    return 1;
}

typedef struct {
    const char *key; /* ',"name":' with '{' for the first */
    Py_ssize_t key_len;
    int kind, optional;
} Field;

static int read_spec(PyObject *spec, Field *fields, Py_ssize_t *count) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) > MAX_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "spec: a tuple of (key bytes, kind, optional)");
        return -1;
    }
    *count = PyTuple_GET_SIZE(spec);
    for (Py_ssize_t i = 0; i < *count; i++) {
        char *key;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, i), "y#ip", &key, &fields[i].key_len,
                              &fields[i].kind, &fields[i].optional))
            return -1;
        fields[i].key = key;
    }
    return 0;
}

/* SHA-256 from OpenSSL (the library Python's hashlib uses), fetched once. */
static EVP_MD *sha256;
static EVP_MD_CTX *digest;

static int hash_matches(Buffer *message, const unsigned char *hash, int32_t hash_len) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestInit_ex(digest, sha256, NULL) ||
        !EVP_DigestUpdate(digest, message->data, message->len) ||
        !EVP_DigestFinal_ex(digest, md, &md_len)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return -1;
    }
    if (hash_len != (int32_t)md_len * 2) return 0;
    for (unsigned int i = 0; i < md_len; i++) {
        if (hash[2 * i] != HEX[md[i] >> 4] || hash[2 * i + 1] != HEX[md[i] & 15]) return 0;
    }
    return 1;
}

static int note(PyObject *found, long long seq, int kind, long long rn, long long lag_seq) {
    PyObject *item = Py_BuildValue("(LiLL)", seq, kind, rn, lag_seq);
    if (item == NULL) return -1;
    int failed = PyList_Append(found, item);
    Py_DECREF(item);
    return failed;
}

/* check(data, spec, lag_seq, lag_hash, rows, stopped, found)
 *   -> (consumed, finished, lag_seq, lag_hash, rows, stopped)
 *
 * Reads the complete records at the start of ``data`` (the stream after its header),
 * each checked against the one before (``lag_seq``, ``lag_hash``); appends to the list
 * ``found`` (seq, code, row number in the range, seq before) for each record that is
 * not plainly whole, up to and including the first definite problem (``stopped`` then:
 * the rest is read, not checked). Returns where it stopped reading, whether the stream's
 * end was read, and the state to carry on with. */
static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t offset = 0;
    PyObject *spec, *found;
    long long lag_seq, rows;
    const char *lag_in;
    Py_ssize_t lag_in_len;
    int stopped;
    if (!PyArg_ParseTuple(args, "y*OLy#LpO!", &view, &spec, &lag_seq, &lag_in,
                          &lag_in_len, &rows, &stopped, &PyList_Type, &found))
        return NULL;
    PyObject *result = NULL;
    Field fields[MAX_FIELDS];
    Py_ssize_t nfields;
    Buffer message = {0};
    /* hash is varchar(64): at most 256 bytes of UTF-8 */
    unsigned char lag_hash[LAG_MAX];
    Py_ssize_t lag_len = lag_in_len;
    int finished = 0;
    const unsigned char *data = view.buf;
    Py_ssize_t size = view.len;
    if (lag_in_len > LAG_MAX) {
        PyErr_SetString(PyExc_ValueError, "lag_hash is too long");
        goto done;
    }
    memcpy(lag_hash, lag_in, (size_t)lag_len);
    if (read_spec(spec, fields, &nfields) < 0) goto done;
    const Py_ssize_t columns = nfields + 3; /* seq, the body, prev_hash, hash */
    const unsigned char *value[MAX_FIELDS + 3];
    int32_t length[MAX_FIELDS + 3];
    for (;;) {
        Py_ssize_t at = offset;
        if (size - at < 2) break;
        int16_t count = (int16_t)((data[at] << 8) | data[at + 1]);
        at += 2;
        if (count == -1) {
            offset = at;
            finished = 1;
            break;
        }
        if (count != columns) {
            PyErr_Format(PyExc_ValueError, "a record of %d columns, expected %zd", count,
                         columns);
            goto done;
        }
        int whole = 1;
        for (Py_ssize_t c = 0; c < columns; c++) {
            if (size - at < 4) {
                whole = 0;
                break;
            }
            length[c] = (int32_t)be32(data + at);
            at += 4;
            if (length[c] < -1 || (length[c] > 0 && size - at < length[c])) {
                whole = length[c] >= -1 ? 0 : -1;
                break;
            }
            value[c] = data + at;
            if (length[c] > 0) at += length[c];
        }
        if (whole < 0) {
            PyErr_SetString(PyExc_ValueError, "a negative field length");
            goto done;
        }
        if (!whole) break; /* the rest of this record comes with the next chunk */
        offset = at;
        if (length[0] != 8) {
            PyErr_SetString(PyExc_ValueError, "seq is not a bigint");
            goto done;
        }
        long long seq = (long long)be64(value[0]);
        rows += 1;
        const unsigned char *prev = value[columns - 2], *hash = value[columns - 1];
        int32_t prev_len = length[columns - 2], hash_len = length[columns - 1];
        if (!stopped) {
            if (seq != lag_seq + 1) {
                if (note(found, seq, GAP, rows, lag_seq) < 0) goto done;
                stopped = 1;
            } else if (prev_len < 0 || prev_len != lag_len ||
                       memcmp(prev, lag_hash, (size_t)prev_len) != 0) {
                if (note(found, seq, UNLINKED, rows, lag_seq) < 0) goto done;
                stopped = 1;
            }
        }
        if (!stopped) {
            /* prev_hash "|" seq "|" body */
            char number[24];
            int sure = prev_len >= 0 && hash_len >= 0 && seq >= 0;
            message.len = 0;
            int n = 0;
            number[n++] = '|';
            char reversed[20];
            int r = 0;
            long long rest = seq;
            do {
                reversed[r++] = (char)('0' + rest % 10);
                rest /= 10;
            } while (rest > 0 && r < 20);
            while (r > 0) number[n++] = reversed[--r];
            number[n++] = '|';
            if (sure && (put(&message, prev, (size_t)prev_len) < 0 ||
                         put(&message, number, (size_t)n) < 0))
                goto done;
            for (Py_ssize_t f = 0; sure && f < nfields; f++) {
                const unsigned char *v = value[f + 1];
                int32_t len = length[f + 1];
                if (len < 0) {
                    if (fields[f].optional) continue;
                    if (put(&message, fields[f].key, (size_t)fields[f].key_len) < 0 ||
                        put(&message, "null", 4) < 0)
                        goto done;
                    continue;
                }
                if (put(&message, fields[f].key, (size_t)fields[f].key_len) < 0) goto done;
                char formatted[40];
                if (fields[f].kind == KIND_TIME) {
                    sure = format_time(v, len, formatted);
                    if (sure && put(&message, formatted, 29) < 0) goto done;
                } else if (fields[f].kind == KIND_UUID) {
                    sure = format_uuid(v, len, formatted);
                    if (sure && put(&message, formatted, 38) < 0) goto done;
                } else {
                    sure = plain(v, len);
                    if (sure && (put(&message, "\"", 1) < 0 || put(&message, v, (size_t)len) < 0 ||
                                 put(&message, "\"", 1) < 0))
                        goto done;
                }
            }
            if (sure && put(&message, "}", 1) < 0) goto done;
            if (!sure) {
                if (note(found, seq, UNSURE, rows, lag_seq) < 0) goto done;
            } else {
                int matches = hash_matches(&message, hash, hash_len);
                if (matches < 0) goto done;
                if (!matches) {
                    if (note(found, seq, UNHASHED, rows, lag_seq) < 0) goto done;
                    stopped = 1;
                }
            }
        }
        if (hash_len < 0 || hash_len > LAG_MAX) {
            PyErr_SetString(PyExc_ValueError, "a record's hash is null or too long");
            goto done;
        }
        lag_seq = seq;
        lag_len = hash_len;
        memcpy(lag_hash, hash, (size_t)lag_len);
    }
    result = Py_BuildValue("(nNLy#LN)", offset, PyBool_FromLong(finished), lag_seq,
                           (const char *)lag_hash, lag_len, rows, PyBool_FromLong(stopped));
done:
    PyMem_Free(message.data);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS, "Check records of a binary COPY stream (see _native.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "app.audit._native", "The chain check in native code.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (sha256 == NULL) {
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        digest = EVP_MD_CTX_new();
        if (sha256 == NULL || digest == NULL) {
            PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
            return NULL;
        }
    }
    return PyModule_Create(&module);
}
