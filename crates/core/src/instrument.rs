//! Rewriting code objects and the registry of what was rewritten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCode, PyDict, PyTuple};
use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, Restore, StubNames};
use resurrect_bytecode::{exctable, instr, linetable, RpKind};

use crate::{to_py, version};

/// What the registry knows about one instrumented (or analysed) code object.
pub struct CodeInfo {
    pub analysis: Analysis,
    /// The code object itself: held so its address is never reused while
    /// the registry maps that address to this entry.
    pub _code: Py<PyAny>,
    pub instrumented: bool,
    /// Resume points whose `try`'s `except` runs first (see `Analysis::except_first`).
    pub late: Vec<u32>,
}

type Registry = Mutex<HashMap<usize, Arc<CodeInfo>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The registry entry of a code object, if it was instrumented or analysed.
pub fn lookup(code: &Bound<'_, PyAny>) -> Option<Arc<CodeInfo>> {
    let reg = registry().lock().ok()?;
    reg.get(&(code.as_ptr() as usize)).cloned()
}

fn bytes_attr(code: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u8>> {
    Ok(code
        .getattr(name)?
        .cast_into::<PyBytes>()?
        .as_bytes()
        .to_vec())
}

/// Analyse `code` (cached by identity).
pub fn analyse(code: &Bound<'_, PyAny>) -> PyResult<Arc<CodeInfo>> {
    if let Some(info) = lookup(code) {
        return Ok(info);
    }
    let py = code.py();
    let analysis = Analysis::new(
        version(py)?,
        &bytes_attr(code, "co_code")?,
        &bytes_attr(code, "co_exceptiontable")?,
        &bytes_attr(code, "co_linetable")?,
        code.getattr("co_firstlineno")?.extract()?,
    )
    .map_err(to_py)?;
    let info = Arc::new(CodeInfo {
        analysis,
        _code: code.clone().unbind(),
        instrumented: false,
        late: Vec::new(),
    });
    if let Ok(mut reg) = registry().lock() {
        reg.insert(code.as_ptr() as usize, info.clone());
    }
    Ok(info)
}

const NAMES: [&str; 4] = [
    "__resurrect_dispatch__",
    "__resurrect_unwind__",
    "__resurrect_value__",
    "__resurrect_late__",
];

fn name_index(names: &mut Vec<Py<PyAny>>, py: Python<'_>, name: &str) -> PyResult<u32> {
    for (i, n) in names.iter().enumerate() {
        if n.bind(py).extract::<&str>().ok() == Some(name) {
            return Ok(i as u32);
        }
    }
    names.push(pyo3::types::PyString::new(py, name).into_any().unbind());
    Ok((names.len() - 1) as u32)
}

/// Give `code` and every code object nested in it resume points. Code that
/// cannot be analysed is returned unchanged (its nested code still rewritten).
#[pyfunction]
pub fn instrument<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    if let Some(info) = lookup(code) {
        if info.instrumented {
            return Ok(code.clone());
        }
    }
    code.cast::<PyCode>()?;
    // Nested code first, so the consts we append to stay after theirs.
    let consts: Vec<Bound<'py, PyAny>> = code
        .getattr("co_consts")?
        .cast_into::<PyTuple>()?
        .iter()
        .collect();
    let mut new_consts: Vec<Bound<'py, PyAny>> = Vec::with_capacity(consts.len());
    let mut nested_changed = false;
    for c in consts {
        if c.cast::<PyCode>().is_ok() {
            let n = instrument(&c)?;
            nested_changed |= !n.is(&c);
            new_consts.push(n);
        } else {
            new_consts.push(c);
        }
    }
    let with_nested = |consts: &[Bound<'py, PyAny>]| -> PyResult<Bound<'py, PyAny>> {
        let kw = PyDict::new(py);
        kw.set_item("co_consts", PyTuple::new(py, consts)?)?;
        code.call_method("replace", (), Some(&kw))
    };
    // A list/set/dict comprehension compiled as its own function (3.11; class
    // bodies) consumes an iterator its caller made: resuming inside it would
    // lose the items already taken. Without resume points, an exception there
    // reaches the statement that runs the comprehension, whose retry starts it
    // afresh — as 3.12+ does for inlined comprehensions.
    let name: String = code.getattr("co_name")?.extract()?;
    if matches!(name.as_str(), "<listcomp>" | "<setcomp>" | "<dictcomp>") {
        return if nested_changed {
            with_nested(&new_consts)
        } else {
            Ok(code.clone())
        };
    }
    let analysis = match analyse(code) {
        Ok(info) => info,
        Err(_) => {
            return if nested_changed {
                with_nested(&new_consts)
            } else {
                Ok(code.clone())
            };
        }
    };
    let a = &analysis.analysis;
    if a.rps.iter().all(|r| r.covered == 0) {
        return if nested_changed {
            with_nested(&new_consts)
        } else {
            Ok(code.clone())
        };
    }
    let mut names: Vec<Py<PyAny>> = code
        .getattr("co_names")?
        .cast_into::<PyTuple>()?
        .iter()
        .map(|n| n.unbind())
        .collect();
    let dispatch = name_index(&mut names, py, NAMES[0])?;
    let unwind = name_index(&mut names, py, NAMES[1])?;
    let value = name_index(&mut names, py, NAMES[2])?;
    let late = name_index(&mut names, py, NAMES[3])?;
    let none_const = new_consts.len() as u32;
    new_consts.push(py.None().into_bound(py));
    let first_rp_const = new_consts.len() as u32;
    for i in 0..a.rps.len() {
        new_consts.push(i.into_pyobject(py)?.into_any());
    }
    let rewritten = emit::instrument(
        a,
        &bytes_attr(code, "co_code")?,
        &bytes_attr(code, "co_linetable")?,
        code.getattr("co_firstlineno")?.extract()?,
        StubNames {
            dispatch,
            unwind,
            value,
            late,
            first_rp_const,
        },
        none_const,
        nargs(code)?,
    )
    .map_err(to_py)?;
    let kw = PyDict::new(py);
    kw.set_item("co_code", PyBytes::new(py, &rewritten.code))?;
    kw.set_item(
        "co_exceptiontable",
        PyBytes::new(py, &rewritten.exceptiontable),
    )?;
    kw.set_item("co_linetable", PyBytes::new(py, &rewritten.linetable))?;
    kw.set_item(
        "co_stacksize",
        rewritten
            .stacksize
            .max(code.getattr("co_stacksize")?.extract()?),
    )?;
    kw.set_item("co_consts", PyTuple::new(py, &new_consts)?)?;
    kw.set_item("co_names", PyTuple::new(py, &names)?)?;
    let new_code = code.call_method("replace", (), Some(&kw))?;
    let info = Arc::new(CodeInfo {
        analysis: analysis.analysis.clone(),
        _code: new_code.clone().unbind(),
        instrumented: true,
        late: analysis
            .analysis
            .except_first()
            .into_iter()
            .map(|(r, _)| r)
            .collect(),
    });
    if let Ok(mut reg) = registry().lock() {
        reg.insert(new_code.as_ptr() as usize, info);
    }
    Ok(new_code)
}

/// Number of argument slots (positional, keyword-only, `*args`, `**kwargs`):
/// they come first in `localsplus` and are bound on entry.
pub fn nargs(code: &Bound<'_, PyAny>) -> PyResult<u32> {
    let argc: u32 = code.getattr("co_argcount")?.extract()?;
    let kwonly: u32 = code.getattr("co_kwonlyargcount")?.extract()?;
    let flags: u32 = code.getattr("co_flags")?.extract()?;
    Ok(argc + kwonly + u32::from(flags & 0x04 != 0) + u32::from(flags & 0x08 != 0))
}

/// Names of the locals a restart must not leave unbound on this version (see
/// `Analysis::unchecked_locals`).
#[pyfunction]
fn unchecked_locals(code: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let info = analyse(code)?;
    let varnames = code.getattr("co_varnames")?.cast_into::<PyTuple>()?;
    let mut out = Vec::new();
    for l in info.analysis.unchecked_locals(nargs(code)?) {
        if let Ok(n) = varnames.get_item(l as usize) {
            out.push(n.extract()?);
        }
    }
    Ok(out)
}

/// Names of the locals resume point `rp` of `code` stores.
#[pyfunction]
fn stored_locals(code: &Bound<'_, PyAny>, rp: u32) -> PyResult<Vec<String>> {
    let info = analyse(code)?;
    let varnames = code.getattr("co_varnames")?.cast_into::<PyTuple>()?;
    let mut out = Vec::new();
    for l in info.analysis.stored_locals(rp) {
        if let Ok(n) = varnames.get_item(l as usize) {
            out.push(n.extract()?);
        }
    }
    Ok(out)
}

/// Whether `code` carries resume points made by [`instrument`].
#[pyfunction]
fn is_instrumented(code: &Bound<'_, PyAny>) -> bool {
    lookup(code).is_some_and(|i| i.instrumented)
}

/// One resume point, as Python sees it.
#[pyclass(name = "ResumePoint", module = "resurrect._core", frozen, get_all)]
pub struct PyResumePoint {
    pub index: u32,
    /// `"statement"` or `"loop"` (a `for` loop fetching its next item).
    pub kind: &'static str,
    /// Byte offset of the statement's first instruction (as `f_lasti`).
    pub start: u32,
    pub line: Option<i64>,
    /// Kinds of the slots below the statement, bottom first.
    pub base: Vec<&'static str>,
    /// Byte offset where "skip" continues, if the statement can be skipped.
    pub skip_to: Option<u32>,
    /// Why "leave" and "rerun" are impossible here (`None` when they are possible).
    pub leave_refusal: Option<&'static str>,
    /// Why the frame cannot hand over to a continuation here (`None` when it can).
    pub handover_refusal: Option<&'static str>,
    /// Instructions routed to this statement's stub.
    pub covered: u32,
}

#[pymethods]
impl PyResumePoint {
    fn __repr__(&self) -> String {
        format!(
            "<ResumePoint {} {} line {:?} at {}>",
            self.index, self.kind, self.line, self.start
        )
    }
}

pub fn rp_to_py(rp: &resurrect_bytecode::ResumePoint) -> PyResumePoint {
    PyResumePoint {
        index: rp.index,
        kind: match rp.kind {
            RpKind::Statement => "statement",
            RpKind::LoopAdvance => "loop",
        },
        start: rp.start * 2,
        line: rp.line,
        base: rp.base.iter().map(|k| k.name()).collect(),
        skip_to: rp.skip_to.map(|u| u * 2),
        leave_refusal: rp.leave_refusal,
        handover_refusal: rp.handover_refusal,
        covered: rp.covered,
    }
}

/// The resume points of a code object (analysing it if needed).
#[pyfunction]
fn resume_points(code: &Bound<'_, PyAny>) -> PyResult<Vec<PyResumePoint>> {
    let info = analyse(code)?;
    Ok(info.analysis.rps.iter().map(rp_to_py).collect())
}

/// The resume point owning the instruction at byte offset `lasti`, if any.
#[pyfunction]
fn resume_point_at(code: &Bound<'_, PyAny>, lasti: i64) -> PyResult<Option<PyResumePoint>> {
    let info = analyse(code)?;
    if lasti < 0 {
        return Ok(None);
    }
    let a = &info.analysis;
    Ok(a.rp_at_unit((lasti / 2) as u32)
        .map(|r| rp_to_py(&a.rps[r as usize])))
}

/// Decode and re-encode `co_code`, `co_exceptiontable` and `co_linetable`;
/// returns the three byte strings (for the round-trip test).
#[pyfunction]
fn roundtrip<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = code.py();
    let ver = version(py)?;
    let c = bytes_attr(code, "co_code")?;
    let e = bytes_attr(code, "co_exceptiontable")?;
    let l = bytes_attr(code, "co_linetable")?;
    let c2 = instr::encode(&instr::decode(&c, ver).map_err(to_py)?, ver);
    let e2 = exctable::encode(&exctable::decode(&e).map_err(to_py)?);
    let l2 = linetable::encode(&linetable::decode(&l).map_err(to_py)?);
    PyTuple::new(
        py,
        [
            PyBytes::new(py, &c2),
            PyBytes::new(py, &e2),
            PyBytes::new(py, &l2),
        ],
    )
}

/// `(opcode number, name, inline caches)` of every opcode of the running
/// version, as the crate's tables have them (checked against `dis` in tests).
#[pyfunction]
fn opcode_table(py: Python<'_>) -> PyResult<Vec<(u8, &'static str, u8)>> {
    let t = version(py)?.table();
    Ok((0..=255u8)
        .filter_map(|n| t.ops[n as usize].map(|op| (n, op.name(), t.caches[n as usize])))
        .collect())
}

/// Net stack effect the analysis assumes for `(opcode, arg, jump)`, for
/// checking against `dis.stack_effect`.
#[pyfunction]
fn stack_effect(py: Python<'_>, opcode: u8, arg: u32, jump: bool) -> PyResult<Option<i64>> {
    let ver = version(py)?;
    let Some(op) = ver.table().ops[opcode as usize] else {
        return Ok(None);
    };
    let ins = resurrect_bytecode::Instr {
        offset: 0,
        op,
        opcode,
        arg,
        prefixes: 0,
        caches: 0,
    };
    let edge = if jump {
        resurrect_bytecode::effects::Edge::Jump
    } else {
        resurrect_bytecode::effects::Edge::Fall
    };
    Ok(resurrect_bytecode::effects::effect(ver, &ins, edge).map(|(c, p)| p as i64 - c as i64))
}

/// Build a continuation of `code` (a plain function's code, instrumented or
/// not) that stores `locals` (`{localsplus index: value}`; cells get
/// `STORE_DEREF`), pushes `base` (bottom first, as `(kind, value)`), and jumps
/// to the statement starting at byte offset `start`.
#[pyfunction]
fn continuation<'py>(
    code: &Bound<'py, PyAny>,
    start: u32,
    locals: Vec<(u32, bool, Bound<'py, PyAny>)>,
    base: Vec<(String, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    let ver = version(py)?;
    let mut consts: Vec<Bound<'py, PyAny>> = code
        .getattr("co_consts")?
        .cast_into::<PyTuple>()?
        .iter()
        .collect();
    let mut restores = Vec::new();
    for (local, is_cell, value) in locals {
        consts.push(value);
        let konst = (consts.len() - 1) as u32;
        restores.push(if is_cell {
            Restore::Cell { local, konst }
        } else {
            Restore::Fast { local, konst }
        });
    }
    for (kind, value) in base {
        consts.push(value);
        let konst = (consts.len() - 1) as u32;
        restores.push(match kind.as_str() {
            "exc_info" => Restore::ExcInfo { konst },
            "iter" | "with_exit" => Restore::Push { konst },
            other => {
                return Err(crate::BytecodeError::new_err(format!(
                    "cannot restore a stack slot of kind {other}"
                )))
            }
        });
    }
    let r = emit::continuation(
        ver,
        &bytes_attr(code, "co_code")?,
        &bytes_attr(code, "co_exceptiontable")?,
        &bytes_attr(code, "co_linetable")?,
        code.getattr("co_stacksize")?.extract()?,
        start / 2,
        &restores,
    )
    .map_err(to_py)?;
    let kw = PyDict::new(py);
    kw.set_item("co_code", PyBytes::new(py, &r.code))?;
    kw.set_item("co_exceptiontable", PyBytes::new(py, &r.exceptiontable))?;
    kw.set_item("co_linetable", PyBytes::new(py, &r.linetable))?;
    kw.set_item("co_stacksize", r.stacksize)?;
    kw.set_item("co_consts", PyTuple::new(py, &consts)?)?;
    let new_code = code.call_method("replace", (), Some(&kw))?;
    // The continuation's stubs dispatch exactly like the original's, offset by
    // the prologue: register it so exceptions in it still find their statements.
    if let Some(info) = lookup(code) {
        if info.instrumented {
            let shift = (r.code.len() - bytes_attr(code, "co_code")?.len()) as u32 / 2;
            let mut a = info.analysis.clone();
            a.shift(shift);
            let new_info = Arc::new(CodeInfo {
                analysis: a,
                _code: new_code.clone().unbind(),
                instrumented: true,
                late: info.late.clone(),
            });
            if let Ok(mut reg) = registry().lock() {
                reg.insert(new_code.as_ptr() as usize, new_info);
            }
        }
    }
    Ok(new_code)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyResumePoint>()?;
    m.add_function(wrap_pyfunction!(instrument, m)?)?;
    m.add_function(wrap_pyfunction!(is_instrumented, m)?)?;
    m.add_function(wrap_pyfunction!(unchecked_locals, m)?)?;
    m.add_function(wrap_pyfunction!(stored_locals, m)?)?;
    m.add_function(wrap_pyfunction!(resume_points, m)?)?;
    m.add_function(wrap_pyfunction!(resume_point_at, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(opcode_table, m)?)?;
    m.add_function(wrap_pyfunction!(stack_effect, m)?)?;
    m.add_function(wrap_pyfunction!(continuation, m)?)?;
    Ok(())
}
