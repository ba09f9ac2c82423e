//! Checks against code objects compiled by the real interpreters
//! (`tests/fixtures/code-3XX.txt`, made by `scripts/gen_fixtures.py`).

use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, Restore, StubNames};
use resurrect_bytecode::frame_state::{Layout, LocalKind};
use resurrect_bytecode::{exctable, instr, linetable, Op, SlotKind, Version};

struct Fixture {
    firstlineno: i64,
    nargs: u32,
    code: Vec<u8>,
    exc: Vec<u8>,
    lines: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fixtures(file: &str) -> Vec<Fixture> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            Fixture {
                firstlineno: p[0].parse().unwrap(),
                nargs: p[1].parse().unwrap(),
                code: hex(p[2]),
                exc: hex(p[3]),
                lines: hex(p[4]),
            }
        })
        .collect()
}

const VERSIONS: [(Version, &str); 3] = [
    (Version::V3_11, "code-311.txt"),
    (Version::V3_12, "code-312.txt"),
    (Version::V3_13, "code-313.txt"),
];

const NAMES: StubNames = StubNames {
    dispatch: 1000,
    unwind: 1001,
    value: 1002,
    late: 1003,
    first_rp_const: 2000,
    generator_exit: Some(1004),
};

#[test]
fn decode_encode_reproduces_every_byte() {
    for (ver, file) in VERSIONS {
        let fx = fixtures(file);
        assert!(fx.len() > 400);
        for f in &fx {
            let ins = instr::decode(&f.code, ver).unwrap();
            assert_eq!(instr::encode(&ins, ver), f.code);
            assert_eq!(exctable::encode(&exctable::decode(&f.exc).unwrap()), f.exc);
            assert_eq!(
                linetable::encode(&linetable::decode(&f.lines).unwrap()),
                f.lines
            );
        }
    }
}

/// The emitted code must itself analyse cleanly: every join of the stubs'
/// control flow with the original agrees on stack depth, and every handler
/// target is an instruction.
#[test]
fn instrumented_code_is_stack_consistent() {
    for (ver, file) in VERSIONS {
        let mut with_stubs = 0;
        let mut transfers = 0;
        for (k, f) in fixtures(file).iter().enumerate() {
            let a = Analysis::new(ver, &f.code, &f.exc, &f.lines, f.firstlineno)
                .unwrap_or_else(|e| panic!("{file}#{k}: {e}"));
            let r = emit::instrument(&a, &f.code, &f.lines, f.firstlineno, NAMES, 999, f.nargs)
                .unwrap_or_else(|e| panic!("{file}#{k}: {e}"));
            if r.stubs > 0 {
                with_stubs += 1;
            }
            // The original instructions stay where they are (3.12+ may only
            // turn LOAD_FAST into LOAD_FAST_CHECK).
            let orig = instr::decode(&f.code, ver).unwrap();
            let new = instr::decode(&r.code, ver).unwrap();
            for (o, n) in orig.iter().zip(&new) {
                assert_eq!(o.offset, n.offset);
                assert_eq!(o.arg, n.arg);
                assert!(o.op == n.op || n.op == resurrect_bytecode::Op::LoadFastCheck);
            }
            let b = Analysis::new(ver, &r.code, &r.exceptiontable, &r.linetable, f.firstlineno)
                .unwrap_or_else(|e| panic!("{file}#{k}: instrumented code: {e}"));
            assert!(b.max_depth <= r.stacksize, "{file}#{k}: stack size");
            let described: u32 = linetable::decode(&r.linetable)
                .unwrap()
                .iter()
                .map(|e| e.length as u32)
                .sum();
            assert_eq!(
                described as usize,
                r.code.len() / 2,
                "{file}#{k}: line table"
            );
            // A `try` whose statements wait on it: its no-match RERAISE goes
            // to a late stub, keeping the saved exception state below.
            let late = a.except_first();
            for (r, reraise) in &late {
                let e = exctable::lookup(&b.entries, a.instrs[*reraise].op_offset()).unwrap();
                assert!(
                    e.target >= (f.code.len() / 2) as u32,
                    "{file}#{k}: late stub"
                );
                assert_eq!(e.depth, a.rps[*r as usize].depth() + 1);
            }
            // Propagating hands the exception to the statement's own handler:
            // the RERAISE the stub's `POP_JUMP_IF_NONE` leads to carries it.
            for (i, ins) in a.instrs.iter().enumerate() {
                if !a.covered[i] {
                    continue;
                }
                let rp = &a.rps[a.owner[i].unwrap() as usize];
                if late.iter().any(|(r, _)| *r == rp.index) {
                    // The program's `except` runs first: the original entry stays.
                    let e = exctable::lookup(&b.entries, ins.op_offset()).map(|e| e.handler());
                    assert_eq!(e, rp.handler, "{file}#{k}: except-first statement");
                    continue;
                }
                let mut stub = exctable::lookup(&b.entries, ins.op_offset())
                    .unwrap()
                    .target;
                // 3.11/3.12 `yield`: a filter re-raising `GeneratorExit` to the
                // statement's own handler, anything else on to the stub.
                let yield_filter = ver != Version::V3_13 && ins.op == Op::YieldValue;
                let f0 = b.index_of_start(stub).unwrap();
                let is_filter = b.instrs[f0].op == Op::LoadGlobal
                    && b.instrs[f0].arg == NAMES.generator_exit.unwrap() << 1;
                assert_eq!(is_filter, yield_filter, "{file}#{k}: yield filter");
                if is_filter {
                    assert_eq!(b.instrs[f0 + 1].op, Op::CheckExcMatch);
                    let pj = &b.instrs[f0 + 2];
                    assert!(matches!(
                        pj.op,
                        Op::PopJumpIfFalse | Op::PopJumpForwardIfFalse
                    ));
                    assert_eq!(b.instrs[f0 + 3].op, Op::Reraise);
                    assert_eq!(b.handler_at(f0 + 3), rp.handler, "{file}#{k}: filter");
                    stub = instr::jump_target(pj, ver).unwrap() as u32;
                }
                let s = b.index_of_start(stub).unwrap();
                let pj = b.instrs[s..]
                    .iter()
                    .find(|x| matches!(x.op, Op::PopJumpIfNone | Op::PopJumpForwardIfNone))
                    .unwrap();
                let pg = b
                    .index_of_start(instr::jump_target(pj, ver).unwrap() as u32)
                    .unwrap();
                assert_eq!(b.instrs[pg + 1].op, Op::Reraise);
                assert_eq!(
                    b.handler_at(pg + 1),
                    rp.handler,
                    "{file}#{k}: hand-over handler"
                );
            }
            // A hand-over's continuation already met this frame's handlers:
            // what it raises leaves the old frame with no handler but the one
            // dropping the base slots (no `__exit__` call, no `RERAISE` into
            // the program's handlers).
            let orig_units = (f.code.len() / 2) as u32;
            let is_cond = |op: Op| {
                matches!(
                    op,
                    Op::PopJumpIfFalse
                        | Op::PopJumpForwardIfFalse
                        | Op::PopJumpIfNone
                        | Op::PopJumpForwardIfNone
                )
            };
            for (t, ins) in b.instrs.iter().enumerate() {
                if ins.offset < orig_units
                    || ins.op != Op::LoadGlobal
                    || ins.arg != (NAMES.unwind << 1 | 1)
                {
                    continue;
                }
                transfers += 1;
                // `…; COPY 1; POP_JUMP_IF_NONE P_G; POP_JUMP_IF_FALSE X_G`
                let pjf = &b.instrs[t..]
                    .iter()
                    .filter(|x| is_cond(x.op))
                    .nth(1)
                    .unwrap();
                assert!(matches!(
                    pjf.op,
                    Op::PopJumpIfFalse | Op::PopJumpForwardIfFalse
                ));
                let x = b
                    .index_of_start(instr::jump_target(pjf, ver).unwrap() as u32)
                    .unwrap();
                let depth = b.stacks[x].as_ref().unwrap().len() as u32 - 1;
                assert_eq!(b.instrs[x].op, Op::PopTop);
                assert_eq!(b.instrs[x + 1].op, Op::LoadGlobal);
                assert_eq!(b.instrs[x + 1].arg, NAMES.value << 1 | 1);
                let calls: Vec<usize> = (x + 2..x + 4)
                    .filter(|&c| matches!(b.instrs[c].op, Op::Precall | Op::Call))
                    .collect();
                assert_eq!(calls.len(), if ver == Version::V3_11 { 2 } else { 1 });
                let h = b
                    .handler_at(calls[0])
                    .unwrap_or_else(|| panic!("{file}#{k}: hand-over handler"));
                for &c in &calls {
                    assert_eq!(b.handler_at(c), Some(h), "{file}#{k}: hand-over call");
                }
                assert_eq!(h.depth, depth, "{file}#{k}: hand-over keeps the base");
                let mut i = b.index_of_start(h.target).unwrap();
                let mut dropped = 0;
                while b.instrs[i].op != Op::Reraise {
                    match b.instrs[i].op {
                        Op::Swap => {}
                        Op::PopTop | Op::PopExcept => dropped += 1,
                        op => panic!("{file}#{k}: {op:?} after a hand-over raised"),
                    }
                    assert_eq!(b.handler_at(i), None, "{file}#{k}: hand-over drop");
                    i += 1;
                }
                assert_eq!(b.handler_at(i), None, "{file}#{k}: hand-over re-raise");
                assert_eq!(dropped, depth, "{file}#{k}: hand-over drops the base");
            }
            let entries = exctable::decode(&r.exceptiontable).unwrap();
            for w in entries.windows(2) {
                assert!(w[0].end <= w[1].start, "{file}#{k}: overlapping entries");
            }
            // Positions of the original instructions are unchanged.
            let before = linetable::positions(
                &linetable::decode(&f.lines).unwrap(),
                f.firstlineno,
                f.code.len() / 2,
            );
            let after = linetable::positions(
                &linetable::decode(&r.linetable).unwrap(),
                f.firstlineno,
                r.code.len() / 2,
            );
            assert_eq!(before[..], after[..before.len()], "{file}#{k}: positions");
        }
        assert!(
            with_stubs > 300,
            "{file}: only {with_stubs} code objects got stubs"
        );
        assert!(transfers > 300, "{file}: only {transfers} hand-over paths");
    }
}

#[test]
fn resume_points_have_known_slots_and_consistent_targets() {
    for (ver, file) in VERSIONS {
        for f in fixtures(file) {
            let a = Analysis::new(ver, &f.code, &f.exc, &f.lines, f.firstlineno).unwrap();
            for rp in &a.rps {
                assert!(rp.base.iter().all(|k| *k != SlotKind::Other));
                let start = a.index_of_start(rp.start).expect("start is an instruction");
                assert_eq!(a.stacks[start].as_ref().unwrap(), &rp.base);
                if let Some(t) = rp.skip_to {
                    let ti = a.index_of_start(t).expect("skip target is an instruction");
                    assert_eq!(
                        a.stacks[ti].as_ref().unwrap(),
                        &rp.base,
                        "skip keeps the base"
                    );
                }
            }
            for (i, c) in a.covered.iter().enumerate() {
                if *c {
                    let rp = &a.rps[a.owner[i].unwrap() as usize];
                    let stack = a.stacks[i].as_ref().unwrap();
                    assert!(stack.len() >= rp.base.len());
                    assert_eq!(&stack[..rp.base.len()], &rp.base[..]);
                }
            }
        }
    }
}

/// Locals touched by the code, as plain locals (fixtures carry no names).
fn plain_layout(a: &Analysis, nargs: u32) -> Layout {
    let mut n = nargs;
    for i in &a.instrs {
        let top = match i.op {
            Op::LoadFastLoadFast | Op::StoreFastLoadFast | Op::StoreFastStoreFast => {
                (i.arg >> 4).max(i.arg & 15)
            }
            Op::LoadFast
            | Op::LoadFastCheck
            | Op::LoadFastAndClear
            | Op::StoreFast
            | Op::DeleteFast
            | Op::MakeCell => i.arg,
            _ => continue,
        };
        n = n.max(top + 1);
    }
    Layout {
        locals: (0..n)
            .map(|l| (format!("v{l}"), LocalKind::Plain))
            .collect(),
        nargs,
    }
}

/// Restores for every slot of `base`, or `None` when a continuation cannot
/// restore one of them.
fn push_restores(base: &[SlotKind]) -> Option<Vec<Restore>> {
    base.iter()
        .map(|k| match k {
            SlotKind::Iter | SlotKind::WithExit => Some(Restore::Push { kind: *k, konst: 0 }),
            SlotKind::ExcInfo => Some(Restore::ExcInfo { konst: 0 }),
            _ => None,
        })
        .collect()
}

/// Continuations of plain functions at every statement whose base slots a
/// continuation can restore analyse cleanly; wrong states are refused.
#[test]
fn continuations_are_stack_consistent() {
    for (ver, file) in VERSIONS {
        let mut built = 0;
        let mut refused = 0;
        for f in fixtures(file) {
            let a = Analysis::new(ver, &f.code, &f.exc, &f.lines, f.firstlineno).unwrap();
            if a.instrs
                .iter()
                .any(|i| i.op == resurrect_bytecode::Op::ReturnGenerator)
            {
                continue;
            }
            let layout = plain_layout(&a, f.nargs);
            let locals: Vec<Restore> = (0..layout.locals.len() as u32)
                .map(|local| Restore::Fast { local, konst: 0 })
                .collect();
            let starts: Vec<u32> = a
                .rps
                .iter()
                .flat_map(|r| [Some(r.start), r.skip_to])
                .flatten()
                .collect();
            for rp in a.rps.iter().take(8) {
                let Some(pushes) = push_restores(&rp.base) else {
                    continue;
                };
                let mut restores = locals.clone();
                restores.extend(pushes.iter().copied());
                let build = |target: u32, restores: &[Restore]| {
                    emit::continuation(&a, &layout, &f.code, &f.exc, &f.lines, 10, target, restores)
                };
                let r = build(rp.start, &restores).unwrap();
                let b = Analysis::new(ver, &r.code, &r.exceptiontable, &r.linetable, f.firstlineno)
                    .unwrap();
                // The jump lands on the statement with exactly its base slots.
                let shift = (r.code.len() - f.code.len()) as u32 / 2;
                let i = b.index_of_start(rp.start + shift).unwrap();
                assert_eq!(b.stacks[i].as_ref().unwrap().len(), rp.base.len());
                built += 1;
                // One slot fewer, one slot more, or the next instruction.
                if !rp.base.is_empty() {
                    assert!(build(rp.start, &restores[..restores.len() - 1]).is_err());
                }
                let mut more = restores.clone();
                more.push(Restore::Push {
                    kind: SlotKind::Iter,
                    konst: 0,
                });
                assert!(build(rp.start, &more).is_err());
                let next = a.index_of_start(rp.start).unwrap() + 1;
                if let Some(n) = a.instrs.get(next) {
                    if !starts.contains(&n.offset) {
                        assert!(build(n.offset, &restores).is_err());
                        refused += 1;
                    }
                }
                // A local index past the code's locals.
                let mut far = restores.clone();
                far.push(Restore::Fast {
                    local: layout.locals.len() as u32,
                    konst: 0,
                });
                assert!(build(rp.start, &far).is_err());
            }
        }
        assert!(refused > 100, "{file}: {refused}");
        assert!(built > 500, "{file}: {built}");
    }
}
