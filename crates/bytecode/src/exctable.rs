//! The exception table (`co_exceptiontable`), identical in format in 3.11–3.13
//! (`Objects/exception_handling_notes.txt`, `Python/assemble.c`).
//!
//! Each entry is four big-endian varints of 6-bit chunks (`0x40` = more follow),
//! the first byte of an entry marked with `0x80`: start, size, target,
//! `(depth << 1) | lasti`.

use crate::error::{Error, Result};

/// One handler range. All positions are in code units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExceptionEntry {
    /// First code unit covered (inclusive).
    pub start: u32,
    /// First code unit not covered (exclusive).
    pub end: u32,
    /// Where the handler starts.
    pub target: u32,
    /// The handler's stack depth: the unwinder pops to this many values.
    pub depth: u32,
    /// Whether the offset of the raising instruction is pushed before the exception.
    pub lasti: bool,
}

impl ExceptionEntry {
    /// The part of an entry that decides what a raise does (not where it applies).
    pub fn handler(&self) -> Handler {
        Handler {
            target: self.target,
            depth: self.depth,
            lasti: self.lasti,
        }
    }
}

/// Target, depth and lasti of an entry: two instructions with equal `Handler`s
/// behave identically when they raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handler {
    pub target: u32,
    pub depth: u32,
    pub lasti: bool,
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u32> {
    let mut val: u32 = 0;
    for _ in 0..6 {
        let b = *bytes.get(*pos).ok_or(Error::BadExceptionTable(*pos))?;
        *pos += 1;
        val = (val << 6) | (b & 0x3f) as u32;
        if b & 0x40 == 0 {
            return Ok(val);
        }
    }
    Err(Error::BadExceptionTable(*pos))
}

/// Decode `co_exceptiontable`.
pub fn decode(bytes: &[u8]) -> Result<Vec<ExceptionEntry>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] & 0x80 == 0 {
            return Err(Error::BadExceptionTable(pos));
        }
        let start = read_varint(bytes, &mut pos)?;
        let size = read_varint(bytes, &mut pos)?;
        let target = read_varint(bytes, &mut pos)?;
        let dl = read_varint(bytes, &mut pos)?;
        out.push(ExceptionEntry {
            start,
            end: start
                .checked_add(size)
                .ok_or(Error::BadExceptionTable(pos))?,
            target,
            depth: dl >> 1,
            lasti: dl & 1 == 1,
        });
    }
    Ok(out)
}

fn write_varint(out: &mut Vec<u8>, value: u32, mut msb: u8) {
    for shift in [24u32, 18, 12, 6] {
        if value >= 1 << shift {
            out.push((((value >> shift) & 0x3f) as u8) | 0x40 | msb);
            msb = 0;
        }
    }
    out.push((value & 0x3f) as u8 | msb);
}

/// Encode entries exactly as CPython's assembler does.
pub fn encode(entries: &[ExceptionEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        write_varint(&mut out, e.start, 0x80);
        write_varint(&mut out, e.end - e.start, 0);
        write_varint(&mut out, e.target, 0);
        write_varint(&mut out, (e.depth << 1) | e.lasti as u32, 0);
    }
    out
}

/// The entry covering code unit `unit`, if any (entries are sorted and disjoint).
pub fn lookup(entries: &[ExceptionEntry], unit: u32) -> Option<&ExceptionEntry> {
    let idx = entries.partition_point(|e| e.start <= unit);
    let e = entries.get(idx.checked_sub(1)?)?;
    (unit < e.end).then_some(e)
}

/// Build a table from one optional handler per code unit, merging runs.
pub fn from_units(units: &[Option<Handler>]) -> Vec<ExceptionEntry> {
    let mut out: Vec<ExceptionEntry> = Vec::new();
    for (i, h) in units.iter().enumerate() {
        let Some(h) = h else { continue };
        let i = i as u32;
        if let Some(last) = out.last_mut() {
            if last.end == i && last.handler() == *h {
                last.end = i + 1;
                continue;
            }
        }
        out.push(ExceptionEntry {
            start: i,
            end: i + 1,
            target: h.target,
            depth: h.depth,
            lasti: h.lasti,
        });
    }
    out
}
