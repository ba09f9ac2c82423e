//! Rewriting code objects and the registry of what was rewritten.

use resurrect_bytecode::fxhash::FxHashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCode, PyDict, PyTuple};
use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, Restore, StubNames};
use resurrect_bytecode::frame_state::{Layout, LocalKind};
use resurrect_bytecode::{exctable, instr, linetable, Op, RpKind, SlotKind, Version};

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

type Registry = Mutex<FxHashMap<usize, Arc<CodeInfo>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(FxHashMap::default()))
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
        let new = code.call_method("replace", (), Some(&kw))?;
        crate::hidden::keep_hidden_kinds(code, &new);
        Ok(new)
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
    let generator_exit = if a.version != Version::V3_13
        && a.instrs
            .iter()
            .zip(&a.covered)
            .any(|(ins, &c)| c && ins.op == Op::YieldValue)
    {
        Some(name_index(&mut names, py, "GeneratorExit")?)
    } else {
        None
    };
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
            generator_exit,
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
    crate::hidden::keep_hidden_kinds(code, &new_code);
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

/// Names of the locals `code`'s own instructions read without an unbound
/// check (3.12+ `LOAD_FAST`, 3.13 superinstructions; none on 3.11), arguments
/// left out: a skip must not leave one of them unbound in this code.
#[pyfunction]
fn unchecked_reads(code: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let ver = version(code.py())?;
    let instrs = instr::decode(&bytes_attr(code, "co_code")?, ver).map_err(to_py)?;
    let varnames = code.getattr("co_varnames")?.cast_into::<PyTuple>()?;
    let mut out = Vec::new();
    for l in resurrect_bytecode::analysis::unchecked_reads(&instrs, ver, nargs(code)?) {
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

/// Whether `code` is a continuation (made by `continuation` or
/// `call_continuation` from instrumented code): its registered analysis is the
/// original's shifted past the prologue, so its first instruction is not at 0.
#[pyfunction]
fn is_continuation(code: &Bound<'_, PyAny>) -> bool {
    lookup(code).is_some_and(|i| i.analysis.instrs.first().is_some_and(|x| x.offset > 0))
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

/// The `localsplus` layout of `code`: variables (cell arguments included),
/// the other cell variables, then the free variables, as the compiler lays
/// them out (`co_varnames`, `co_cellvars`, `co_freevars`).
fn layout(code: &Bound<'_, PyAny>) -> PyResult<Layout> {
    let names = |attr: &str| -> PyResult<Vec<String>> {
        code.getattr(attr)?
            .cast_into::<PyTuple>()?
            .iter()
            .map(|n| n.extract())
            .collect()
    };
    let varnames = names("co_varnames")?;
    let cellvars = names("co_cellvars")?;
    let freevars = names("co_freevars")?;
    let mut locals: Vec<(String, LocalKind)> = varnames
        .iter()
        .map(|n| {
            let kind = if cellvars.contains(n) {
                LocalKind::Cell
            } else {
                LocalKind::Plain
            };
            (n.clone(), kind)
        })
        .collect();
    for c in &cellvars {
        if !varnames.contains(c) {
            locals.push((c.clone(), LocalKind::Cell));
        }
    }
    for f in freevars {
        locals.push((f, LocalKind::Free));
    }
    Ok(Layout {
        locals,
        nargs: nargs(code)?,
    })
}

/// Check one base slot's value where the interpreter would not: `FOR_ITER`
/// calls the type's `tp_iternext` without looking, `sys.exc_info()` and
/// `POP_EXCEPT` take the handled exception for an exception.
fn check_slot_value(kind: SlotKind, value: &Bound<'_, PyAny>, n: usize) -> PyResult<()> {
    let ok = match kind {
        // SAFETY: `value` is a live object (we hold a reference); `PyIter_Check`
        // only reads its type's `tp_iternext` slot.
        SlotKind::Iter => unsafe { pyo3::ffi::PyIter_Check(value.as_ptr()) != 0 },
        SlotKind::WithExit => value.is_callable(),
        SlotKind::ExcInfo => {
            value.is_none() || value.is_instance_of::<pyo3::exceptions::PyBaseException>()
        }
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let want = match kind {
        SlotKind::Iter => "an iterator",
        SlotKind::WithExit => "a callable (a bound __exit__)",
        _ => "an exception instance or None",
    };
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "base slot {n} ({}) must be {want}, not {}",
        kind.name(),
        value.get_type().name()?
    )))
}

/// Build a continuation of `code` (a plain function's code, instrumented or
/// not) that stores `locals` (`(localsplus index, is_cell, value)`: `is_cell`
/// stores the value into the cell variable's cell; a cell variable given with
/// `is_cell` false must be given its cell object, which replaces the fresh
/// one), pushes `base` (bottom first, as `(kind, value)`), and jumps to the
/// statement starting at byte offset `start`.
///
/// The state is checked against the analysis of `code` first (wrong states
/// would build code that crashes the interpreter): `BytecodeError` for a
/// `start` that is no resume point, base kinds or count other than the
/// statement's, locals out of range or of the wrong kind, locals read unbound;
/// `TypeError` for values of the wrong type.
#[pyfunction]
fn continuation<'py>(
    code: &Bound<'py, PyAny>,
    start: u32,
    locals: Vec<(u32, bool, Bound<'py, PyAny>)>,
    base: Vec<(String, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyAny>> {
    check_continuable(code, start)?;
    let (consts, restores) = state_restores(code, locals, base)?;
    emit_continuation(code, consts, &restores, start / 2, start / 2)
}

/// Refuse generators and coroutines, and odd offsets.
fn check_continuable(code: &Bound<'_, PyAny>, start: u32) -> PyResult<()> {
    code.cast::<PyCode>()?;
    let flags: u32 = code.getattr("co_flags")?.extract()?;
    // CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
    if flags & (0x20 | 0x80 | 0x200) != 0 {
        return Err(crate::BytecodeError::new_err(
            "cannot build a continuation: generators and coroutines cannot be continued",
        ));
    }
    if !start.is_multiple_of(2) {
        return Err(crate::BytecodeError::new_err(format!(
            "cannot build a continuation: byte offset {start} is odd"
        )));
    }
    Ok(())
}

/// The constants (`code`'s, then the restored values) and the restores of a
/// frame state's locals and base slots, with the values checked (see
/// [`continuation`]).
#[allow(clippy::type_complexity)]
fn state_restores<'py>(
    code: &Bound<'py, PyAny>,
    locals: Vec<(u32, bool, Bound<'py, PyAny>)>,
    base: Vec<(String, Bound<'py, PyAny>)>,
) -> PyResult<(Vec<Bound<'py, PyAny>>, Vec<Restore>)> {
    let py = code.py();
    let layout = layout(code)?;
    let mut consts: Vec<Bound<'py, PyAny>> = code
        .getattr("co_consts")?
        .cast_into::<PyTuple>()?
        .iter()
        .collect();
    // `PyCell_Type` is not part of the stable ABI: compare with `types.CellType`.
    let cell_type = py.import("types")?.getattr("CellType")?;
    let mut restores = Vec::new();
    for (local, is_cell, value) in locals {
        let cell_slot = layout
            .locals
            .get(local as usize)
            .is_some_and(|(_, k)| *k == LocalKind::Cell);
        let cell_object = !is_cell && cell_slot;
        if cell_object && !value.get_type().is(&cell_type) {
            let name = &layout.locals[local as usize].0;
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "local `{name}` (index {local}) is a cell variable: give its cell object, \
                 or its value with the cell flag set, not a {}",
                value.get_type().name()?
            )));
        }
        consts.push(value);
        let konst = (consts.len() - 1) as u32;
        restores.push(if is_cell {
            Restore::Cell { local, konst }
        } else if cell_object {
            Restore::CellObject { local, konst }
        } else {
            Restore::Fast { local, konst }
        });
    }
    for (n, (kind, value)) in base.into_iter().enumerate() {
        let k = match kind.as_str() {
            "iter" => SlotKind::Iter,
            "with_exit" => SlotKind::WithExit,
            "exc_info" => SlotKind::ExcInfo,
            other => {
                return Err(crate::BytecodeError::new_err(format!(
                    "cannot restore a stack slot of kind {other}"
                )))
            }
        };
        check_slot_value(k, &value, n)?;
        consts.push(value);
        let konst = (consts.len() - 1) as u32;
        restores.push(match k {
            SlotKind::ExcInfo => Restore::ExcInfo { konst },
            _ => Restore::Push { kind: k, konst },
        });
    }
    Ok((consts, restores))
}

/// Emit a continuation of `code` (prologue `restores`, then a jump to code
/// unit `target` inside the statement starting at unit `statement`) with
/// `consts` as its constants, and register it with the original's analysis
/// shifted past the prologue, so that exceptions in it still find their
/// statements.
fn emit_continuation<'py>(
    code: &Bound<'py, PyAny>,
    consts: Vec<Bound<'py, PyAny>>,
    restores: &[Restore],
    statement: u32,
    target: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    // For instrumented code the registry holds the analysis of the original,
    // whose offsets the instrumented code keeps.
    let info = analyse(code)?;
    let layout = layout(code)?;
    let r = emit::continuation_at(
        &info.analysis,
        &layout,
        &bytes_attr(code, "co_code")?,
        &bytes_attr(code, "co_exceptiontable")?,
        &bytes_attr(code, "co_linetable")?,
        code.getattr("co_stacksize")?.extract()?,
        statement,
        target,
        restores,
    )
    .map_err(to_py)?;
    let kw = PyDict::new(py);
    kw.set_item("co_code", PyBytes::new(py, &r.code))?;
    kw.set_item("co_exceptiontable", PyBytes::new(py, &r.exceptiontable))?;
    kw.set_item("co_linetable", PyBytes::new(py, &r.linetable))?;
    kw.set_item("co_stacksize", r.stacksize)?;
    kw.set_item("co_consts", PyTuple::new(py, &consts)?)?;
    let new_code = code.call_method("replace", (), Some(&kw))?;
    crate::hidden::keep_hidden_kinds(code, &new_code);
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
    Ok(new_code)
}

/// The `ordinal`-th call instruction (`CALL`, `CALL_KW`, `CALL_FUNCTION_EX`)
/// of the statement of resume point `rp`, as `(index of the call, index of
/// the instruction a continuation jumps to)`: 3.11 splits a call over
/// `PRECALL` (which consumes the arguments) and `CALL`, and is entered at the
/// `PRECALL`.
pub fn nth_call(a: &Analysis, rp: u32, ordinal: u32) -> Option<(usize, usize)> {
    let start = a.instr_at_unit(a.rps.get(rp as usize)?.start)?;
    let mut seen = 0;
    for i in start..a.instrs.len() {
        if a.owner[i] != Some(rp) {
            continue;
        }
        if is_call(a.instrs[i].op) {
            if seen == ordinal {
                return Some((i, call_entry(a, i)));
            }
            seen += 1;
        }
    }
    None
}

pub fn is_call(op: resurrect_bytecode::Op) -> bool {
    matches!(
        op,
        resurrect_bytecode::Op::Call
            | resurrect_bytecode::Op::CallKw
            | resurrect_bytecode::Op::CallFunctionEx
    )
}

/// See [`nth_call`].
pub fn call_entry(a: &Analysis, i: usize) -> usize {
    if i > 0
        && a.instrs[i - 1].op == resurrect_bytecode::Op::Precall
        && a.instrs[i].op == resurrect_bytecode::Op::Call
    {
        i - 1
    } else {
        i
    }
}

/// Build a continuation of `code` that re-enters the statement starting at
/// byte offset `start` *at its call number `ordinal`* (counted from the
/// statement's start, see [`nth_call`]), instead of at its start: the
/// prologue stores `locals`, pushes `base` (the statement's base slots, as
/// for [`continuation`]) and then `stack`: the values the statement had
/// computed below that call and the call's own operands (callable, `self` or
/// `NULL`, arguments), bottom first, each `("value", object)` or
/// `("null", None)`. Nothing of the statement before the call runs again.
///
/// Checked as [`continuation`], and refused unless the call exists and the
/// stack depth the analysis gives at it is exactly `len(base) + len(stack)`.
#[pyfunction]
fn call_continuation<'py>(
    code: &Bound<'py, PyAny>,
    start: u32,
    ordinal: u32,
    locals: Vec<(u32, bool, Bound<'py, PyAny>)>,
    base: Vec<(String, Bound<'py, PyAny>)>,
    stack: Vec<(String, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyAny>> {
    check_continuable(code, start)?;
    let info = analyse(code)?;
    let a = &info.analysis;
    let refuse = |why: String| crate::BytecodeError::new_err(why);
    let Some(rp) = a.rps.iter().find(|r| r.start * 2 == start) else {
        return Err(refuse(format!("no statement starts at offset {start}")));
    };
    let Some((_, entry)) = nth_call(a, rp.index, ordinal) else {
        return Err(refuse(format!(
            "the statement at offset {start} has no call number {ordinal}"
        )));
    };
    let depth = a.stacks[entry].as_ref().map(|s| s.len());
    if depth != Some(base.len() + stack.len()) {
        return Err(refuse(format!(
            "the call at offset {} has a stack of {:?} values, not {}",
            a.instrs[entry].offset * 2,
            depth,
            base.len() + stack.len()
        )));
    }
    let (mut consts, mut restores) = state_restores(code, locals, base)?;
    for (kind, value) in stack {
        match kind.as_str() {
            "null" => restores.push(Restore::Null),
            "value" => {
                consts.push(value);
                restores.push(Restore::Value {
                    konst: (consts.len() - 1) as u32,
                });
            }
            other => {
                return Err(refuse(format!(
                    "cannot restore a stack value of kind {other}"
                )))
            }
        }
    }
    emit_continuation(code, consts, &restores, rp.start, a.instrs[entry].offset)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyResumePoint>()?;
    m.add_function(wrap_pyfunction!(instrument, m)?)?;
    m.add_function(wrap_pyfunction!(call_continuation, m)?)?;
    m.add_function(wrap_pyfunction!(is_instrumented, m)?)?;
    m.add_function(wrap_pyfunction!(unchecked_locals, m)?)?;
    m.add_function(wrap_pyfunction!(unchecked_reads, m)?)?;
    m.add_function(wrap_pyfunction!(is_continuation, m)?)?;
    m.add_function(wrap_pyfunction!(stored_locals, m)?)?;
    m.add_function(wrap_pyfunction!(resume_points, m)?)?;
    m.add_function(wrap_pyfunction!(resume_point_at, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(opcode_table, m)?)?;
    m.add_function(wrap_pyfunction!(stack_effect, m)?)?;
    m.add_function(wrap_pyfunction!(continuation, m)?)?;
    Ok(())
}
