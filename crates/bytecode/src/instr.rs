//! Instructions: decoding `co_code` into [`Instr`]s and encoding them back.
//!
//! Offsets are in 2-byte code units throughout. An instruction's `offset` is the
//! position of its first `EXTENDED_ARG` prefix (or of its opcode when it has
//! none): that is where jumps and exception-table ranges point.

use crate::error::{Error, Result};
use crate::opcodes::{Op, Version};

/// One decoded instruction with its prefixes and caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instr {
    /// Code unit of the first prefix (or the opcode).
    pub offset: u32,
    pub op: Op,
    /// The opcode byte as found (version specific).
    pub opcode: u8,
    /// The full argument, `EXTENDED_ARG` bytes folded in.
    pub arg: u32,
    /// Number of `EXTENDED_ARG` prefixes in front of the opcode.
    pub prefixes: u8,
    /// Number of inline cache units after the opcode.
    pub caches: u8,
}

impl Instr {
    /// Code unit of the opcode itself (after the prefixes).
    pub fn op_offset(&self) -> u32 {
        self.offset + self.prefixes as u32
    }
    /// Total size in code units: prefixes, opcode, caches.
    pub fn size(&self) -> u32 {
        self.prefixes as u32 + 1 + self.caches as u32
    }
    /// Code unit just past the instruction and its caches; relative jumps count from here.
    pub fn end(&self) -> u32 {
        self.offset + self.size()
    }
}

/// How an instruction transfers control, per version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JumpKind {
    Forward,
    Backward,
}

/// Whether `op` is a relative jump in `ver`, and in which direction.
pub fn jump_kind(op: Op, ver: Version) -> Option<JumpKind> {
    use Op::*;
    let _ = ver; // every name below exists only in the versions that have it
    match op {
        JumpForward
        | PopJumpForwardIfFalse
        | PopJumpForwardIfTrue
        | PopJumpForwardIfNone
        | PopJumpForwardIfNotNone
        | PopJumpIfFalse
        | PopJumpIfTrue
        | PopJumpIfNone
        | PopJumpIfNotNone
        | JumpIfFalseOrPop
        | JumpIfTrueOrPop
        | ForIter
        | Send => Some(JumpKind::Forward),
        JumpBackward
        | JumpBackwardNoInterrupt
        | PopJumpBackwardIfFalse
        | PopJumpBackwardIfTrue
        | PopJumpBackwardIfNone
        | PopJumpBackwardIfNotNone => Some(JumpKind::Backward),
        _ => None,
    }
}

/// The jump target of `ins` (in code units), if it is a jump. The target is
/// the one `dis` shows; `FOR_ITER`'s exhaustion path lands past it (see
/// [`crate::effects::successors`]).
pub fn jump_target(ins: &Instr, ver: Version) -> Option<i64> {
    match jump_kind(ins.op, ver)? {
        JumpKind::Forward => Some(ins.end() as i64 + ins.arg as i64),
        JumpKind::Backward => Some(ins.end() as i64 - ins.arg as i64),
    }
}

/// Decode `co_code`. Fails (never panics) on unknown opcodes or truncated input.
pub fn decode(code: &[u8], ver: Version) -> Result<Vec<Instr>> {
    if !code.len().is_multiple_of(2) {
        return Err(Error::OddCodeLength(code.len()));
    }
    let table = ver.table();
    let units = code.len() / 2;
    let mut out = Vec::with_capacity(units / 2);
    let mut i = 0usize;
    while i < units {
        let start = i;
        let mut arg: u32 = 0;
        let mut prefixes: u8 = 0;
        loop {
            let opcode = code[2 * i];
            let oparg = code[2 * i + 1] as u32;
            if opcode == table.extended_arg {
                arg = arg.checked_shl(8).unwrap_or(0) | oparg;
                prefixes = prefixes.saturating_add(1);
                i += 1;
                if i >= units {
                    return Err(Error::Truncated {
                        offset: start as u32,
                    });
                }
                continue;
            }
            let op = table.ops[opcode as usize].ok_or(Error::UnknownOpcode {
                opcode,
                offset: i as u32,
            })?;
            arg = (arg.checked_shl(8).unwrap_or(0)) | oparg;
            let caches = table.caches[opcode as usize];
            if i + 1 + caches as usize > units {
                return Err(Error::Truncated {
                    offset: start as u32,
                });
            }
            out.push(Instr {
                offset: start as u32,
                op,
                opcode,
                arg,
                prefixes,
                caches,
            });
            i += 1 + caches as usize;
            break;
        }
    }
    Ok(out)
}

/// Number of `EXTENDED_ARG` prefixes needed for `arg`.
pub fn prefixes_for(arg: u32) -> u8 {
    match arg {
        0..=0xff => 0,
        0x100..=0xffff => 1,
        0x1_0000..=0xff_ffff => 2,
        _ => 3,
    }
}

/// Append one instruction (prefixes, opcode, zeroed caches) to `out`.
/// `prefixes` may exceed the minimum (to reproduce the input exactly).
pub fn encode_one(out: &mut Vec<u8>, ver: Version, opcode: u8, arg: u32, prefixes: u8) {
    let ext = ver.table().extended_arg;
    let caches = ver.table().caches[opcode as usize];
    for k in (1..=prefixes as u32).rev() {
        let shift = 8 * k;
        let byte = if shift >= 32 {
            0
        } else {
            (arg >> shift) & 0xff
        };
        out.push(ext);
        out.push(byte as u8);
    }
    out.push(opcode);
    out.push((arg & 0xff) as u8);
    for _ in 0..caches {
        out.push(0);
        out.push(0);
    }
}

/// Encode instructions back to `co_code` bytes (caches written as zeros, as
/// `co_code` shows them).
pub fn encode(instrs: &[Instr], ver: Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(instrs.len() * 4);
    for ins in instrs {
        encode_one(&mut out, ver, ins.opcode, ins.arg, ins.prefixes);
    }
    out
}

/// Index of the instruction containing code unit `unit` (prefix, opcode or cache).
pub fn index_of_unit(instrs: &[Instr], unit: u32) -> Option<usize> {
    let idx = instrs.partition_point(|i| i.offset <= unit);
    if idx == 0 {
        return None;
    }
    let ins = &instrs[idx - 1];
    (unit < ins.end()).then_some(idx - 1)
}
