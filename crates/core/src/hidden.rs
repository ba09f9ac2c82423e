//! CPython 3.12's `code.replace()` rebuilds `co_localspluskinds` from the
//! names and loses `CO_FAST_HIDDEN` of a comprehension variable whose
//! comprehension the compiler removed as dead code (gh-110543). Reading the
//! frame's `f_locals` then treats it as an unbound ordinary local: in a module
//! frame that deletes the same-named global. [`keep_hidden_kinds`] gives the
//! new code object the original's kinds back.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

/// `CO_FAST_HIDDEN` (`Include/internal/pycore_code.h`, 3.12).
const CO_FAST_HIDDEN: u8 = 0x10;

/// The start of 3.12's `PyCodeObject` (`Include/cpython/code.h`,
/// `_PyCode_DEF`) up to `co_localspluskinds`.
#[repr(C)]
struct RawCode312 {
    ob_base: ffi::PyVarObject,
    co_consts: *mut ffi::PyObject,
    co_names: *mut ffi::PyObject,
    co_exceptiontable: *mut ffi::PyObject,
    co_flags: i32,
    co_argcount: i32,
    co_posonlyargcount: i32,
    co_kwonlyargcount: i32,
    co_stacksize: i32,
    co_firstlineno: i32,
    co_nlocalsplus: i32,
    co_framesize: i32,
    co_nlocals: i32,
    co_ncellvars: i32,
    co_nfreevars: i32,
    co_version: u32,
    co_localsplusnames: *mut ffi::PyObject,
    co_localspluskinds: *mut ffi::PyObject,
}

/// The fields read or written: `(localsplusnames, localspluskinds)` of a code
/// object, after checking that the struct is laid out as [`RawCode312`]
/// expects (the fields hold the objects Python-level attributes agree with).
fn fields<'py>(code: &Bound<'py, PyAny>) -> Option<*mut RawCode312> {
    let py = code.py();
    if (py.version_info().major, py.version_info().minor) != (3, 12) {
        return None;
    }
    code.cast::<pyo3::types::PyCode>().ok()?;
    let names: Bound<'py, PyTuple> = {
        let mut all: Vec<Bound<'py, PyAny>> = Vec::new();
        for attr in ["co_varnames", "co_cellvars", "co_freevars"] {
            all.extend(code.getattr(attr).ok()?.cast_into::<PyTuple>().ok()?.iter());
        }
        PyTuple::new(py, all).ok()?
    };
    let raw = code.as_ptr() as *mut RawCode312;
    // SAFETY: `code` is a live `types.CodeType` on 3.12 (checked above), whose
    // struct starts with the fields of `RawCode312`; the GIL is held. Only
    // pointer-sized and int fields are read; the pointers are checked below
    // before anything is dereferenced through them as Python objects.
    let (nlocalsplus, names_ptr, kinds_ptr) = unsafe {
        (
            (*raw).co_nlocalsplus,
            (*raw).co_localsplusnames,
            (*raw).co_localspluskinds,
        )
    };
    if names_ptr.is_null() || kinds_ptr.is_null() || nlocalsplus as usize != names.len() {
        return None;
    }
    // SAFETY: a code object owns a reference to its names tuple and kinds
    // bytes, so both pointers are live objects while `code` is; the borrowed
    // references are used only within this call.
    let (lp_names, lp_kinds) = unsafe {
        (
            Bound::from_borrowed_ptr(py, names_ptr),
            Bound::from_borrowed_ptr(py, kinds_ptr),
        )
    };
    let lp_names = lp_names.cast_into::<PyTuple>().ok()?;
    let lp_kinds = lp_kinds.cast_into::<PyBytes>().ok()?;
    if lp_kinds.as_bytes().len() != names.len() || !lp_names.eq(&names).ok()? {
        return None;
    }
    Some(raw)
}

/// Give `new` (made by `original.replace(...)`, same local names) the
/// `CO_FAST_HIDDEN` flags of `original`'s locals. Does nothing unless the two
/// differ only in those flags (and only on 3.12).
pub fn keep_hidden_kinds(original: &Bound<'_, PyAny>, new: &Bound<'_, PyAny>) {
    let (Some(orig), Some(raw)) = (fields(original), fields(new)) else {
        return;
    };
    if orig == raw {
        return;
    }
    // SAFETY: both pointers were validated by `fields` (live code objects whose
    // kinds fields hold bytes objects of the same length as their names); the
    // GIL is held.
    unsafe {
        let ok = (*orig).co_localspluskinds;
        let nk = (*raw).co_localspluskinds;
        let (a, b) = (
            std::slice::from_raw_parts(
                ffi::PyBytes_AsString(ok) as *const u8,
                ffi::PyBytes_Size(ok) as usize,
            ),
            std::slice::from_raw_parts(
                ffi::PyBytes_AsString(nk) as *const u8,
                ffi::PyBytes_Size(nk) as usize,
            ),
        );
        if a.len() != b.len()
            || a == b
            || a.iter()
                .zip(b)
                .any(|(x, y)| x & !CO_FAST_HIDDEN != y & !CO_FAST_HIDDEN)
        {
            return;
        }
        // The new code object takes a reference to the original's (immutable)
        // kinds and releases its own.
        ffi::Py_INCREF(ok);
        (*raw).co_localspluskinds = ok;
        ffi::Py_DECREF(nk);
    }
}
