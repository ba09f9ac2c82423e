//! Pure-Rust model of CPython 3.11–3.13 bytecode, as needed by resurrect.
//!
//! Everything here works on plain byte strings (`co_code`, `co_exceptiontable`,
//! `co_linetable`) and never touches the interpreter: the PyO3 layer in
//! `crates/core` converts code objects to [`CodeInput`] and back.
//!
//! The layers, bottom up:
//! * [`opcodes`]: per-version opcode tables generated from each interpreter.
//! * [`instr`], [`exctable`], [`linetable`]: decoders and encoders that reproduce
//!   the interpreter's bytes exactly (round trip checked against the stdlib).
//! * [`effects`]: how each instruction moves the value stack.
//! * [`analysis`]: stack-slot kinds per instruction and the statements
//!   ("resume points") that may be retried, skipped or left.
//! * [`frame_state`]: checks of the frame state a continuation restores.
//! * [`emit`]: the per-statement stubs appended to a code object, and
//!   continuations that re-enter a code object at a statement.

// The analyses walk several per-instruction vectors in step; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub mod analysis;
pub mod effects;
pub mod emit;
pub mod error;
pub mod exctable;
pub mod frame_state;
pub mod fxhash;
pub mod instr;
pub mod linetable;
pub mod opcodes;

pub use analysis::{Analysis, ResumePoint, RpKind, SlotKind};
pub use error::{Error, Result};
pub use exctable::ExceptionEntry;
pub use instr::Instr;
pub use opcodes::{Op, Version};
