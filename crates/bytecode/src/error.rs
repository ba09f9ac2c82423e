//! Typed errors of the bytecode crate: every decoder and analysis returns these,
//! never panics, whatever bytes it is given.

use thiserror::Error;

/// What went wrong while decoding, analysing or emitting code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("unsupported Python version {0}.{1} (supported: 3.11, 3.12, 3.13)")]
    UnsupportedVersion(u8, u8),
    #[error("co_code has odd length {0}")]
    OddCodeLength(usize),
    #[error("unknown opcode {opcode} at code unit {offset}")]
    UnknownOpcode { opcode: u8, offset: u32 },
    #[error("instruction at code unit {offset} is cut off by the end of the code")]
    Truncated { offset: u32 },
    #[error("jump at code unit {offset} leaves the code (target {target})")]
    BadJump { offset: u32, target: i64 },
    #[error("exception table is malformed at byte {0}")]
    BadExceptionTable(usize),
    #[error("line table is malformed at byte {0}")]
    BadLineTable(usize),
    #[error("stack analysis failed at code unit {offset}: {reason}")]
    Stack { offset: u32, reason: &'static str },
    #[error("value does not fit in an instruction argument: {0}")]
    ArgTooLarge(u64),
    #[error("no resume point {0} in this code")]
    NoSuchResumePoint(u32),
    #[error("cannot lay out the appended code: {0}")]
    Layout(&'static str),
    #[error("cannot build a continuation: {0}")]
    Continuation(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
