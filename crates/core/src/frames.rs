//! Reading live frames: value-stack slots below the current instruction, and
//! whether a frame was entered from C.
//!
//! The value stack lives in `_PyInterpreterFrame.localsplus` after the locals.
//! Its layout is private, so every offset below cites the struct it follows and
//! is checked before use: the code pointer read at the expected place must be
//! the frame's own `f_code`, and only frames on the current thread's stack are
//! read, only at slots whose kind the analysis knows (never `NULL`).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use resurrect_bytecode::{SlotKind, Version};

use crate::instrument::analyse;
use crate::version;

// Public (non-limited) C API of 3.11–3.13 (`Include/cpython/pyframe.h`). The
// module is built for the stable ABI to ship one wheel, but it only loads on the
// versions whose frame layout it knows (see `crate::version`), all of which
// export these.
extern "C" {
    fn PyFrame_GetBack(frame: *mut ffi::PyFrameObject) -> *mut ffi::PyFrameObject;
    fn PyFrame_GetLasti(frame: *mut ffi::PyFrameObject) -> std::os::raw::c_int;
}

/// The code object of a frame (a new reference), without an attribute lookup.
pub fn code_of<'py>(frame: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    // SAFETY: callers pass frame objects only; PyFrame_GetCode returns a new,
    // non-NULL reference.
    unsafe {
        let c = ffi::PyFrame_GetCode(frame.as_ptr() as *mut ffi::PyFrameObject);
        Bound::from_owned_ptr(frame.py(), c as *mut ffi::PyObject)
    }
}

/// The caller of a frame and the caller's `f_lasti` (bytes), if any.
pub fn back_of<'py>(frame: &Bound<'py, PyAny>) -> Option<(Bound<'py, PyAny>, u32)> {
    // SAFETY: callers pass frame objects only; PyFrame_GetBack returns a new
    // reference or NULL; PyFrame_GetLasti only reads the frame.
    unsafe {
        let b = PyFrame_GetBack(frame.as_ptr() as *mut ffi::PyFrameObject);
        if b.is_null() {
            return None;
        }
        let lasti = PyFrame_GetLasti(b);
        let back = Bound::from_owned_ptr(frame.py(), b as *mut ffi::PyObject);
        (lasti >= 0).then_some((back, lasti as u32))
    }
}

/// Offset of `f_frame` in `PyFrameObject` (3.11–3.13, `Include/internal/pycore_frame.h`:
/// `PyObject_HEAD; PyFrameObject *f_back; _PyInterpreterFrame *f_frame;`).
const F_FRAME: usize = 24;

/// Offsets in `_PyInterpreterFrame` (`Include/internal/pycore_frame.h`).
struct Layout {
    /// `f_code` (3.11) / `f_code` (3.12) / `f_executable` (3.13).
    code: usize,
    /// `previous`.
    previous: usize,
    /// `localsplus[0]`.
    localsplus: usize,
}

fn layout(ver: Version) -> Layout {
    match ver {
        // f_func, f_globals, f_builtins, f_locals, f_code, frame_obj, previous,
        // prev_instr, int stacktop, bool is_entry, char owner, localsplus[]
        Version::V3_11 => Layout {
            code: 32,
            previous: 48,
            localsplus: 72,
        },
        // f_code / f_executable, previous, f_funcobj, f_globals, f_builtins,
        // f_locals, frame_obj, prev_instr / instr_ptr, int stacktop,
        // uint16_t return_offset, char owner, localsplus[]
        Version::V3_12 | Version::V3_13 => Layout {
            code: 0,
            previous: 8,
            localsplus: 72,
        },
    }
}

/// Number of locals-plus slots: every name of `co_varnames`, `co_cellvars`
/// and `co_freevars` once (a cell argument is in the first two).
fn nlocalsplus(code: &Bound<'_, PyAny>) -> PyResult<usize> {
    let mut names: Vec<String> = Vec::new();
    for attr in ["co_varnames", "co_cellvars", "co_freevars"] {
        for n in code.getattr(attr)?.cast_into::<PyTuple>()?.iter() {
            let n: String = n.extract()?;
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names.len())
}

/// Whether `frame` is on the current thread's stack (so its interpreter
/// frame is live and owned by this thread).
fn on_current_stack(frame: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = frame.py();
    // SAFETY: PyEval_GetFrame returns a borrowed reference (or NULL) to the
    // running frame of this thread; we hold the GIL.
    let cur = unsafe { ffi::PyEval_GetFrame() };
    if cur.is_null() {
        return Ok(false);
    }
    // SAFETY: `cur` is a valid borrowed frame object (see above).
    let mut f = unsafe { Bound::from_borrowed_ptr(py, cur as *mut ffi::PyObject) };
    for _ in 0..100_000 {
        if f.is(frame) {
            return Ok(true);
        }
        let back = f.getattr("f_back")?;
        if back.is_none() {
            return Ok(false);
        }
        f = back;
    }
    Ok(false)
}

/// The interpreter frame of a frame object, after checking its code pointer.
fn interp_frame(frame: &Bound<'_, PyAny>) -> PyResult<Option<*const u8>> {
    let py = frame.py();
    let ver = version(py)?;
    if !on_current_stack(frame)? {
        return Ok(None);
    }
    let code = frame.getattr("f_code")?;
    // SAFETY: `frame` is a live PyFrameObject (checked to be on this thread's
    // stack); F_FRAME is the offset of its `f_frame` pointer on 3.11–3.13.
    let f = unsafe { *(frame.as_ptr().cast::<u8>().add(F_FRAME) as *const *const u8) };
    if f.is_null() {
        return Ok(None);
    }
    let l = layout(ver);
    // SAFETY: `f` points to the live interpreter frame; `l.code` is the offset
    // of its code pointer per the layout cited above.
    let code_ptr = unsafe { *(f.add(l.code) as *const *const ffi::PyObject) };
    if !std::ptr::eq(code_ptr, code.as_ptr()) {
        return Ok(None);
    }
    Ok(Some(f))
}

/// Read slot `index` of the value stack of a checked interpreter frame.
///
/// # Safety
/// `f` must come from [`interp_frame`] for a frame whose code has `nlp`
/// locals-plus slots, and the slot must be one the analysis knows to hold an
/// object (a kind other than `Other`) at the frame's current instruction.
unsafe fn read_slot<'py>(
    py: Python<'py>,
    f: *const u8,
    nlp: usize,
    index: usize,
) -> Option<Bound<'py, PyAny>> {
    let localsplus = layout(version(py).ok()?).localsplus;
    // SAFETY: per the function's contract the slot lies inside the frame's
    // value stack and holds a valid object pointer.
    let p = unsafe { *(f.add(localsplus + 8 * (nlp + index)) as *const *mut ffi::PyObject) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null object pointer owned by the frame; we take a new reference.
    Some(unsafe { Bound::from_borrowed_ptr(py, p) })
}

/// A value-stack slot: its index from the bottom, its kind, its object.
pub type Slot<'py> = (usize, &'static str, Bound<'py, PyAny>);

/// The known-kind slots of `frame`'s value stack below its current
/// instruction's operands, bottom first, as `(kind, object)`; `None` when the
/// frame cannot be read safely.
pub fn base_slots<'py>(
    frame: &Bound<'py, PyAny>,
    lasti: Option<i64>,
) -> PyResult<Option<Vec<Slot<'py>>>> {
    let py = frame.py();
    let code = frame.getattr("f_code")?;
    let Some(f) = interp_frame(frame)? else {
        return Ok(None);
    };
    let info = analyse(&code)?;
    let a = &info.analysis;
    let lasti: i64 = match lasti {
        Some(l) => l,
        None => frame.getattr("f_lasti")?.extract()?,
    };
    if lasti < 0 {
        return Ok(None);
    }
    let Some(i) = a.instr_at_unit((lasti / 2) as u32) else {
        return Ok(None);
    };
    let kinds: Vec<SlotKind> = match (a.owner[i], a.intact.get(i)) {
        (Some(r), Some(true)) => a.rps[r as usize].base.clone(),
        _ => {
            // Not inside a statement: only slots below the instruction's operands.
            let Some(stack) = &a.stacks[i] else {
                return Ok(None);
            };
            let ins = &a.instrs[i];
            let c = resurrect_bytecode::effects::effect(
                a.version,
                ins,
                resurrect_bytecode::effects::Edge::Fall,
            )
            .map_or(stack.len() as u32, |e| e.0) as usize;
            stack[..stack.len().saturating_sub(c)].to_vec()
        }
    };
    let nlp = nlocalsplus(&code)?;
    let mut out = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        if !kind.is_base() {
            continue;
        }
        // SAFETY: `f` is checked, `k` is below the instruction's operands and
        // its kind is known, so the slot holds an object.
        if let Some(obj) = unsafe { read_slot(py, f, nlp, k) } {
            out.push((k, kind.name(), obj));
        }
    }
    Ok(Some(out))
}

/// See [`base_slots`]: `[(kind, object), ...]` or `None`.
#[pyfunction]
#[pyo3(signature = (frame, lasti=None))]
fn frame_stack<'py>(frame: &Bound<'py, PyAny>, lasti: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    let py = frame.py();
    Ok(match base_slots(frame, lasti)? {
        None => py.None().into_bound(py),
        Some(v) => {
            let items: Vec<Bound<'py, PyTuple>> = v
                .into_iter()
                .map(|(_, k, o)| PyTuple::new(py, [k.into_pyobject(py)?.into_any(), o]))
                .collect::<PyResult<_>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
}

/// Where a frame is suspended in a call of one of its statements, for
/// re-entering the statement at that call (see `instrument::call_continuation`):
/// `(statement start (bytes), ordinal of the call in the statement, opcode
/// name, oparg, slots)`, where `slots` are the values the statement computed
/// below the call's operands (above its base slots), bottom first, as
/// `("value", object)` or `("null", None)`. `None` when the frame is not at a
/// call of a statement or cannot be read, or when `child` (the frame the call
/// entered) was not called by it directly (3.13 enters `__init__` through a
/// shim frame, whose call returns the instance, not `__init__`'s result).
#[pyfunction]
#[pyo3(signature = (frame, child=None))]
#[allow(clippy::type_complexity)]
fn call_site<'py>(
    frame: &Bound<'py, PyAny>,
    child: Option<&Bound<'py, PyAny>>,
) -> PyResult<
    Option<(
        u32,
        u32,
        &'static str,
        u32,
        Vec<(&'static str, Bound<'py, PyAny>)>,
    )>,
> {
    let py = frame.py();
    let code = frame.getattr("f_code")?;
    let Some(f) = interp_frame(frame)? else {
        return Ok(None);
    };
    if let Some(child) = child {
        let Some(c) = interp_frame(child)? else {
            return Ok(None);
        };
        let l = layout(version(py)?);
        // SAFETY: `c` is a checked live interpreter frame; `previous` is a
        // pointer at `l.previous` per the layout cited above.
        let previous = unsafe { *(c.add(l.previous) as *const *const u8) };
        if !std::ptr::eq(previous, f) {
            return Ok(None);
        }
    }
    let info = analyse(&code)?;
    let a = &info.analysis;
    let lasti: i64 = frame.getattr("f_lasti")?.extract()?;
    if lasti < 0 {
        return Ok(None);
    }
    let Some(i) = a.instr_at_unit((lasti / 2) as u32) else {
        return Ok(None);
    };
    if !crate::instrument::is_call(a.instrs[i].op) || a.intact.get(i) != Some(&true) {
        return Ok(None);
    }
    let Some(r) = a.owner[i] else {
        return Ok(None);
    };
    let rp = &a.rps[r as usize];
    let ordinal = (a.instr_at_unit(rp.start).unwrap_or(i)..i)
        .filter(|&j| a.owner[j] == Some(r) && crate::instrument::is_call(a.instrs[j].op))
        .count() as u32;
    let entry = crate::instrument::call_entry(a, i);
    let Some(stack) = &a.stacks[entry] else {
        return Ok(None);
    };
    // The call's operands: callable, `self` or NULL, the arguments (3.11:
    // PRECALL's arguments, then CALL's two), and CALL_KW's names or
    // CALL_FUNCTION_EX's argument tuple and dict.
    let mut operands = 0usize;
    for j in entry..=i {
        operands += resurrect_bytecode::effects::effect(
            a.version,
            &a.instrs[j],
            resurrect_bytecode::effects::Edge::Fall,
        )
        .map_or(0, |e| e.0) as usize;
    }
    let nbase = rp.base.len();
    if stack.len() < operands + nbase || stack[..nbase] != rp.base[..] {
        return Ok(None);
    }
    let below = stack.len() - operands;
    let nlp = nlocalsplus(&code)?;
    let localsplus = layout(version(py)?).localsplus;
    let mut slots = Vec::new();
    for k in nbase..below {
        // SAFETY: `f` is the checked interpreter frame of `frame`, which is
        // executing the call at `i`: the analysis gives it `stack.len()`
        // slots before the call's entry, and slots below the operands stay
        // on the stack (owned references, or NULL where a call's `self` slot
        // is empty) until the call returns.
        let p = unsafe { *(f.add(localsplus + 8 * (nlp + k)) as *const *mut ffi::PyObject) };
        if p.is_null() {
            slots.push(("null", py.None().into_bound(py)));
        } else {
            // SAFETY: a non-NULL object pointer owned by the live frame; we take a new reference.
            slots.push(("value", unsafe { Bound::from_borrowed_ptr(py, p) }));
        }
    }
    let name = match a.instrs[i].op {
        resurrect_bytecode::Op::CallKw => "CALL_KW",
        resurrect_bytecode::Op::CallFunctionEx => "CALL_FUNCTION_EX",
        _ => "CALL",
    };
    Ok(Some((rp.start * 2, ordinal, name, a.instrs[i].arg, slots)))
}

/// Whether `frame` was called from C (`map`, `sorted(key=...)`, a slot such as
/// `__next__` called by `FOR_ITER`), so that C code may swallow its exceptions.
/// `None` when the frame cannot be read.
#[pyfunction]
fn entered_from_c(frame: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
    let py = frame.py();
    let ver = version(py)?;
    let Some(f) = interp_frame(frame)? else {
        return Ok(None);
    };
    let l = layout(ver);
    Ok(Some(match ver {
        // SAFETY: `is_entry` (bool) follows `int stacktop` at offset 68 in 3.11.
        Version::V3_11 => unsafe { *f.add(68) != 0 },
        Version::V3_12 | Version::V3_13 => {
            // SAFETY: `previous` is a pointer at `l.previous` in the checked frame.
            let prev = unsafe { *(f.add(l.previous) as *const *const u8) };
            // An entry frame's `previous` is the C stack's shim frame, owned by
            // FRAME_OWNED_BY_CSTACK (3); `owner` is at offset 70 (after int
            // stacktop and uint16_t return_offset).
            // SAFETY: `prev` is either NULL or a live interpreter frame.
            prev.is_null() || unsafe { *prev.add(70) } == 3
        }
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(call_site, m)?)?;
    m.add_function(wrap_pyfunction!(frame_stack, m)?)?;
    m.add_function(wrap_pyfunction!(entered_from_c, m)?)?;
    Ok(())
}
