//! The builtin the stubs call, with the fast path that decides in Rust
//! whether the frame's own `except` catches the exception.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::exceptions::{
    PyException, PyGeneratorExit, PyKeyboardInterrupt, PyRecursionError, PyStopIteration,
    PySystemExit,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use resurrect_bytecode::analysis::{Analysis, HandlerKind};
use resurrect_bytecode::exctable::Handler;
use resurrect_bytecode::fxhash::FxHashMap;
use resurrect_bytecode::{Op, Version};

use crate::frames::{self, base_slots};
use crate::instrument::{analyse, lookup};
use crate::version;

/// The Python side: the decision hook and the frame-value thunk runner.
struct Hooks {
    decide: Py<PyAny>,
    value: Py<PyAny>,
    /// `engine._Leave`: what `__resurrect_unwind__` acts on.
    leave: Option<Py<PyAny>>,
}

fn hooks() -> &'static Mutex<Option<Hooks>> {
    static HOOKS: OnceLock<Mutex<Option<Hooks>>> = OnceLock::new();
    HOOKS.get_or_init(|| Mutex::new(None))
}

fn decide_hook(py: Python<'_>) -> Option<Py<PyAny>> {
    hooks()
        .lock()
        .ok()?
        .as_ref()
        .map(|h| h.decide.clone_ref(py))
}

/// Where a decision to let an exception through was taken: addresses only,
/// never a reference. A reference would keep the exception, its traceback and
/// every frame on it (with their locals) alive after the program's `except`
/// is done with it, invisibly to the garbage collector.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Mark {
    exc: usize,
    /// The traceback entry at the head when deciding (the deciding frame's).
    tb: usize,
    frame: usize,
    lasti: i32,
}

thread_local! {
    /// The exception last let through by a decision: outer frames' stubs meet
    /// the same object while it propagates and must not decide again.
    static DECIDED: std::cell::Cell<Option<Mark>> = const { std::cell::Cell::new(None) };
    /// A retry/skip decision waiting for a late stub's leaf to take it.
    static LATE_DECISION: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    /// The thunk of a `_Leave` taken by `__resurrect_unwind__`, run by
    /// `__resurrect_value__` (giving the left frame's return value).
    static THUNK: std::cell::RefCell<Option<Py<PyAny>>> = const { std::cell::RefCell::new(None) };
}

/// `PyTracebackObject` (`Include/cpython/traceback.h`, identical in 3.11,
/// 3.12 and 3.13; not part of the limited API): read directly, because
/// reading `tb_frame` as an attribute raises an audit event, that is runs
/// Python code, and this runs while the program's exception propagates,
/// possibly at the recursion limit.
#[repr(C)]
struct RawTraceback {
    ob_base: ffi::PyObject,
    tb_next: *mut ffi::PyObject,
    tb_frame: *mut ffi::PyObject,
    tb_lasti: std::os::raw::c_int,
    tb_lineno: std::os::raw::c_int,
}

fn traceback_type(py: Python<'_>) -> Option<usize> {
    static TB: OnceLock<usize> = OnceLock::new();
    if let Some(t) = TB.get() {
        return Some(*t);
    }
    // `types.TracebackType` lives as long as the interpreter: keep its address.
    let t = py.import("types").ok()?.getattr("TracebackType").ok()?;
    let addr = t.as_ptr() as usize;
    let _ = TB.set(addr);
    std::mem::forget(t);
    Some(addr)
}

/// Calls `f(tb, frame, lasti)` with the traceback entries of `exc` as
/// addresses, head first, until it returns `true` (then returns `true`).
/// Nothing is allocated: this runs on every exception a stub meets.
fn tb_any(exc: &Bound<'_, PyAny>, mut f: impl FnMut(usize, usize, i32) -> bool) -> bool {
    let py = exc.py();
    let Some(tb_type) = traceback_type(py) else {
        return false;
    };
    if !exc.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        return false;
    }
    // SAFETY: `exc` is a live exception instance; PyException_GetTraceback
    // returns a new reference (or NULL) we release below.
    let head = unsafe { ffi::PyException_GetTraceback(exc.as_ptr()) };
    let mut tb = head;
    let mut found = false;
    // Bounded: a traceback chain is finite, but a cycle built by hand
    // (`tb.tb_next = tb`) must not hang the program.
    for _ in 0..1_000_000 {
        if tb.is_null() {
            break;
        }
        // SAFETY: `tb` is a live object (the chain hangs from `head`, which we
        // own a reference to, through `tb_next` links owned by each entry).
        // Its type is checked to be exactly `types.TracebackType` before the
        // struct is read; the GIL is held, so the chain cannot change.
        unsafe {
            if ffi::Py_TYPE(tb) as usize != tb_type {
                break;
            }
            let raw = &*(tb as *const RawTraceback);
            if f(tb as usize, raw.tb_frame as usize, raw.tb_lasti) {
                found = true;
                break;
            }
            tb = raw.tb_next;
        }
    }
    if !head.is_null() {
        // SAFETY: releases the reference PyException_GetTraceback gave us.
        unsafe { ffi::Py_DECREF(head) };
    }
    found
}

/// Whether `exc` was let through by a decision in a frame it has since left.
///
/// The exception's address alone could belong to a new exception after the
/// decided one died; the deciding frame's traceback entry (address, frame,
/// instruction) found *below* the head of the exception's traceback says it
/// is the same one, carried outward since. A new exception at a reused
/// address meets its first stub with no entry below its head: it is decided
/// afresh, and the mark renewed.
fn already_decided(exc: &Bound<'_, PyAny>) -> bool {
    let Some(m) = DECIDED.with(|d| d.get()) else {
        return false;
    };
    if m.exc != exc.as_ptr() as usize {
        return false;
    }
    let mut head = true;
    tb_any(exc, |tb, frame, lasti| {
        let below_head = !std::mem::replace(&mut head, false);
        below_head && tb == m.tb && frame == m.frame && lasti == m.lasti
    })
}

fn mark_decided(exc: &Bound<'_, PyAny>) {
    let mut mark = None;
    tb_any(exc, |tb, frame, lasti| {
        mark = Some(Mark {
            exc: exc.as_ptr() as usize,
            tb,
            frame,
            lasti,
        });
        true
    });
    DECIDED.with(|d| d.set(mark));
}

/// Number of `handler_bind` regions in force in any thread: while non-zero,
/// every exception goes to Python so handlers can see it first.
static HANDLERS_ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Install the Python decision function `decide(frame, exc, rp_index)`, which
/// returns `None` (propagate), `True` (retry) or `False` (skip), or raises; and
/// `value()`, which runs the thunk giving a left frame's return value.
///
/// `leave`: the exception class the hook raises to leave a frame (it carries
/// `run_exits` and `thunk`), recognised by `__resurrect_unwind__`.
#[pyfunction]
#[pyo3(signature = (decide=None, value=None, leave=None))]
fn set_hook(decide: Option<Py<PyAny>>, value: Option<Py<PyAny>>, leave: Option<Py<PyAny>>) {
    if let Ok(mut h) = hooks().lock() {
        *h = match (decide, value) {
            (Some(decide), Some(value)) => Some(Hooks {
                decide,
                value,
                leave,
            }),
            _ => None,
        };
    }
}

/// Tell the fast path how many `handler_bind` regions are in force.
#[pyfunction]
fn set_handlers_active(n: usize) {
    HANDLERS_ACTIVE.store(n, Ordering::SeqCst);
}

fn current_frame(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: PyEval_GetFrame returns a borrowed reference (or NULL) to this
    // thread's running frame; we hold the GIL.
    let f = unsafe { ffi::PyEval_GetFrame() };
    if f.is_null() {
        None
    } else {
        // SAFETY: non-null borrowed reference to a frame object.
        Some(unsafe { Bound::from_borrowed_ptr(py, f as *mut ffi::PyObject) })
    }
}

/// The verdict of one `try`/`except` dispatch for `exc`: `Some(true)` a clause
/// matches, `Some(false)` none does, `None` the clauses could not be evaluated
/// here (local names, unusual expressions).
fn except_catches(
    a: &Analysis,
    frame: &Bound<'_, PyAny>,
    h: Handler,
    exc: &Bound<'_, PyAny>,
) -> PyResult<Option<bool>> {
    let py = frame.py();
    let Some(mut i) = a.index_of_start(h.target) else {
        return Ok(None);
    };
    i += 1; // past PUSH_EXC_INFO
    let code = frame.getattr("f_code")?;
    let names = code.getattr("co_names")?.cast_into::<PyTuple>()?;
    let globals = frame.getattr("f_globals")?.cast_into::<PyDict>()?;
    let builtins = frame.getattr("f_builtins")?;
    let exc_type = exc.get_type();
    let mut stack: Vec<Bound<'_, PyAny>> = Vec::new();
    for _ in 0..256 {
        let Some(ins) = a.instrs.get(i) else {
            return Ok(None);
        };
        match ins.op {
            Op::PopTop if stack.is_empty() => return Ok(Some(true)),
            Op::Reraise => return Ok(Some(false)),
            Op::LoadGlobal | Op::LoadName => {
                let idx = if ins.op == Op::LoadGlobal {
                    ins.arg >> 1
                } else {
                    ins.arg
                };
                if ins.op == Op::LoadGlobal && ins.arg & 1 == 1 {
                    return Ok(None);
                }
                let name = names.get_item(idx as usize)?;
                if ins.op == Op::LoadName {
                    let locals = frame.getattr("f_locals")?;
                    if !locals.is(&globals) {
                        return Ok(None);
                    }
                }
                let v = match globals.get_item(&name)? {
                    Some(v) => v,
                    None => match builtins.get_item(&name) {
                        Ok(v) => v,
                        Err(_) => return Ok(None),
                    },
                };
                stack.push(v);
            }
            Op::LoadAttr => {
                let idx = if a.version == Version::V3_11 {
                    ins.arg
                } else {
                    ins.arg >> 1
                };
                if a.version != Version::V3_11 && ins.arg & 1 == 1 {
                    return Ok(None);
                }
                let Some(obj) = stack.pop() else {
                    return Ok(None);
                };
                match obj.getattr(
                    names
                        .get_item(idx as usize)?
                        .cast_into::<pyo3::types::PyString>()?,
                ) {
                    Ok(v) => stack.push(v),
                    Err(_) => return Ok(None),
                }
            }
            Op::BuildTuple => {
                let n = ins.arg as usize;
                if stack.len() < n {
                    return Ok(None);
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(PyTuple::new(py, items)?.into_any());
            }
            Op::CheckExcMatch => {
                let Some(clause) = stack.pop() else {
                    return Ok(None);
                };
                let valid = |c: &Bound<'_, PyAny>| {
                    c.cast::<PyType>()
                        .map(|t| {
                            t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
                                .unwrap_or(false)
                        })
                        .unwrap_or(false)
                };
                let ok = if let Ok(t) = clause.cast::<PyTuple>() {
                    t.iter().all(|c| valid(&c))
                } else {
                    valid(&clause)
                };
                if !ok {
                    return Ok(None);
                }
                // SAFETY: both are valid object pointers; the function only reads them.
                let m =
                    unsafe { ffi::PyErr_GivenExceptionMatches(exc_type.as_ptr(), clause.as_ptr()) };
                if m != 0 {
                    return Ok(Some(true));
                }
                // Next clause: the POP_JUMP_IF_FALSE after CHECK_EXC_MATCH.
                let Some(j) = a.instrs.get(i + 1) else {
                    return Ok(None);
                };
                if !matches!(j.op, Op::PopJumpIfFalse | Op::PopJumpForwardIfFalse) {
                    return Ok(None);
                }
                let Some(t) = resurrect_bytecode::instr::jump_target(j, a.version) else {
                    return Ok(None);
                };
                let Some(ti) = a.index_of_start(t as u32) else {
                    return Ok(None);
                };
                i = ti;
                stack.clear();
                continue;
            }
            _ => return Ok(None),
        }
        i += 1;
    }
    Ok(None)
}

/// One step of the handler chain met by an exception in `frame` at byte
/// offset `lasti`: `(kind, detail)` with kind one of `except`, `except*`,
/// `with`, `finally`, `cleanup`, `generator`; detail is the verdict of an
/// `except` (`True`, `False`, `None` = unknown) or the bound `__exit__` of a
/// `with` (or `None`).
fn chain<'py>(
    frame: &Bound<'py, PyAny>,
    exc: &Bound<'py, PyAny>,
    lasti: i64,
    info: &Analysis,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    let py = frame.py();
    let mut out = Vec::new();
    let Some(i) = info.instr_at_unit((lasti.max(0) / 2) as u32) else {
        return Ok(out);
    };
    let slots = base_slots(frame, Some(lasti))?;
    for (h, kind) in info.handler_chain(i) {
        let step = match kind {
            HandlerKind::Except => {
                let v = except_catches(info, frame, h, exc)?;
                let v = match v {
                    Some(b) => b.into_pyobject(py)?.to_owned().into_any(),
                    None => py.None().into_bound(py),
                };
                ("except", v)
            }
            HandlerKind::ExceptStar => ("except*", py.None().into_bound(py)),
            HandlerKind::WithCleanup => {
                let exit = slots.as_ref().and_then(|s| {
                    s.iter()
                        .find(|(k, kind, _)| *k + 1 == h.depth as usize && *kind == "with_exit")
                        .map(|(_, _, o)| o.clone())
                });
                ("with", exit.unwrap_or_else(|| py.None().into_bound(py)))
            }
            HandlerKind::ExceptCleanup | HandlerKind::AsCleanup => {
                ("cleanup", py.None().into_bound(py))
            }
            HandlerKind::GeneratorWrapper => ("generator", py.None().into_bound(py)),
            HandlerKind::Other => ("finally", py.None().into_bound(py)),
        };
        out.push(step);
    }
    Ok(out)
}

/// The handler chain of `frame` at byte offset `lasti` (default: its current
/// instruction) for `exc`: a list of `(kind, detail)`; see the Rust docs.
#[pyfunction]
#[pyo3(signature = (frame, exc, lasti=None))]
fn handler_chain<'py>(
    frame: &Bound<'py, PyAny>,
    exc: &Bound<'py, PyAny>,
    lasti: Option<i64>,
) -> PyResult<Bound<'py, PyList>> {
    let py = frame.py();
    let code = frame.getattr("f_code")?;
    let info = analyse(&code)?;
    let lasti = match lasti {
        Some(l) => l,
        None => frame.getattr("f_lasti")?.extract()?,
    };
    let steps = chain(frame, exc, lasti, &info.analysis)?;
    let items: Vec<Bound<'py, PyTuple>> = steps
        .into_iter()
        .map(|(k, d)| PyTuple::new(py, [k.into_pyobject(py)?.into_any(), d]))
        .collect::<PyResult<_>>()?;
    PyList::new(py, items)
}

/// What one frame's own handlers do with an exception type at an instruction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// An `except` of this frame catches it.
    Caught,
    /// Nothing in this frame catches it: look further out.
    Passes,
    /// Python must decide (`with`, `except*`, a clause not evaluable here).
    Unknown,
}

/// Verdicts by (code object, where, exception type): `where` is the code unit
/// a caller frame is suspended at, or [`RP_TAG`] `|` the resume point index for
/// the frame whose stub is deciding. Clauses are evaluated once per key: a
/// program that rebinds a global used in an `except` clause after it was
/// evaluated is not noticed (such an exception then propagates, as plain
/// Python would, without pausing). The values hold the type so its address is
/// never reused while cached; only code objects of the registry, which holds
/// them for good, are keys. A hit decides a frame without the registry or the
/// analysis: this runs for every exception a stub meets.
type VerdictCache = Mutex<FxHashMap<(usize, u32, usize), (Verdict, Py<PyAny>)>>;

/// Marks a [`VerdictCache`] key's `where` as a resume point index.
const RP_TAG: u32 = 1 << 31;

fn verdicts() -> &'static VerdictCache {
    static V: OnceLock<VerdictCache> = OnceLock::new();
    V.get_or_init(|| Mutex::new(FxHashMap::default()))
}

fn frame_verdict(
    a: &Analysis,
    frame: &Bound<'_, PyAny>,
    i: usize,
    exc: &Bound<'_, PyAny>,
) -> PyResult<Verdict> {
    for (h, kind) in a.handler_chain(i) {
        match kind {
            HandlerKind::Except => match except_catches(a, frame, h, exc)? {
                Some(true) => return Ok(Verdict::Caught),
                Some(false) => continue,
                None => return Ok(Verdict::Unknown),
            },
            // A `with` whose `__exit__` suppresses the exception handles it;
            // one that does not lets it on to the handlers further out. So if
            // one of those catches it, the program handles it either way (an
            // `__exit__` raising something else raises at this frame's
            // `WITH_EXCEPT_START`, where that new exception meets its own
            // stub). Only when nothing further out catches it must Python ask
            // the context manager: the walk then answers "ask Python".
            HandlerKind::WithCleanup
            | HandlerKind::ExceptCleanup
            | HandlerKind::AsCleanup
            | HandlerKind::Other => continue,
            HandlerKind::GeneratorWrapper if !exc.is_instance_of::<PyStopIteration>() => continue,
            _ => return Ok(Verdict::Unknown),
        }
    }
    Ok(Verdict::Passes)
}

/// The verdict of `frame` (running `code`) at `place` (see [`VerdictCache`]),
/// from the cache or worked out and cached. `None`: the code is not
/// instrumented or the place not found ("ask Python").
fn verdict_at(
    frame: &Bound<'_, PyAny>,
    code: &Bound<'_, PyAny>,
    place: u32,
    exc: &Bound<'_, PyAny>,
    exc_type: &Bound<'_, PyAny>,
) -> PyResult<Option<Verdict>> {
    let key = (code.as_ptr() as usize, place, exc_type.as_ptr() as usize);
    if let Some(v) = verdicts()
        .lock()
        .ok()
        .and_then(|m| m.get(&key).map(|v| v.0))
    {
        return Ok(Some(v));
    }
    let Some(info) = lookup(code) else {
        return Ok(None);
    };
    let v = if info.instrumented {
        let a = &info.analysis;
        let i = if place & RP_TAG != 0 {
            a.rps
                .get((place & !RP_TAG) as usize)
                .and_then(|r| a.index_of_start(r.start))
        } else {
            a.instr_at_unit(place)
        };
        let Some(i) = i else { return Ok(None) };
        frame_verdict(a, frame, i, exc)?
    } else {
        // Analysed but not instrumented (the registry holds it for good too):
        // its handlers are not ours to read ahead of Python.
        Verdict::Unknown
    };
    if let Ok(mut m) = verdicts().lock() {
        m.insert(key, (v, exc_type.clone().unbind()));
    }
    Ok(Some(v))
}

/// The fast path: whether an `except` of instrumented code on the stack, from
/// the failing statement outward, certainly catches `exc`. Stops (answering
/// `false`, "ask Python") at the first frame that is not instrumented,
/// `except*`, or a clause it cannot evaluate; passes `with` blocks (see
/// [`frame_verdict`]). A `true` only ever lets the exception propagate, as
/// plain Python.
fn caught_by_user_code(
    frame: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
    rp: u32,
) -> PyResult<bool> {
    if rp & RP_TAG != 0 {
        return Ok(false);
    }
    let exc_type = exc.get_type().into_any();
    let mut f = frame.clone();
    let mut place = RP_TAG | rp;
    for _ in 0..10_000 {
        let code = frames::code_of(&f);
        match verdict_at(&f, &code, place, exc, &exc_type)? {
            Some(Verdict::Caught) => return Ok(true),
            Some(Verdict::Passes) => {}
            Some(Verdict::Unknown) | None => return Ok(false),
        }
        let Some((back, lasti)) = frames::back_of(&f) else {
            return Ok(false);
        };
        place = lasti / 2;
        f = back;
    }
    Ok(false)
}

/// `__resurrect_dispatch__(exc, rp)`: called by a stub with the exception and
/// the resume point's index. Returns `None` (propagate), `True` (retry) or
/// `False` (skip); raises to leave the frame (see `emit.rs`).
#[pyfunction]
fn dispatch(py: Python<'_>, exc: Bound<'_, PyAny>, rp: u32) -> PyResult<Py<PyAny>> {
    // Control flow of the runtime never pauses.
    if is_flow(&exc) {
        return Ok(py.None());
    }
    if already_decided(&exc) {
        return Ok(py.None());
    }
    let Some(frame) = current_frame(py) else {
        return Ok(py.None());
    };
    decide(py, &frame, &exc, rp)
}

/// The fast path, then the Python hook; remembers a "propagate".
fn decide(
    py: Python<'_>,
    frame: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
    rp: u32,
) -> PyResult<Py<PyAny>> {
    // The fast path only reads frames; if that fails (an audit hook refusing
    // or failing an attribute read), Python decides.
    if HANDLERS_ACTIVE.load(Ordering::SeqCst) == 0
        && caught_by_user_code(frame, exc, rp).unwrap_or(false)
    {
        mark_decided(exc);
        return Ok(py.None());
    }
    let Some(hook_fn) = decide_hook(py) else {
        return Ok(py.None());
    };
    let r = match hook_fn.bind(py).call1((frame, exc, rp)) {
        Ok(r) => r,
        // The decision machinery ran out of stack (the program's exception was
        // raised at, or near, the recursion limit: calling the hook, or
        // anything it calls, fails). Nothing was decided: the program's
        // exception goes on unchanged, as in plain Python, and outer frames
        // must not try again (each try would fail the same way).
        Err(e) if e.is_instance_of::<PyRecursionError>(py) => {
            mark_decided(exc);
            return Ok(py.None());
        }
        Err(e) => return Err(e),
    };
    if r.is_none() {
        mark_decided(exc);
    } else if r.is(py.Ellipsis()) {
        // Propagate, but outer frames must still see it (an `UnwindTo` on its
        // way to the frame it targets).
        return Ok(py.None());
    }
    Ok(r.unbind())
}

fn is_flow(exc: &Bound<'_, PyAny>) -> bool {
    // The three derive from `BaseException` only: one check settles the
    // common case.
    !exc.is_instance_of::<PyException>()
        && (exc.is_instance_of::<PySystemExit>()
            || exc.is_instance_of::<PyGeneratorExit>()
            || exc.is_instance_of::<PyKeyboardInterrupt>())
}

/// `__resurrect_late__(exc)`: called by a `try`'s late stub when none of its
/// `except` clauses matched. Finds the statement that raised (from the
/// traceback) and decides; returns `None` (propagate) or the statement's
/// resume point index, its retry/skip decision waiting for
/// `__resurrect_value__`. Raises to leave the frame.
#[pyfunction]
fn late(py: Python<'_>, exc: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if is_flow(&exc) || already_decided(&exc) {
        return Ok(py.None());
    }
    let Some(frame) = current_frame(py) else {
        return Ok(py.None());
    };
    // This frame's traceback entry says which instruction raised. Reading it
    // may fail (an audit hook sees `tb_frame`; at the recursion limit calling
    // that hook raises): then nothing is decided and the program's exception
    // goes on unchanged. Raising here instead would send a new exception into
    // this very `try`, whose no-match would call us again: a loop.
    let Some(lasti) = raising_lasti(&exc, &frame) else {
        mark_decided(&exc);
        return Ok(py.None());
    };
    let code = frames::code_of(&frame);
    let Some(info) = lookup(&code) else {
        return Ok(py.None());
    };
    let Some(rp) = info.analysis.rp_at_unit((lasti.max(0) / 2) as u32) else {
        return Ok(py.None());
    };
    if !info.late.contains(&rp) {
        return Ok(py.None());
    }
    let r = decide(py, &frame, &exc, rp)?;
    let r = r.bind(py);
    if r.is_none() {
        return Ok(py.None());
    }
    LATE_DECISION.with(|d| d.set(Some(r.is_truthy().unwrap_or(true))));
    Ok(rp.into_pyobject(py)?.into_any().unbind())
}

/// Byte offset of the instruction of `frame` that raised `exc`, from its
/// traceback (`None`: not found, or the traceback could not be read).
fn raising_lasti(exc: &Bound<'_, PyAny>, frame: &Bound<'_, PyAny>) -> Option<i64> {
    let mut tb = exc.getattr("__traceback__").ok()?;
    for _ in 0..1_000_000 {
        if tb.is_none() {
            return None;
        }
        if tb.getattr("tb_frame").ok()?.is(frame) {
            return tb.getattr("tb_lasti").ok()?.extract().ok();
        }
        tb = tb.getattr("tb_next").ok()?;
    }
    None
}

/// `__resurrect_unwind__(raised)`: what a stub's terminal code does with what
/// the dispatcher raised: `True`/`False` for the hook's `_Leave` (leave the
/// frame running, respectively not running, exits; its thunk is kept for
/// `__resurrect_value__`), `None` to re-raise it. In Rust rather than Python:
/// it runs where the dispatcher did, possibly at the recursion limit, where
/// pushing a Python frame would fail.
#[pyfunction]
fn unwind(py: Python<'_>, raised: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let leave = hooks().lock().ok().and_then(|h| {
        h.as_ref()
            .and_then(|h| h.leave.as_ref().map(|l| l.clone_ref(py)))
    });
    let Some(leave) = leave else {
        return Ok(py.None());
    };
    if !raised.is_instance(leave.bind(py))? {
        return Ok(py.None());
    }
    let run_exits = raised.getattr("run_exits")?.is_truthy()?;
    let thunk = raised.getattr("thunk")?.unbind();
    THUNK.with(|t| *t.borrow_mut() = Some(thunk));
    Ok(pyo3::types::PyBool::new(py, run_exits)
        .to_owned()
        .into_any()
        .unbind())
}

/// `__resurrect_value__()`: a late stub's waiting decision, or the value a
/// left frame returns (the thunk `__resurrect_unwind__` kept, or the Python
/// side's own).
#[pyfunction]
fn value(py: Python<'_>) -> PyResult<Py<PyAny>> {
    if let Some(b) = LATE_DECISION.with(|d| d.take()) {
        return Ok(pyo3::types::PyBool::new(py, b)
            .to_owned()
            .into_any()
            .unbind());
    }
    if let Some(thunk) = THUNK.with(|t| t.borrow_mut().take()) {
        return Ok(thunk.bind(py).call0()?.unbind());
    }
    let f = hooks()
        .lock()
        .ok()
        .and_then(|h| h.as_ref().map(|h| h.value.clone_ref(py)));
    match f {
        Some(f) => Ok(f.bind(py).call0()?.unbind()),
        None => Ok(py.None()),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = version(m.py())?;
    // Import `types` now, not at the first exception: a program may have
    // replaced `builtins.__import__` by then.
    let _ = traceback_type(m.py());
    m.add_function(wrap_pyfunction!(set_hook, m)?)?;
    m.add_function(wrap_pyfunction!(set_handlers_active, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch, m)?)?;
    m.add_function(wrap_pyfunction!(late, m)?)?;
    m.add_function(wrap_pyfunction!(value, m)?)?;
    m.add_function(wrap_pyfunction!(unwind, m)?)?;
    m.add_function(wrap_pyfunction!(handler_chain, m)?)?;
    Ok(())
}
