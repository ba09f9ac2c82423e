//! Per-version opcode tables. Numbers and cache counts come from each
//! interpreter's `opcode` module via `scripts/gen_opcodes.py`; nothing here is
//! typed by hand except the version switch.

mod generated;

pub use generated::Op;

use crate::error::{Error, Result};

/// One interpreter version's numbering of the opcodes.
pub struct OpcodeTable {
    pub version: (u8, u8),
    /// Opcodes at or above this number take an argument.
    pub have_argument: u8,
    /// The number of `EXTENDED_ARG` (144 in 3.11/3.12, 71 in 3.13).
    pub extended_arg: u8,
    pub ops: [Option<Op>; 256],
    /// Inline `CACHE` code units following each opcode.
    pub caches: [u8; 256],
}

impl OpcodeTable {
    /// The number of `op` in this version, if it exists.
    pub fn number(&self, op: Op) -> Option<u8> {
        self.ops
            .iter()
            .position(|o| *o == Some(op))
            .map(|i| i as u8)
    }
}

/// A supported CPython minor version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V3_11,
    V3_12,
    V3_13,
}

impl Version {
    pub fn new(major: u8, minor: u8) -> Result<Self> {
        match (major, minor) {
            (3, 11) => Ok(Version::V3_11),
            (3, 12) => Ok(Version::V3_12),
            (3, 13) => Ok(Version::V3_13),
            _ => Err(Error::UnsupportedVersion(major, minor)),
        }
    }

    pub fn table(self) -> &'static OpcodeTable {
        match self {
            Version::V3_11 => &generated::V311,
            Version::V3_12 => &generated::V312,
            Version::V3_13 => &generated::V313,
        }
    }

    /// Opcode number of `op`; panics only if an emitter asks for an opcode the
    /// version lacks, which is a bug in the emitter (covered by tests).
    pub(crate) fn num(self, op: Op) -> u8 {
        match self.table().number(op) {
            Some(n) => n,
            None => unreachable!("{} does not exist in {:?}", op.name(), self),
        }
    }

    /// `COMPARE_OP` argument for `==` producing an exact `bool`, as the
    /// compiler writes it (`Python/compile.c`, `compiler_addcompare`): 3.12
    /// shifts the `cmp_op` index (2) by 4 and adds the mask of results that
    /// mean true (8, "equal") which the specialised forms use; 3.13 shifts by
    /// 5 and adds 16 ("convert to bool") to the mask.
    pub fn compare_eq_arg(self) -> u32 {
        match self {
            Version::V3_11 => 2,
            Version::V3_12 => (2 << 4) | 8,
            Version::V3_13 => (2 << 5) | 16 | 8,
        }
    }

    pub fn caches(self, op: Op) -> u8 {
        self.table().caches[self.num(op) as usize]
    }
}
