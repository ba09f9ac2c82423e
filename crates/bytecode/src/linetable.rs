//! The location table (`co_linetable`, PEP 626/657; `Objects/locations.md`).
//!
//! Entries start with a byte `1CCCCLLL`: code `CCCC`, length `LLL + 1` code units.
//! Varints here are little-endian 6-bit chunks (`0x40` = more follow); signed
//! varints are zig-zag encoded. Entries are kept as written so that encoding
//! reproduces the input byte for byte.

use crate::error::{Error, Result};

/// How one entry encodes its location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocForm {
    /// Codes 0–9: same line; column byte packs start (`code*8 + hi3`) and length (`lo4`).
    Short { code: u8, byte: u8 },
    /// Codes 10–12: line delta `code - 10`, then start and end column bytes.
    OneLine {
        line_delta: u8,
        col: u8,
        end_col: u8,
    },
    /// Code 13: line delta only, no columns.
    NoColumn { line_delta: i64 },
    /// Code 14: everything; columns stored as written (column + 1, 0 = unknown).
    Long {
        line_delta: i64,
        end_line_delta: u64,
        col_plus1: u64,
        end_col_plus1: u64,
    },
    /// Code 15: no location; does not move the current line.
    None,
}

/// One entry: a location for `length` (1..=8) code units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineEntry {
    pub length: u8,
    pub form: LocForm,
}

/// A decoded position of one code unit. Lines are absolute; columns 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub line: Option<i64>,
    pub end_line: Option<i64>,
    pub col: Option<u64>,
    pub end_col: Option<u64>,
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64> {
    let mut val: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*pos).ok_or(Error::BadLineTable(*pos))?;
        if shift > 60 || b & 0x80 != 0 {
            return Err(Error::BadLineTable(*pos));
        }
        *pos += 1;
        val |= ((b & 0x3f) as u64) << shift;
        shift += 6;
        if b & 0x40 == 0 {
            return Ok(val);
        }
    }
}

fn read_svarint(bytes: &[u8], pos: &mut usize) -> Result<i64> {
    let u = read_varint(bytes, pos)?;
    let mag = (u >> 1) as i64;
    Ok(if u & 1 == 1 { -mag } else { mag })
}

fn next_byte(bytes: &[u8], pos: &mut usize) -> Result<u8> {
    let b = *bytes.get(*pos).ok_or(Error::BadLineTable(*pos))?;
    if b & 0x80 != 0 {
        return Err(Error::BadLineTable(*pos));
    }
    *pos += 1;
    Ok(b)
}

/// Decode `co_linetable` into entries.
pub fn decode(bytes: &[u8]) -> Result<Vec<LineEntry>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let first = bytes[pos];
        if first & 0x80 == 0 {
            return Err(Error::BadLineTable(pos));
        }
        pos += 1;
        let code = (first >> 3) & 0x0f;
        let length = (first & 0x07) + 1;
        let form = match code {
            0..=9 => LocForm::Short {
                code,
                byte: next_byte(bytes, &mut pos)?,
            },
            10..=12 => LocForm::OneLine {
                line_delta: code - 10,
                col: next_byte(bytes, &mut pos)?,
                end_col: next_byte(bytes, &mut pos)?,
            },
            13 => LocForm::NoColumn {
                line_delta: read_svarint(bytes, &mut pos)?,
            },
            14 => LocForm::Long {
                line_delta: read_svarint(bytes, &mut pos)?,
                end_line_delta: read_varint(bytes, &mut pos)?,
                col_plus1: read_varint(bytes, &mut pos)?,
                end_col_plus1: read_varint(bytes, &mut pos)?,
            },
            _ => LocForm::None,
        };
        out.push(LineEntry { length, form });
    }
    Ok(out)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 64 {
        out.push(((v & 0x3f) as u8) | 0x40);
        v >>= 6;
    }
    out.push(v as u8);
}

fn write_svarint(out: &mut Vec<u8>, v: i64) {
    let u = if v < 0 {
        (v.unsigned_abs() << 1) | 1
    } else {
        (v as u64) << 1
    };
    write_varint(out, u);
}

/// Encode entries back to bytes.
pub fn encode(entries: &[LineEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 2);
    for e in entries {
        let len = (e.length.clamp(1, 8) - 1) & 7;
        match e.form {
            LocForm::Short { code, byte } => {
                out.push(0x80 | (code << 3) | len);
                out.push(byte);
            }
            LocForm::OneLine {
                line_delta,
                col,
                end_col,
            } => {
                out.push(0x80 | ((10 + line_delta) << 3) | len);
                out.push(col);
                out.push(end_col);
            }
            LocForm::NoColumn { line_delta } => {
                out.push(0x80 | (13 << 3) | len);
                write_svarint(&mut out, line_delta);
            }
            LocForm::Long {
                line_delta,
                end_line_delta,
                col_plus1,
                end_col_plus1,
            } => {
                out.push(0x80 | (14 << 3) | len);
                write_svarint(&mut out, line_delta);
                write_varint(&mut out, end_line_delta);
                write_varint(&mut out, col_plus1);
                write_varint(&mut out, end_col_plus1);
            }
            LocForm::None => out.push(0x80 | (15 << 3) | len),
        }
    }
    out
}

/// The position of every code unit, given `co_firstlineno`.
/// Units not covered by the table get no location.
pub fn positions(entries: &[LineEntry], firstlineno: i64, units: usize) -> Vec<Position> {
    let mut out = Vec::with_capacity(units);
    let mut line = firstlineno;
    for e in entries {
        let pos = match e.form {
            LocForm::Short { code, byte } => {
                let col = code as u64 * 8 + ((byte >> 4) & 7) as u64;
                Position {
                    line: Some(line),
                    end_line: Some(line),
                    col: Some(col),
                    end_col: Some(col + (byte & 15) as u64),
                }
            }
            LocForm::OneLine {
                line_delta,
                col,
                end_col,
            } => {
                line += line_delta as i64;
                Position {
                    line: Some(line),
                    end_line: Some(line),
                    col: Some(col as u64),
                    end_col: Some(end_col as u64),
                }
            }
            LocForm::NoColumn { line_delta } => {
                line = line.saturating_add(line_delta);
                Position {
                    line: Some(line),
                    end_line: Some(line),
                    col: None,
                    end_col: None,
                }
            }
            LocForm::Long {
                line_delta,
                end_line_delta,
                col_plus1,
                end_col_plus1,
            } => {
                line = line.saturating_add(line_delta);
                Position {
                    line: Some(line),
                    end_line: Some(line.saturating_add(end_line_delta as i64)),
                    col: col_plus1.checked_sub(1),
                    end_col: end_col_plus1.checked_sub(1),
                }
            }
            LocForm::None => Position::default(),
        };
        for _ in 0..e.length {
            out.push(pos);
        }
    }
    out.resize(units, Position::default());
    out
}

/// Entries giving `units` code units the line `line`, relative to `prev_line`
/// (the line the table was at before these entries), without columns.
pub fn line_entries(units: u32, line: Option<i64>, prev_line: i64) -> Vec<LineEntry> {
    let mut out = Vec::new();
    let mut left = units;
    let mut first = true;
    while left > 0 {
        let n = left.min(8) as u8;
        let form = match line {
            Some(l) => LocForm::NoColumn {
                line_delta: if first { l - prev_line } else { 0 },
            },
            None => LocForm::None,
        };
        out.push(LineEntry { length: n, form });
        left -= n as u32;
        first = false;
    }
    out
}

/// The line the table is at after all its entries (the base for appended entries).
pub fn final_line(entries: &[LineEntry], firstlineno: i64) -> i64 {
    let mut line = firstlineno;
    for e in entries {
        match e.form {
            LocForm::OneLine { line_delta, .. } => line += line_delta as i64,
            LocForm::NoColumn { line_delta } | LocForm::Long { line_delta, .. } => {
                line = line.saturating_add(line_delta)
            }
            _ => {}
        }
    }
    line
}
