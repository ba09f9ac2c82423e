//! The decoders and the analysis never panic, whatever bytes they are given:
//! malformed input is a typed error.

use proptest::prelude::*;
use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, Restore, StubNames};
use resurrect_bytecode::frame_state::{Layout, LocalKind};
use resurrect_bytecode::SlotKind;
use resurrect_bytecode::{exctable, instr, linetable, Version};

const VERSIONS: [Version; 3] = [Version::V3_11, Version::V3_12, Version::V3_13];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for v in VERSIONS {
            let _ = instr::decode(&bytes, v);
        }
        let _ = exctable::decode(&bytes);
        let _ = linetable::decode(&bytes);
    }

    #[test]
    fn analysis_and_emission_never_panic(
        code in proptest::collection::vec(any::<u8>(), 0..96),
        exc in proptest::collection::vec(any::<u8>(), 0..16),
        lines in proptest::collection::vec(any::<u8>(), 0..32),
        first in -5i64..1000,
    ) {
        for v in VERSIONS {
            if let Ok(a) = Analysis::new(v, &code, &exc, &lines, first) {
                let names = StubNames { dispatch: 0, unwind: 1, value: 2, late: 4, first_rp_const: 3, generator_exit: None };
                let _ = emit::instrument(&a, &code, &lines, first, names, 0, 0);
            }
        }
    }

    /// Valid-looking instruction streams (real opcodes, small args) reach the
    /// analysis far more often than random bytes do.
    #[test]
    fn analysis_of_opcode_soup_never_panics(
        ops in proptest::collection::vec((any::<u8>(), 0u8..8), 1..48),
        v in 0usize..3,
        target in 0u32..64,
        picks in proptest::collection::vec((any::<u8>(), 0u32..12), 0..6),
        local_kinds in proptest::collection::vec(any::<u8>(), 0..10),
        nargs in 0u32..4,
    ) {
        let v = VERSIONS[v];
        let t = v.table();
        let valid: Vec<u8> = (0..=255u8).filter(|n| t.ops[*n as usize].is_some()).collect();
        // A `RESUME 0` first, as real code has (continuations need the prologue).
        let resume = (0..=255u8).find(|n| t.ops[*n as usize] == Some(resurrect_bytecode::Op::Resume)).unwrap();
        let mut code = vec![resume, 0];
        for _ in 0..t.caches[code[0] as usize] {
            code.extend([0, 0]);
        }
        for (op, arg) in ops {
            let n = valid[op as usize % valid.len()];
            code.push(n);
            code.push(arg);
            for _ in 0..t.caches[n as usize] {
                code.extend([0, 0]);
            }
        }
        let lines = linetable::encode(&linetable::line_entries((code.len() / 2) as u32, Some(1), 1));
        if let Ok(a) = Analysis::new(v, &code, &[], &lines, 1) {
            let names = StubNames { dispatch: 0, unwind: 1, value: 2, late: 4, first_rp_const: 3, generator_exit: None };
            let _ = emit::instrument(&a, &code, &lines, 1, names, 0, 0);
            // Continuations of any frame state are checked, never a panic.
            let layout = Layout {
                locals: (0..(local_kinds.len() as u32))
                    .map(|l| (format!("v{l}"), [LocalKind::Plain, LocalKind::Cell, LocalKind::Free][local_kinds[l as usize] as usize % 3]))
                    .collect(),
                nargs,
            };
            let restores: Vec<Restore> = picks
                .iter()
                .map(|&(k, n)| match k % 6 {
                    0 => Restore::Fast { local: n, konst: 0 },
                    1 => Restore::Cell { local: n, konst: 0 },
                    2 => Restore::CellObject { local: n, konst: 0 },
                    3 => Restore::Push { kind: SlotKind::Iter, konst: 0 },
                    4 => Restore::Push { kind: SlotKind::WithExit, konst: 0 },
                    _ => Restore::ExcInfo { konst: 0 },
                })
                .collect();
            let _ = emit::continuation(&a, &layout, &code, &[], &lines, 4, target, &restores);
        }
    }
}
