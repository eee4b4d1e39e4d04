/*
 * The feed's hot path in C: apply one decoded `price_change` message (current format) to the
 * books. It is an accelerator for core.feed.processor.FeedProcessor._price_changes, not a second
 * implementation of the rules: it handles only the common case (a known asset whose book is ok,
 * a price valid on the book's tick, a plainly spelled size, a previous burst that agrees with the
 * best prices the venue carried) and stops at the first entry that is anything else, before
 * touching any state for it. The Python loop then takes over from that entry, so every
 * rejection, fault and slow path stays in one place (processor.py and integrity.py).
 *
 * It reads and writes the slots of core.feed.book.Book and the fields of the msgspec structs
 * directly, at offsets taken from their member descriptors at configure() time; a type whose
 * fields are not plain object slots is refused there. The pure-Python path stays the reference:
 * tests run the same streams through both and require identical books, events and counters.
 *
 * Built by hatch_build.py (uv builds it on install); core/feed/kernel.py loads it, checks that it
 * was built from this exact source, and falls back to pure Python when it is missing or stale.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#ifndef POLYBOT_KERNEL_SHA
#define POLYBOT_KERNEL_SHA ""
#endif

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* Returned by apply_msg() when every entry was applied and the PriceChange event appended. */
#define ALL_APPLIED -1
/* Internal: an exception is set. */
#define FAILED -2

typedef struct {
    int ready;
    PyTypeObject *book_type, *entry_type, *msg_type;
    PyObject *event_type; /* core.feed.events.PriceChange */
    PyObject *buy;        /* core.types.Side.BUY */
    /* Book slots */
    Py_ssize_t b_prices, b_pend_ts, b_pend, b_moved, b_ok_bid, b_ok_ask, b_bid_px, b_bid_sz, b_ask_px, b_ask_sz,
        b_last_update;
    /* PriceChangeEntry fields */
    Py_ssize_t e_asset, e_price, e_size, e_side, e_best_bid, e_best_ask;
    /* PriceChangeMsg fields */
    Py_ssize_t m_changes, m_ts, m_market;
} Config;

static Config K;

static const long long POW10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};

static inline void
set_slot(PyObject *o, Py_ssize_t off, PyObject *v)
{
    PyObject **p = (PyObject **)((char *)o + off);
    PyObject *old = *p;
    Py_INCREF(v);
    *p = v;
    Py_XDECREF(old);
}

static int
slot_offset(PyObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL) return -1;
    int ok = Py_TYPE(d) == &PyMemberDescr_Type;
    if (ok) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        ok = (m->type == T_OBJECT_EX || m->type == T_OBJECT) && !(m->flags & READONLY);
        if (ok) *out = m->offset;
    }
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a writable object slot", type, name);
        return -1;
    }
    return 0;
}

static PyObject *
configure(PyObject *self, PyObject *args)
{
    PyObject *book_type, *entry_type, *msg_type, *event_type, *buy;
    long long unit;
    if (!PyArg_ParseTuple(args, "O!O!O!OOL:configure", &PyType_Type, &book_type, &PyType_Type, &entry_type,
                          &PyType_Type, &msg_type, &event_type, &buy, &unit))
        return NULL;
    if (unit != 1000000) {
        PyErr_SetString(PyExc_ValueError, "the kernel works in 10^-6 units");
        return NULL;
    }
    /* all or nothing: a refused configuration leaves the previous one in place */
    Config k = K;
    static const char *book_slots[] = {"_prices", "_pend_ts", "_pend", "_moved", "_ok_bid", "_ok_ask",
                                       "_bid_px", "_bid_sz", "_ask_px", "_ask_sz", "last_update_ns"};
    Py_ssize_t *book_offsets[] = {&k.b_prices, &k.b_pend_ts, &k.b_pend, &k.b_moved, &k.b_ok_bid, &k.b_ok_ask,
                                  &k.b_bid_px, &k.b_bid_sz, &k.b_ask_px, &k.b_ask_sz, &k.b_last_update};
    static const char *entry_fields[] = {"asset_id", "price", "size", "side", "best_bid", "best_ask"};
    Py_ssize_t *entry_offsets[] = {&k.e_asset, &k.e_price, &k.e_size, &k.e_side, &k.e_best_bid, &k.e_best_ask};
    static const char *msg_fields[] = {"price_changes", "timestamp", "market"};
    Py_ssize_t *msg_offsets[] = {&k.m_changes, &k.m_ts, &k.m_market};
    for (size_t i = 0; i < sizeof(book_slots) / sizeof(*book_slots); i++)
        if (slot_offset(book_type, book_slots[i], book_offsets[i])) return NULL;
    for (size_t i = 0; i < sizeof(entry_fields) / sizeof(*entry_fields); i++)
        if (slot_offset(entry_type, entry_fields[i], entry_offsets[i])) return NULL;
    for (size_t i = 0; i < sizeof(msg_fields) / sizeof(*msg_fields); i++)
        if (slot_offset(msg_type, msg_fields[i], msg_offsets[i])) return NULL;
    PyObject *old[] = {(PyObject *)K.book_type, (PyObject *)K.entry_type, (PyObject *)K.msg_type, K.event_type, K.buy};
    Py_INCREF(book_type);
    Py_INCREF(entry_type);
    Py_INCREF(msg_type);
    Py_INCREF(event_type);
    Py_INCREF(buy);
    k.book_type = (PyTypeObject *)book_type;
    k.entry_type = (PyTypeObject *)entry_type;
    k.msg_type = (PyTypeObject *)msg_type;
    k.event_type = event_type;
    k.buy = buy;
    k.ready = 1;
    K = k;
    for (size_t i = 0; i < sizeof(old) / sizeof(*old); i++) Py_XDECREF(old[i]);
    Py_RETURN_NONE;
}

/* A size in the plain spelling -- ASCII digits, optionally "." and 1 to 6 digits, at most 12
 * digits before the point -- in 10^-6 units; -1 for anything else (the Python path decides). */
static inline long long
plain_size_units(PyObject *s)
{
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_COMPACT_ASCII(s)) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), i = 0;
    const unsigned char *c = PyUnicode_1BYTE_DATA(s);
    long long v = 0;
    for (; i < n && c[i] != '.'; i++) {
        unsigned d = (unsigned)c[i] - '0';
        if (d > 9) return -1;
        v = v * 10 + d;
    }
    if (i == 0 || i > 12) return -1;
    if (i == n) return v * 1000000;
    Py_ssize_t frac = n - i - 1;
    if (frac < 1 || frac > 6) return -1;
    for (i++; i < n; i++) {
        unsigned d = (unsigned)c[i] - '0';
        if (d > 9) return -1;
        v = v * 10 + d;
    }
    return v * POW10[6 - frac];
}

static inline int
as_ll(PyObject *o, long long *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* A carried best price in units: "" or the `empty` spelling ("0" for bids, "1" for asks) is an
 * empty side; anything else must be a price on the book's tick (its own small table: the full
 * 0.0001 grid would not stay in cache). 1: found; 0: not the common case; FAILED: exception. */
static inline int
carried_units(PyObject *text, char empty, long long empty_units, PyObject *table, long long *out)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_COMPACT_ASCII(text)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0 || (n == 1 && PyUnicode_1BYTE_DATA(text)[0] == (unsigned char)empty)) {
        *out = empty_units;
        return 1;
    }
    PyObject *w = PyDict_GetItemWithError(table, text);
    if (w == NULL) return PyErr_Occurred() ? FAILED : 0;
    return as_ll(w, out) ? FAILED : 1;
}

/* bisect_left (right=0) / bisect_right (right=1) on an ascending list of ints */
static inline Py_ssize_t
bisect(PyObject *px, long long v, int right)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(px);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        long long m;
        if (as_ll(PyList_GET_ITEM(px, mid), &m)) return -1;
        if (right ? v < m : m >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The common case of one entry, or 0 without touching anything when it is not the common case
 * (the Python path takes it from there); 1 when applied; FAILED with an exception set. */
static int
apply_entry(PyObject *e, PyObject *books, PyObject *ts, PyObject *recv_ns, PyObject *pending)
{
    if (Py_TYPE(e) != K.entry_type) return 0;
    PyObject *asset = SLOT(e, K.e_asset), *price = SLOT(e, K.e_price), *size = SLOT(e, K.e_size);
    PyObject *side = SLOT(e, K.e_side);
    if (!asset || !price || !size || !side) return 0;

    PyObject *book = PyDict_GetItemWithError(books, asset);
    if (book == NULL) return PyErr_Occurred() ? FAILED : 0; /* unknown asset */
    if (Py_TYPE(book) != K.book_type) return 0;
    PyObject *table = SLOT(book, K.b_prices); /* empty unless the book is ok */
    if (table == NULL || !PyDict_CheckExact(table)) return 0;
    PyObject *p = PyDict_GetItemWithError(table, price);
    if (p == NULL) return PyErr_Occurred() ? FAILED : 0; /* unusual, off-tick or bad price; book not ok */
    long long units = plain_size_units(size);
    if (units < 0) return 0;

    int is_bid = side == K.buy;
    PyObject *bid_px = SLOT(book, K.b_bid_px), *ask_px = SLOT(book, K.b_ask_px);
    PyObject *sz = SLOT(book, is_bid ? K.b_bid_sz : K.b_ask_sz);
    PyObject *pend_ts = SLOT(book, K.b_pend_ts), *moved_flag = SLOT(book, K.b_moved);
    if (!bid_px || !ask_px || !sz || !pend_ts || !moved_flag || !PyList_CheckExact(bid_px) ||
        !PyList_CheckExact(ask_px) || !PyDict_CheckExact(sz))
        return 0;
    PyObject *px = is_bid ? bid_px : ask_px;
    long long pv;
    if (as_ll(p, &pv)) return FAILED;

    int same_burst = pend_ts == ts ? 1 : PyObject_RichCompareBool(pend_ts, ts, Py_EQ);
    if (same_burst < 0) return FAILED;
    PyObject *agreed_bid = NULL, *agreed_ask = NULL;
    if (!same_burst && pend_ts != Py_None) {
        /* The previous burst of this asset is complete. Cheapest first: the top has not moved
         * since it last agreed with the very same carried prices, so it still agrees. */
        PyObject *prev = SLOT(book, K.b_pend);
        if (prev == NULL || Py_TYPE(prev) != K.entry_type) return 0;
        PyObject *carried_bid = SLOT(prev, K.e_best_bid), *carried_ask = SLOT(prev, K.e_best_ask);
        PyObject *ok_bid = SLOT(book, K.b_ok_bid), *ok_ask = SLOT(book, K.b_ok_ask);
        if (!carried_bid || !carried_ask || !ok_bid || !ok_ask) return 0;
        int check = moved_flag != Py_False;
        if (!check) check = PyObject_RichCompareBool(carried_bid, ok_bid, Py_NE);
        if (check == 0) check = PyObject_RichCompareBool(carried_ask, ok_ask, Py_NE);
        if (check < 0) return FAILED;
        if (check) {
            long long bid = 0, ask = 1000000, want; /* an empty side reads 0 / 1, as the venue spells it */
            Py_ssize_t nb = PyList_GET_SIZE(bid_px);
            if (nb && as_ll(PyList_GET_ITEM(bid_px, nb - 1), &bid)) return FAILED;
            if (PyList_GET_SIZE(ask_px) && as_ll(PyList_GET_ITEM(ask_px, 0), &ask)) return FAILED;
            if (bid >= ask) return 0; /* crossed: a fault, Python's to report */
            /* not carried (legacy), an unusual spelling or a mismatch: Python's to decide */
            int r = carried_units(carried_bid, '0', 0, table, &want);
            if (r != 1 || want != bid) return r == FAILED ? FAILED : 0;
            r = carried_units(carried_ask, '1', 1000000, table, &want);
            if (r != 1 || want != ask) return r == FAILED ? FAILED : 0;
            agreed_bid = carried_bid;
            agreed_ask = carried_ask;
        }
    }

    /* Decided: the entry is applied. Allocate before changing anything. */
    PyObject *size_obj = units ? PyLong_FromLongLong(units) : NULL;
    if (units && size_obj == NULL) return FAILED;
    int has = PyDict_Contains(sz, p);
    if (has < 0) goto fail;
    if (agreed_bid != NULL) {
        set_slot(book, K.b_ok_bid, agreed_bid);
        set_slot(book, K.b_ok_ask, agreed_ask);
        set_slot(book, K.b_moved, Py_False);
    }
    if (!same_burst) {
        if (pend_ts == Py_None && PyDict_SetItem(pending, asset, book) < 0) goto fail;
        set_slot(book, K.b_pend_ts, ts);
    }
    set_slot(book, K.b_pend, e);
    set_slot(book, K.b_last_update, recv_ns);

    /* Set the level, noting when the top price moves (only a new or removed level can move it). */
    Py_ssize_t nlev = PyList_GET_SIZE(px);
    long long edge = 0;
    if (nlev && as_ll(PyList_GET_ITEM(px, is_bid ? nlev - 1 : 0), &edge)) goto fail;
    int moved = 0;
    if (units) {
        if (!has) {
            moved = nlev == 0 || (is_bid ? pv > edge : pv < edge);
            Py_ssize_t at = bisect(px, pv, 1);
            if (at < 0 || PyList_Insert(px, at, p) < 0) goto fail;
        }
        int rc = PyDict_SetItem(sz, p, size_obj);
        Py_CLEAR(size_obj);
        if (rc < 0) goto fail;
    }
    else if (has) {
        if (PyDict_DelItem(sz, p) < 0) goto fail;
        moved = pv == edge;
        Py_ssize_t at = bisect(px, pv, 0);
        if (at < 0 || PyList_SetSlice(px, at, at + 1, NULL) < 0) goto fail;
    }
    if (moved) set_slot(book, K.b_moved, Py_True);
    return 1;
fail:
    Py_XDECREF(size_obj);
    return FAILED;
}

static PyObject *
apply_msg(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "apply_msg(msg, books, recv_ns, pending, out) takes 5 arguments");
        return NULL;
    }
    PyObject *msg = args[0], *books = args[1], *recv_ns = args[2], *pending = args[3], *out = args[4];
    if (!K.ready) {
        PyErr_SetString(PyExc_RuntimeError, "the feed kernel is not configured");
        return NULL;
    }
    if (Py_TYPE(msg) != K.msg_type || !PyDict_CheckExact(books) || !PyDict_CheckExact(pending) ||
        !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "apply_msg(PriceChangeMsg, dict, int, dict, list)");
        return NULL;
    }
    PyObject *entries = SLOT(msg, K.m_changes), *ts = SLOT(msg, K.m_ts), *market = SLOT(msg, K.m_market);
    if (!entries || !ts || !market || !PyList_CheckExact(entries)) return PyLong_FromLong(0);
    Py_ssize_t n = PyList_GET_SIZE(entries);
    for (Py_ssize_t i = 0; i < n; i++) {
        int r = apply_entry(PyList_GET_ITEM(entries, i), books, ts, recv_ns, pending);
        if (r == FAILED) return NULL;
        if (r == 0) return PyLong_FromSsize_t(i);
    }
    PyObject *argv[4] = {market, ts, recv_ns, entries};
    PyObject *event = PyObject_Vectorcall(K.event_type, argv, 4, NULL);
    if (event == NULL) return NULL;
    int rc = PyList_Append(out, event);
    Py_DECREF(event);
    if (rc < 0) return NULL;
    return PyLong_FromLong(ALL_APPLIED);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Book, PriceChangeEntry, PriceChangeMsg, PriceChange, Side.BUY, unit)"},
    {"apply_msg", (PyCFunction)(void (*)(void))apply_msg, METH_FASTCALL,
     "apply_msg(msg, books, recv_ns, pending, out) -> int\n\n"
     "Apply the common-case entries of a price_change message in order. -1: all applied and the\n"
     "PriceChange event appended to out; otherwise the index of the first entry not applied\n"
     "(nothing of it was touched; 0 for a message without price_changes[])."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "The feed's hot path in C (see core/feed/_kernel.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", POLYBOT_KERNEL_SHA) < 0 ||
        PyModule_AddIntConstant(m, "ALL_APPLIED", ALL_APPLIED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
