/* The chain check over PostgreSQL's binary COPY stream (app.audit.chain.NativeStream).
 *
 * PostgreSQL sends the columns of each record as they are stored (seq, the body's fields
 * in the canonical order, prev_hash, hash); this builds each record's canonical text
 * (app.audit.chain.canonical_body), hashes it with OpenSSL's SHA-256 and compares it with
 * the stored hash, and checks each record's seq and prev_hash against the record before.
 *
 * The text is Python's (json with ensure_ascii: escapes and letters outside ASCII as
 * "\uXXXX"); tests/test_audit_native.py holds it against Python's over generated records.
 * What it cannot write as Python would (a time outside the years 1000-9999, text that is
 * not UTF-8) is "unsure" and is checked by the Python code (chain._hash_fits), as the
 * in-database check does for what SQL writes differently. A hash that matches is proof by
 * itself: the stored hash was computed over Python's text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

enum { KIND_TEXT = 0, KIND_UUID = 1, KIND_TIME = 2 };
/* What check() reports about a record (the codes app.audit.chain names _GAP ... _UNSURE). */
enum { GAP = 0, UNLINKED = 1, UNHASHED = 2, UNSURE = 3 };

#define MAX_FIELDS 64
#define LAG_MAX 512
static const char HEX[] = "0123456789abcdef";
/* Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch; and microseconds a day. */
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

/* Room for ``n`` bytes in ``b``, kept from record to record (no GIL needed). */
static int reserve(Buffer *b, size_t n) {
    if (n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < n) cap *= 2;
    char *grown = PyMem_RawRealloc(b->data, cap);
    if (grown == NULL) return -1;
    b->data = grown;
    b->cap = cap;
    return 0;
}

/* Bytes Python's json writes as they are: printable ASCII, no quote, no backslash. */
static unsigned char PLAIN[256];

static void init_plain(void) {
    for (int c = 0x20; c <= 0x7e; c++) PLAIN[c] = c != '"' && c != '\\';
}

static char *u16(char *w, uint32_t unit) {
    memcpy(w, "\\u", 2);
    w[2] = HEX[(unit >> 12) & 15];
    w[3] = HEX[(unit >> 8) & 15];
    w[4] = HEX[(unit >> 4) & 15];
    w[5] = HEX[unit & 15];
    return w + 6;
}

/* ``p`` (UTF-8) as Python's json writes it with ensure_ascii (json.encoder's
 * c_encode_basestring_ascii): printable ASCII as it is but for quote and backslash,
 * "\"" "\\" "\b" "\f" "\n" "\r" "\t", every other character as "\u" and four lowercase hex
 * digits (a character past U+FFFF as its UTF-16 surrogate pair). Writes at most 6 bytes a
 * byte of ``p``; returns the bytes written, or -1 for text that is not well-formed UTF-8
 * (which PostgreSQL does not store: Python's check decides). */
static Py_ssize_t escape_text(char *out, const unsigned char *p, int32_t n) {
    char *w = out;
    for (int32_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (PLAIN[c]) {
            *w++ = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        int k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1f;
            k = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0f;
            k = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            k = 4;
        } else {
            return -1;
        }
        if (k > n - i) return -1;
        for (int j = 1; j < k; j++) {
            unsigned char d = p[i + j];
            if ((d & 0xc0) != 0x80) return -1;
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return -1;
        i += k;
        char short_form = 0;
        switch (cp) {
        case '"': short_form = '"'; break;
        case '\\': short_form = '\\'; break;
        case '\b': short_form = 'b'; break;
        case '\f': short_form = 'f'; break;
        case '\n': short_form = 'n'; break;
        case '\r': short_form = 'r'; break;
        case '\t': short_form = 't'; break;
        }
        if (short_form) {
            *w++ = '\\';
            *w++ = short_form;
        } else if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            w = u16(w, 0xd800 | (v >> 10));
            w = u16(w, 0xdc00 | (v & 0x3ff));
        } else {
            w = u16(w, cp);
        }
    }
    return w - out;
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
static int format_time(const unsigned char *p, int32_t n, char *out) {
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

static int format_uuid(const unsigned char *p, int32_t n, char *out) {
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

/* SHA-256 from OpenSSL (the library Python's hashlib uses), fetched once; each call of
 * check() has a context of its own (calls run at once, in threads). */
static EVP_MD *sha256;

/* 1: the stored hash is SHA-256 of the message in lowercase hex; 0: it is not; -1: OpenSSL
 * failed. */
static int hash_matches(EVP_MD_CTX *digest, const Buffer *message, const unsigned char *hash,
                        int32_t hash_len) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestInit_ex(digest, sha256, NULL) ||
        !EVP_DigestUpdate(digest, message->data, message->len) ||
        !EVP_DigestFinal_ex(digest, md, &md_len))
        return -1;
    if (hash_len != (int32_t)md_len * 2) return 0;
    for (unsigned int i = 0; i < md_len; i++) {
        if (hash[2 * i] != HEX[md[i] >> 4] || hash[2 * i + 1] != HEX[md[i] & 15]) return 0;
    }
    return 1;
}

/* What check() found about one record, kept in C while the GIL is released. */
typedef struct {
    long long seq, rows, lag_seq;
    int code;
} Note;

#define MAX_NOTES 256

typedef struct {
    /* in and out: the check's state from record to record */
    long long lag_seq, rows;
    unsigned char lag_hash[LAG_MAX];
    Py_ssize_t lag_len;
    int stopped;
    /* out */
    Py_ssize_t offset;
    int finished, full;
    Note notes[MAX_NOTES];
    int nnotes;
    const char *error; /* a malformed stream (ValueError), or no memory, or OpenSSL */
    PyObject *error_type;
} State;

static void note(State *st, long long seq, int code) {
    st->notes[st->nnotes++] = (Note){seq, st->rows, st->lag_seq, code};
}

/* The records at the start of ``data``, checked one after the other; runs without the
 * GIL (it touches no Python object). Stops at the end of the data, at the stream's end,
 * with ``MAX_NOTES`` notes taken (``full``: call again), or at an error. */
static void run(State *st, const unsigned char *data, Py_ssize_t size, const Field *fields,
                Py_ssize_t nfields) {
    EVP_MD_CTX *digest = EVP_MD_CTX_new();
    Buffer message = {0};
    const Py_ssize_t columns = nfields + 3; /* seq, the body, prev_hash, hash */
    const unsigned char *value[MAX_FIELDS + 3];
    int32_t length[MAX_FIELDS + 3];
    size_t keys = 0;
    for (Py_ssize_t f = 0; f < nfields; f++) keys += (size_t)fields[f].key_len;
    if (digest == NULL) {
        st->error = "OpenSSL could not make a digest context";
        st->error_type = PyExc_MemoryError;
        return;
    }
    for (;;) {
        if (st->nnotes == MAX_NOTES) {
            st->full = 1;
            break;
        }
        const Py_ssize_t start = st->offset;
        Py_ssize_t at = start;
        if (size - at < 2) break;
        int16_t count = (int16_t)((data[at] << 8) | data[at + 1]);
        at += 2;
        if (count == -1) {
            st->offset = at;
            st->finished = 1;
            break;
        }
        if (count != columns) {
            st->error = "a record with another number of columns than the check's";
            break;
        }
        int whole = 1;
        for (Py_ssize_t c = 0; c < columns; c++) {
            if (size - at < 4) {
                whole = 0;
                break;
            }
            length[c] = (int32_t)be32(data + at);
            at += 4;
            if (length[c] < -1) {
                whole = -1;
                break;
            }
            if (length[c] > 0 && size - at < length[c]) {
                whole = 0;
                break;
            }
            value[c] = data + at;
            if (length[c] > 0) at += length[c];
        }
        if (whole < 0) {
            st->error = "a negative field length";
            break;
        }
        if (!whole) break; /* the rest of this record comes with the next chunk */
        if (length[0] != 8) {
            st->error = "seq is not a bigint";
            break;
        }
        const unsigned char *prev = value[columns - 2], *hash = value[columns - 1];
        int32_t prev_len = length[columns - 2], hash_len = length[columns - 1];
        if (hash_len < 0 || hash_len > LAG_MAX) {
            st->error = "a record's hash is null or too long";
            break;
        }
        long long seq = (long long)be64(value[0]);
        st->offset = at;
        st->rows += 1;
        if (!st->stopped) {
            if (seq != st->lag_seq + 1) {
                note(st, seq, GAP);
                st->stopped = 1;
            } else if (prev_len < 0 || prev_len != st->lag_len ||
                       memcmp(prev, st->lag_hash, (size_t)prev_len) != 0) {
                note(st, seq, UNLINKED);
                st->stopped = 1;
            }
        }
        if (!st->stopped) {
            /* prev_hash "|" seq "|" body, written into room enough for the record: six
             * times its bytes (an escape), every key, and 40 more bytes a field (quotes, a
             * uuid's or a time's text, "null"). */
            int sure = prev_len >= 0 && seq >= 0;
            if (reserve(&message, 6 * (size_t)(at - start) + keys + 40 * (size_t)nfields + 64) < 0) {
                st->error = "out of memory";
                st->error_type = PyExc_MemoryError;
                break;
            }
            char *w = message.data;
            if (sure) {
                memcpy(w, prev, (size_t)prev_len);
                w += prev_len;
                *w++ = '|';
                char reversed[20];
                int r = 0;
                long long rest = seq;
                do {
                    reversed[r++] = (char)('0' + rest % 10);
                    rest /= 10;
                } while (rest > 0 && r < 20);
                while (r > 0) *w++ = reversed[--r];
                *w++ = '|';
            }
            for (Py_ssize_t f = 0; sure && f < nfields; f++) {
                const unsigned char *v = value[f + 1];
                int32_t len = length[f + 1];
                if (len < 0 && fields[f].optional) continue;
                memcpy(w, fields[f].key, (size_t)fields[f].key_len);
                w += fields[f].key_len;
                if (len < 0) {
                    memcpy(w, "null", 4);
                    w += 4;
                } else if (fields[f].kind == KIND_TIME) {
                    sure = format_time(v, len, w);
                    w += 29;
                } else if (fields[f].kind == KIND_UUID) {
                    sure = format_uuid(v, len, w);
                    w += 38;
                } else {
                    *w++ = '"';
                    Py_ssize_t written = escape_text(w, v, len);
                    sure = written >= 0;
                    w += sure ? written : 0;
                    *w++ = '"';
                }
            }
            *w++ = '}';
            message.len = (size_t)(w - message.data);
            if (!sure) {
                note(st, seq, UNSURE);
            } else {
                int matches = hash_matches(digest, &message, hash, hash_len);
                if (matches < 0) {
                    st->error = "OpenSSL's SHA-256 failed";
                    st->error_type = PyExc_RuntimeError;
                    break;
                }
                if (!matches) {
                    note(st, seq, UNHASHED);
                    st->stopped = 1;
                }
            }
        }
        st->lag_seq = seq;
        st->lag_len = hash_len;
        memcpy(st->lag_hash, hash, (size_t)hash_len);
    }
    PyMem_RawFree(message.data);
    EVP_MD_CTX_free(digest);
}

/* check(data, spec, lag_seq, lag_hash, rows, stopped, found)
 *   -> (consumed, finished, lag_seq, lag_hash, rows, stopped, full)
 *
 * Reads the complete records at the start of ``data`` (the stream after its header),
 * each checked against the one before (``lag_seq``, ``lag_hash``); appends to the list
 * ``found`` (seq, code, row number in the range, seq before) for each record that is
 * not plainly whole, up to and including the first definite problem (``stopped`` then:
 * the rest is read, not checked). Returns how much it read, whether the stream's end was
 * read, the state to carry on with, and ``full`` when it stopped early with notes to hand
 * over (call again with the rest). The GIL is released while it reads. */
static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *spec, *found;
    const char *lag_in;
    Py_ssize_t lag_in_len;
    State *st = PyMem_RawCalloc(1, sizeof(State));
    if (st == NULL) return PyErr_NoMemory();
    if (!PyArg_ParseTuple(args, "y*OLy#LpO!", &view, &spec, &st->lag_seq, &lag_in,
                          &lag_in_len, &st->rows, &st->stopped, &PyList_Type, &found)) {
        PyMem_RawFree(st);
        return NULL;
    }
    PyObject *result = NULL;
    Field fields[MAX_FIELDS];
    Py_ssize_t nfields;
    if (lag_in_len > LAG_MAX) {
        PyErr_SetString(PyExc_ValueError, "lag_hash is too long");
        goto done;
    }
    memcpy(st->lag_hash, lag_in, (size_t)lag_in_len);
    st->lag_len = lag_in_len;
    if (read_spec(spec, fields, &nfields) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    run(st, view.buf, view.len, fields, nfields);
    Py_END_ALLOW_THREADS
    if (st->error != NULL) {
        PyErr_SetString(st->error_type ? st->error_type : PyExc_ValueError, st->error);
        goto done;
    }
    for (int i = 0; i < st->nnotes; i++) {
        Note *n = &st->notes[i];
        PyObject *item = Py_BuildValue("(LiLL)", n->seq, n->code, n->rows, n->lag_seq);
        if (item == NULL || PyList_Append(found, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    result = Py_BuildValue("(nNLy#LNN)", st->offset, PyBool_FromLong(st->finished), st->lag_seq,
                           (const char *)st->lag_hash, st->lag_len, st->rows,
                           PyBool_FromLong(st->stopped), PyBool_FromLong(st->full));
done:
    PyBuffer_Release(&view);
    PyMem_RawFree(st);
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
    init_plain();
    if (sha256 == NULL) {
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (sha256 == NULL) {
            PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
            return NULL;
        }
    }
    return PyModule_Create(&module);
}
