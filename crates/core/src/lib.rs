//! `resurrect._core`: the PyO3 skin over `resurrect-bytecode`.
//!
//! It converts code objects to byte strings and back, keeps the registry of
//! instrumented code, reads live frames' value stacks, and provides the three
//! builtins the emitted stubs call (`__resurrect_dispatch__`,
//! `__resurrect_unwind__`, `__resurrect_value__`).

mod dispatch;
mod frames;
mod hidden;
mod instrument;

use pyo3::prelude::*;

pyo3::create_exception!(
    _core,
    BytecodeError,
    pyo3::exceptions::PyValueError,
    "The bytecode of a code object could not be decoded, analysed or rewritten."
);

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("BytecodeError", py.get_type::<BytecodeError>())?;
    instrument::register(m)?;
    frames::register(m)?;
    dispatch::register(m)?;
    Ok(())
}

/// Turn a crate error into the module's Python exception.
pub(crate) fn to_py(e: resurrect_bytecode::Error) -> PyErr {
    BytecodeError::new_err(e.to_string())
}

/// The running interpreter's version.
pub(crate) fn version(py: Python<'_>) -> PyResult<resurrect_bytecode::Version> {
    let vi = py.version_info();
    resurrect_bytecode::Version::new(vi.major, vi.minor).map_err(to_py)
}
