//! Code emission: per-statement stubs appended after the original code, and
//! continuations prepended before it.
//!
//! Stubs (one per resume point with covered instructions), entered with the
//! stack `[base…, exc]` from the exception table:
//!
//! ```text
//! stub_S:  LOAD_GLOBAL  NULL + __resurrect_dispatch__
//!          COPY 3                      # exc
//!          LOAD_CONST   S
//!          [PRECALL 2] CALL 2          # -> None | True | False   (raises: T_G)
//!          COPY 1; POP_JUMP_IF_NONE P_G          # propagate
//!          POP_JUMP_IF_FALSE skip_S              # skip (if S can be skipped)
//!          POP_TOP; JUMP_BACKWARD_NO_INTERRUPT start_S        # retry
//! skip_S:  POP_TOP; JUMP_BACKWARD_NO_INTERRUPT skip_to_S
//! ```
//!
//! Shared per group (base kinds, original handler):
//!
//! ```text
//! P_G:  POP_TOP; RERAISE 0          # the RERAISE carries the original handler
//! T_G:  (the dispatcher raised: leave, rerun, hand-over, or a new exception)
//!       LOAD_GLOBAL NULL + __resurrect_unwind__; COPY 3; CALL 1  # -> None | True | False
//!       COPY 1; POP_JUMP_IF_NONE P_G                 # re-raise what the dispatcher raised
//!       POP_JUMP_IF_FALSE X_G
//!       POP_TOP; <unwind base: POP_TOP / __exit__(None,None,None) / POP_EXCEPT>
//!       LOAD_GLOBAL NULL + __resurrect_value__; CALL 0; RETURN_VALUE
//! X_G:  POP_TOP; LOAD_GLOBAL NULL + __resurrect_value__; CALL 0   # raises: XR_G
//!       <drop base under the value without running exits>; RETURN_VALUE
//! XR_G: (the continuation raised) <drop base the same way>; RERAISE 0  # no handler
//! ```
//!
//! A hand-over's continuation ran the frame's handlers itself on what it
//! raises, so that exception leaves the old frame without meeting its `except`
//! clauses, `finally`s or `__exit__`s again.

use crate::fxhash::FxHashMap as HashMap;

use crate::analysis::{Analysis, ResumePoint, SlotKind};
use crate::effects::can_raise;
use crate::error::{Error, Result};
use crate::exctable::{self, Handler};
use crate::frame_state::{self, Layout};
use crate::instr::{self, prefixes_for};
use crate::linetable;
use crate::opcodes::{Op, Version};

/// Indices (in `co_names` / `co_consts`) the emitted code refers to.
#[derive(Clone, Copy, Debug)]
pub struct StubNames {
    /// `co_names` index of `__resurrect_dispatch__`.
    pub dispatch: u32,
    /// `co_names` index of `__resurrect_unwind__`.
    pub unwind: u32,
    /// `co_names` index of `__resurrect_value__`.
    pub value: u32,
    /// `co_names` index of `__resurrect_late__`.
    pub late: u32,
    /// `co_consts` index holding the integer 0; resume point `i` loads `first_rp_const + i`.
    pub first_rp_const: u32,
    /// `co_names` index of `GeneratorExit`: given, each covered `YIELD_VALUE`
    /// of 3.11/3.12 code gets a filter sending `GeneratorExit` straight on
    /// (see `instrument`).
    pub generator_exit: Option<u32>,
}

/// The rewritten parts of a code object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    pub code: Vec<u8>,
    pub exceptiontable: Vec<u8>,
    pub linetable: Vec<u8>,
    pub stacksize: u32,
    /// Resume points that received a stub.
    pub stubs: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Label {
    Stub(u32),
    /// After a stub's dispatcher call: where the decision `[…, exc, r]` is acted on.
    Post(u32),
    Skip(u32),
    /// The retry tail of a stub (`POP_TOP; JUMP start`), shared as the skip of the statement before.
    Retry(u32),
    Propagate(u32),
    Terminal(u32),
    Transfer(u32),
    /// The continuation of a hand-over raised: drop the base, leave the frame.
    TransferRaised(u32),
    /// The late stub of a `try`/`except` (by index of its no-match `RERAISE`).
    Late(u32),
    /// The `GeneratorExit` filter of a `YIELD_VALUE` (by instruction index).
    YieldFilter(u32),
    LatePropagate(u32),
    LateRaised(u32),
    LateLeaf(u32),
}

#[derive(Clone, Copy, Debug)]
enum Arg {
    Imm(u32),
    /// A forward jump to a label in the appended code.
    To(Label),
    /// A backward jump to a label in the appended code.
    BackTo(Label),
    /// A jump to an absolute code unit of the original code.
    Back(u32),
}

/// Where an emitted instruction's exceptions go: a fixed handler, or a label
/// of the appended code (resolved after layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandlerRef {
    Fixed(Handler),
    At { label: Label, depth: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Emit {
    op: Op,
    arg: Arg,
    label: Option<Label>,
    handler: Option<HandlerRef>,
    line: Option<i64>,
}

/// A sequence of symbolic instructions being appended.
struct Asm {
    ver: Version,
    out: Vec<Emit>,
    handler: Option<HandlerRef>,
    line: Option<i64>,
    pending_label: Option<Label>,
}

impl Asm {
    fn new(ver: Version) -> Self {
        Asm {
            ver,
            out: Vec::new(),
            handler: None,
            line: None,
            pending_label: None,
        }
    }
    fn label(&mut self, l: Label) {
        self.pending_label = Some(l);
    }
    fn set_handler(&mut self, h: Option<Handler>) {
        self.handler = h.map(HandlerRef::Fixed);
    }
    /// A call whose own exceptions go to `h` (the arguments are pushed already).
    /// 3.11's `PRECALL` carries `h` too: its specialised forms make the whole
    /// call (skipping the `CALL`, whose units the lookup then uses), so
    /// neither unit may lead elsewhere.
    fn call_with_handler(&mut self, nargs: u32, h: Option<HandlerRef>) {
        let saved = self.handler;
        self.handler = h;
        if self.ver == Version::V3_11 {
            self.imm(Op::Precall, nargs);
        }
        self.imm(Op::Call, nargs);
        self.handler = saved;
    }
    fn pop_jump_if_true(&mut self, to: Label) {
        let op = if self.ver == Version::V3_11 {
            Op::PopJumpForwardIfTrue
        } else {
            Op::PopJumpIfTrue
        };
        self.op(op, Arg::To(to));
    }
    fn op(&mut self, op: Op, arg: Arg) {
        let label = self.pending_label.take();
        self.out.push(Emit {
            op,
            arg,
            label,
            handler: self.handler,
            line: self.line,
        });
    }
    fn imm(&mut self, op: Op, a: u32) {
        self.op(op, Arg::Imm(a));
    }
    fn call(&mut self, nargs: u32) {
        if self.ver == Version::V3_11 {
            self.imm(Op::Precall, nargs);
        }
        self.imm(Op::Call, nargs);
    }
    fn pop_jump_if_none(&mut self, to: Label) {
        let op = if self.ver == Version::V3_11 {
            Op::PopJumpForwardIfNone
        } else {
            Op::PopJumpIfNone
        };
        self.op(op, Arg::To(to));
    }
    fn pop_jump_if_false(&mut self, to: Label) {
        let op = if self.ver == Version::V3_11 {
            Op::PopJumpForwardIfFalse
        } else {
            Op::PopJumpIfFalse
        };
        self.op(op, Arg::To(to));
    }
    fn load_global_null(&mut self, name: u32) {
        self.imm(Op::LoadGlobal, (name << 1) | 1);
    }
}

/// Emit the unwinding of `base` (top first) as `return` does: `POP_TOP` an
/// iterator, `__exit__(None, None, None)`, `POP_EXCEPT`; or, with
/// `run_exits == false` (a hand-over), drop the slots without running exits.
/// With `under_value`, a value sits on top and each slot is first brought up
/// with `SWAP 2`. While slot `k` is removed the handler in force is the first of
/// `chain` outside it (depth ≤ k), so an `__exit__` that raises is not handled by
/// its own `with` again.
fn unwind(
    asm: &mut Asm,
    base: &[SlotKind],
    chain: &[Handler],
    none_const: u32,
    run_exits: bool,
    under_value: bool,
) {
    for (k, kind) in base.iter().enumerate().rev() {
        asm.set_handler(chain.iter().copied().find(|h| h.depth as usize <= k));
        if under_value {
            asm.imm(Op::Swap, 2);
        }
        match kind {
            SlotKind::WithExit if run_exits => {
                for _ in 0..3 {
                    asm.imm(Op::LoadConst, none_const);
                }
                asm.call(2);
                asm.imm(Op::PopTop, 0);
            }
            SlotKind::ExcInfo => asm.imm(Op::PopExcept, 0),
            _ => asm.imm(Op::PopTop, 0),
        }
    }
}

/// The handlers an exception meets starting with `h`, innermost first.
fn chain_of(a: &Analysis, h: Option<Handler>) -> Vec<Handler> {
    let mut out = Vec::new();
    let mut cur = h;
    while let Some(hd) = cur {
        if out.len() > 64 {
            break;
        }
        out.push(hd);
        cur = a.index_of_start(hd.target).and_then(|t| a.handler_at(t));
    }
    out
}

/// Lay out symbolic instructions starting at code unit `base_unit`, resolving
/// labels and choosing `EXTENDED_ARG` prefixes until sizes are stable.
fn layout(ver: Version, items: &[Emit], base_unit: u32) -> Result<(Vec<u8>, Vec<u32>)> {
    let mut prefixes: Vec<u8> = items
        .iter()
        .map(|e| match e.arg {
            Arg::Imm(a) => prefixes_for(a),
            _ => 0,
        })
        .collect();
    // Labels resolve to item indices once; each round only recomputes offsets.
    let mut label_item: HashMap<Label, usize> = HashMap::default();
    for (k, e) in items.iter().enumerate() {
        if let Some(l) = e.label {
            label_item.insert(l, k);
        }
    }
    let target_item = |l: &Label| -> Result<usize> {
        label_item
            .get(l)
            .copied()
            .ok_or(Error::Layout("missing label"))
    };
    let mut targets: Vec<usize> = Vec::with_capacity(items.len());
    for e in items {
        targets.push(match &e.arg {
            Arg::To(l) | Arg::BackTo(l) => target_item(l)?,
            _ => usize::MAX,
        });
    }
    let sizes: Vec<u32> = items.iter().map(|e| 1 + ver.caches(e.op) as u32).collect();
    let mut offsets = Vec::with_capacity(items.len());
    let mut args = Vec::with_capacity(items.len());
    for _round in 0..16 {
        offsets.clear();
        let mut at = base_unit;
        for (size, p) in sizes.iter().zip(&prefixes) {
            offsets.push(at);
            at += *p as u32 + size;
        }
        args.clear();
        let mut stable = true;
        for (k, e) in items.iter().enumerate() {
            let end = offsets[k] + prefixes[k] as u32 + sizes[k];
            let a: u32 = match e.arg {
                Arg::Imm(a) => a,
                Arg::To(_) => {
                    let t = offsets[targets[k]];
                    t.checked_sub(end)
                        .ok_or(Error::Layout("a conditional jump would go backward"))?
                }
                Arg::BackTo(_) => {
                    let t = offsets[targets[k]];
                    end.checked_sub(t)
                        .ok_or(Error::Layout("a backward jump would go forward"))?
                }
                Arg::Back(t) => end
                    .checked_sub(t)
                    .ok_or(Error::Layout("a jump back would go forward"))?,
            };
            let need = prefixes_for(a);
            if need > prefixes[k] {
                prefixes[k] = need;
                stable = false;
            }
            args.push(a);
        }
        if stable {
            let mut code = Vec::with_capacity(2 * (at - base_unit) as usize);
            for ((e, a), p) in items.iter().zip(&args).zip(&prefixes) {
                instr::encode_one(&mut code, ver, ver.num(e.op), *a, *p);
            }
            return Ok((code, offsets));
        }
    }
    Err(Error::Layout("layout does not converge"))
}

/// Append stubs for every resume point with covered instructions.
///
/// `none_const` is a `co_consts` index holding `None` (for `__exit__` calls).
/// `_nargs` (the argument slots) is not needed since the original `LOAD_FAST`s
/// stay as they are; kept so callers need not change.
pub fn instrument(
    a: &Analysis,
    original_code: &[u8],
    original_linetable: &[u8],
    firstlineno: i64,
    names: StubNames,
    none_const: u32,
    _nargs: u32,
) -> Result<Rewritten> {
    let ver = a.version;
    let mut asm = Asm::new(ver);
    let stubbed: Vec<&ResumePoint> = a.rps.iter().filter(|r| r.covered > 0).collect();
    // Statements directly in a `try` body: the program's `except` runs first.
    let late: HashMap<u32, usize> = a.except_first().into_iter().collect();
    // Groups: same base kinds and same original handler share the terminal
    // code. A group has T_G when a hand-over is possible (base slots it can
    // drop), and its leave/rerun part when leaving is (no `finally` around).
    let mut groups: Vec<(Vec<SlotKind>, Option<Handler>, bool, bool)> = Vec::new();
    let mut group_of: HashMap<u32, u32> = HashMap::default();
    for rp in &stubbed {
        let key = (
            rp.base.clone(),
            rp.handler,
            rp.leave_refusal.is_none(),
            rp.handover_refusal.is_none(),
        );
        let g = match groups.iter().position(|g| *g == key) {
            Some(g) => g,
            None => {
                groups.push(key);
                groups.len() - 1
            }
        };
        group_of.insert(rp.index, g as u32);
    }
    // 3.11 and 3.12 close a suspended generator by throwing `GeneratorExit` in
    // at its `yield` (3.13 finishes it without running any code when no `try`
    // is around the `yield`): every generator abandoned early (`any(...)`,
    // `zip`, `next(genexp)`) would run its stub and call the dispatcher only
    // to be told to propagate. A covered `yield` goes to a filter instead that
    // re-raises `GeneratorExit` to the original handler and sends anything
    // else thrown in on to the statement's stub. Filters come first: their
    // jumps to the stubs are forward.
    let mut yield_filter: HashMap<usize, u32> = HashMap::default();
    if let (Some(ge), true) = (names.generator_exit, ver != Version::V3_13) {
        for (i, ins) in a.instrs.iter().enumerate() {
            if ins.op != Op::YieldValue || !a.covered[i] {
                continue;
            }
            let Some(r) = a.owner[i] else { continue };
            if late.contains_key(&r) {
                continue;
            }
            let rp = &a.rps[r as usize];
            asm.set_handler(rp.handler);
            asm.line = rp.line;
            asm.label(Label::YieldFilter(i as u32));
            asm.imm(Op::LoadGlobal, ge << 1);
            asm.imm(Op::CheckExcMatch, 0);
            asm.pop_jump_if_false(Label::Stub(r));
            asm.imm(Op::Reraise, 0);
            yield_filter.insert(i, r);
        }
    }
    for (k, rp) in stubbed.iter().enumerate() {
        let g = group_of[&rp.index];
        let terminal = rp.handover_refusal.is_none();
        asm.set_handler(rp.handler);
        asm.line = rp.line;
        if !late.contains_key(&rp.index) {
            asm.label(Label::Stub(rp.index));
            asm.load_global_null(names.dispatch);
            asm.imm(Op::Copy, 3);
            asm.imm(Op::LoadConst, names.first_rp_const + rp.index);
            if ver == Version::V3_11 {
                asm.imm(Op::Precall, 2);
            }
            // A dispatcher that raises lands in T_G (leave, rerun, hand-over).
            if terminal {
                asm.handler = Some(HandlerRef::At {
                    label: Label::Terminal(g),
                    depth: rp.depth(),
                });
            }
            asm.imm(Op::Call, 2);
            asm.set_handler(rp.handler);
            asm.imm(Op::Copy, 1);
            asm.pop_jump_if_none(Label::Propagate(g));
        }
        // Late statements enter here from their `try`'s late stub, with a
        // decision that is never "propagate".
        asm.label(Label::Post(rp.index));
        // Skipping to where the next stub retries shares that stub's tail.
        let next = stubbed.get(k + 1);
        let share = match (rp.skip_to, next) {
            (Some(t), Some(n)) if n.start == t && n.base == rp.base => Some(n.index),
            _ => None,
        };
        match (rp.skip_to, share) {
            (Some(_), Some(n)) => asm.pop_jump_if_false(Label::Retry(n)),
            (Some(_), None) => asm.pop_jump_if_false(Label::Skip(rp.index)),
            (None, _) => asm.imm(Op::PopTop, 0),
        }
        asm.label(Label::Retry(rp.index));
        asm.imm(Op::PopTop, 0);
        asm.op(Op::JumpBackwardNoInterrupt, Arg::Back(rp.start));
        if let (Some(t), None) = (rp.skip_to, share) {
            asm.label(Label::Skip(rp.index));
            asm.imm(Op::PopTop, 0);
            asm.op(Op::JumpBackwardNoInterrupt, Arg::Back(t));
        }
    }
    // Late stubs, one per `try` whose no-match RERAISE some statement waits on:
    // entered with `[base…, exc_info, exc]` when no clause matched.
    let mut by_reraise: Vec<(usize, Vec<u32>)> = Vec::new();
    for rp in &stubbed {
        if let Some(&r) = late.get(&rp.index) {
            match by_reraise.iter_mut().find(|(x, _)| *x == r) {
                Some((_, v)) => v.push(rp.index),
                None => by_reraise.push((r, vec![rp.index])),
            }
        }
    }
    for (r, rps) in &by_reraise {
        let id = *r as u32;
        let first = &a.rps[rps[0] as usize];
        let g = group_of[&first.index];
        let terminal = first.handover_refusal.is_none();
        let d = first.depth();
        // The no-match RERAISE's own handler (the except-cleanup) and the one
        // after it (outside the `try`).
        let cleanup = a.handler_at(*r);
        let outer = cleanup
            .and_then(|c| a.index_of_start(c.target))
            .and_then(|t| a.handler_at(t));
        asm.line = None;
        asm.set_handler(cleanup);
        asm.label(Label::Late(id));
        asm.load_global_null(names.late);
        asm.imm(Op::Copy, 3);
        asm.call_with_handler(
            1,
            Some(HandlerRef::At {
                label: Label::LateRaised(id),
                depth: d + 1,
            }),
        );
        asm.imm(Op::Copy, 1);
        asm.pop_jump_if_none(Label::LatePropagate(id));
        // [base, exc_info, exc, S] -> [base, exc, S] with the exception state restored.
        asm.imm(Op::Swap, 3);
        asm.imm(Op::PopExcept, 0);
        asm.imm(Op::Swap, 2);
        asm.set_handler(first.handler);
        for s in rps {
            asm.imm(Op::Copy, 1);
            asm.imm(Op::LoadConst, names.first_rp_const + s);
            asm.imm(Op::CompareOp, ver.compare_eq_arg());
            asm.pop_jump_if_true(Label::LateLeaf(*s));
        }
        // Not one of ours (cannot happen): propagate past this `try`, never
        // back into its clauses (which would ask again).
        asm.set_handler(outer);
        asm.imm(Op::PopTop, 0);
        asm.imm(Op::Reraise, 0);
        for s in rps {
            asm.label(Label::LateLeaf(*s));
            asm.imm(Op::PopTop, 0);
            asm.load_global_null(names.value);
            asm.call(0);
            asm.op(Op::JumpBackwardNoInterrupt, Arg::BackTo(Label::Post(*s)));
        }
        asm.set_handler(cleanup);
        asm.label(Label::LatePropagate(id));
        asm.imm(Op::PopTop, 0);
        asm.imm(Op::Reraise, 0);
        // The late dispatcher raised (leave, rerun, a new exception): leave the
        // `except` state, then as for any statement of the group.
        asm.label(Label::LateRaised(id));
        asm.imm(Op::Swap, 2);
        asm.imm(Op::PopExcept, 0);
        if terminal {
            asm.op(Op::JumpForward, Arg::To(Label::Terminal(g)));
        } else {
            asm.set_handler(outer);
            asm.imm(Op::Reraise, 0);
        }
    }
    for (g, (base, handler, leave_ok, handover_ok)) in groups.iter().enumerate() {
        let g = g as u32;
        asm.set_handler(*handler);
        asm.line = None;
        // T_G before P_G: 3.12+ conditional jumps only go forward.
        if *handover_ok {
            asm.label(Label::Terminal(g));
            asm.load_global_null(names.unwind);
            asm.imm(Op::Copy, 3);
            asm.call(1);
            asm.imm(Op::Copy, 1);
            asm.pop_jump_if_none(Label::Propagate(g));
            asm.pop_jump_if_false(Label::Transfer(g));
            let chain = chain_of(a, *handler);
            if *leave_ok {
                // Leave / rerun: the frame is left as `return` leaves it, then
                // the value is computed (a rerun calls the function again only
                // after this invocation's `finally`s and `__exit__`s ran).
                asm.set_handler(*handler);
                asm.imm(Op::PopTop, 0);
                unwind(&mut asm, base, &chain, none_const, true, false);
                asm.set_handler(chain.iter().copied().find(|h| h.depth == 0));
                asm.load_global_null(names.value);
                asm.call(0);
                asm.imm(Op::ReturnValue, 0);
            } else {
                // The engine refuses leave/rerun here (a `finally` would be
                // skipped) and never asks for it: should it, what the
                // dispatcher raised propagates like the statement's own error.
                asm.set_handler(*handler);
                asm.imm(Op::PopTop, 0);
                asm.imm(Op::Reraise, 0);
            }
            // Hand-over: the continuation runs first, holding the slots, which
            // are then dropped without running exits.
            asm.label(Label::Transfer(g));
            asm.set_handler(*handler);
            asm.imm(Op::PopTop, 0);
            asm.load_global_null(names.value);
            // The continuation already ran this frame's handlers (its `except`
            // clauses, `finally`s and `__exit__`s) on whatever it raises: that
            // exception must leave the frame without meeting them again.
            asm.call_with_handler(
                0,
                Some(HandlerRef::At {
                    label: Label::TransferRaised(g),
                    depth: base.len() as u32,
                }),
            );
            unwind(&mut asm, base, &chain, none_const, false, true);
            asm.imm(Op::ReturnValue, 0);
            // `[base…, exc]`: drop the slots as the hand-over's return does
            // (`POP_EXCEPT` restores the exception state an `except` saved; no
            // exits), then re-raise with no handler in this frame.
            asm.label(Label::TransferRaised(g));
            unwind(&mut asm, base, &[], none_const, false, true);
            asm.set_handler(None);
            asm.imm(Op::Reraise, 0);
        }
        asm.set_handler(*handler);
        asm.label(Label::Propagate(g));
        asm.imm(Op::PopTop, 0);
        asm.imm(Op::Reraise, 0);
    }
    let orig_units = (original_code.len() / 2) as u32;
    let (stub_code, offsets) = layout(ver, &asm.out, orig_units)?;
    let mut label_at: HashMap<Label, u32> = HashMap::default();
    for (e, off) in asm.out.iter().zip(&offsets) {
        if let Some(l) = e.label {
            label_at.insert(l, *off);
        }
    }
    let resolve = |h: HandlerRef| -> Result<Handler> {
        Ok(match h {
            HandlerRef::Fixed(h) => h,
            HandlerRef::At { label, depth } => Handler {
                target: *label_at
                    .get(&label)
                    .ok_or(Error::Layout("missing handler label"))?,
                depth,
                lasti: false,
            },
        })
    };
    // Exception table: covered instructions go to their stub (late statements
    // keep their `except`, whose no-match RERAISE goes to the late stub); stub
    // code carries the statement's original handler.
    let total_units = orig_units as usize + stub_code.len() / 2;
    let mut units: Vec<Option<Handler>> = vec![None; total_units];
    for e in &a.entries {
        for u in e.start..e.end.min(orig_units) {
            units[u as usize] = Some(e.handler());
        }
    }
    for (i, ins) in a.instrs.iter().enumerate() {
        if !a.covered[i] {
            continue;
        }
        let Some(r) = a.owner[i] else { continue };
        if late.contains_key(&r) {
            continue;
        }
        let rp = &a.rps[r as usize];
        let target = if yield_filter.contains_key(&i) {
            label_at[&Label::YieldFilter(i as u32)]
        } else {
            label_at[&Label::Stub(r)]
        };
        for u in ins.offset..ins.end() {
            units[u as usize] = Some(Handler {
                target,
                depth: rp.depth(),
                lasti: false,
            });
        }
    }
    // 3.13 looks up the handler for an exception coming back from a Python
    // callee at the unit *before* the call (`exception_unwind` uses
    // `instr_ptr - 1` and `instr_ptr` is the CALL itself). CPython's own ranges
    // always include that unit; ours skip instructions that cannot raise, so the
    // unit before a covered instruction is routed to the same stub when its own
    // instruction cannot raise (it then only ever serves the call's callee).
    if ver == Version::V3_13 {
        for (i, ins) in a.instrs.iter().enumerate().skip(1) {
            let Some(r) = a.owner[i] else { continue };
            if !a.covered[i] || late.contains_key(&r) {
                continue;
            }
            let p = &a.instrs[i - 1];
            if a.covered[i - 1] || can_raise(p.op) || p.end() != ins.offset {
                continue;
            }
            let base = &a.rps[r as usize].base;
            if !a.stacks[i - 1]
                .as_ref()
                .is_some_and(|st| st.starts_with(base))
            {
                continue;
            }
            units[(ins.offset - 1) as usize] = Some(Handler {
                target: label_at[&Label::Stub(r)],
                depth: a.rps[r as usize].depth(),
                lasti: false,
            });
        }
    }
    for (r, rps) in &by_reraise {
        let ins = &a.instrs[*r];
        let d = a.rps[rps[0] as usize].depth();
        for u in ins.offset..ins.end() {
            units[u as usize] = Some(Handler {
                target: label_at[&Label::Late(*r as u32)],
                depth: d + 1,
                lasti: false,
            });
        }
    }
    let mut line_entries = linetable::decode(original_linetable)?;
    let described: u32 = line_entries.iter().map(|e| e.length as u32).sum();
    if described != orig_units {
        return Err(Error::BadLineTable(original_linetable.len()));
    }
    let mut prev_line = linetable::final_line(&line_entries, firstlineno);
    for (k, e) in asm.out.iter().enumerate() {
        let start = offsets[k];
        let end = offsets.get(k + 1).copied().unwrap_or(total_units as u32);
        let h = e.handler.map(resolve).transpose()?;
        for u in start..end {
            units[u as usize] = h;
        }
        line_entries.extend(linetable::line_entries(end - start, e.line, prev_line));
        if let Some(l) = e.line {
            prev_line = l;
        }
    }
    let max_base = stubbed.iter().map(|r| r.depth()).max().unwrap_or(0);
    // 3.12+ `LOAD_FAST` does not check for an unbound local (the compiler
    // proved it bound). The instrumented code keeps them: `LOAD_FAST_CHECK`
    // costs a few percent on tight code and blocks 3.12's `LOAD_FAST__*`
    // superinstructions. A skip that would leave such a local unbound hands
    // the frame over to a continuation instead, whose reads are checked
    // (`Analysis::unchecked_reads`, `engine.refusal`).
    let mut code = original_code.to_vec();
    code.extend_from_slice(&stub_code);
    Ok(Rewritten {
        code,
        exceptiontable: exctable::encode(&exctable::from_units(&units)),
        linetable: linetable::encode(&line_entries),
        // Stubs push at most six values above the base (late stubs: the saved
        // exception state, the exception, the call's three).
        stacksize: a.max_depth.max(max_base + 7),
        stubs: stubbed.len() as u32,
    })
}

/// One value a continuation's prologue restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    /// `STORE_FAST local` from `co_consts[konst]`: a plain local.
    Fast { local: u32, konst: u32 },
    /// A cell variable's value: `STORE_DEREF local` (after the prologue's `MAKE_CELL`s).
    Cell { local: u32, konst: u32 },
    /// A cell variable's cell itself, shared with closures made before:
    /// `STORE_FAST local` over the fresh cell. The caller guarantees the
    /// constant is a cell object (the interpreter does not check).
    CellObject { local: u32, konst: u32 },
    /// Push a base slot: `Iter` or `WithExit` (the caller guarantees the value
    /// is an iterator, respectively callable).
    Push { kind: SlotKind, konst: u32 },
    /// Re-enter an `except` body: push the handled exception and `PUSH_EXC_INFO; POP_TOP`.
    ExcInfo { konst: u32 },
    /// Push `NULL` (a call's empty `self` slot: `PUSH_NULL`), for continuations
    /// that re-enter a statement at one of its calls (after the base slots).
    Null,
    /// Push a value the statement computed before the call it is re-entered
    /// at, or one of the call's operands (after the base slots).
    Value { konst: u32 },
}

/// Build a continuation: the prologue of `a` (cells, free variables, `RESUME`),
/// then `restores`, then a jump to code unit `target` of the (possibly already
/// instrumented) code, whose bytes, exception table and line table are given.
/// `a` is the analysis of the original code (the first `a.units` code units of
/// `code`; instrumented code only appends stubs after them), `layout` its
/// `localsplus`.
///
/// The state is checked first (see `frame_state`): `target` must be a resume
/// point or a skip target, the pushed slots exactly its base, every local a
/// slot of the right kind, and (3.13) no unchecked superinstruction may read a
/// local left unbound. On 3.12+ every `LOAD_FAST` of a non-argument becomes
/// `LOAD_FAST_CHECK`: the compiler's proof that a local is bound assumed the
/// function ran from its entry.
/// Returns the new code, exception table, line table and stack size.
#[allow(clippy::too_many_arguments)]
pub fn continuation(
    a: &Analysis,
    layout: &Layout,
    code: &[u8],
    exceptiontable: &[u8],
    linetable: &[u8],
    stacksize: u32,
    target: u32,
    restores: &[Restore],
) -> Result<Rewritten> {
    continuation_at(
        a,
        layout,
        code,
        exceptiontable,
        linetable,
        stacksize,
        target,
        target,
        restores,
    )
}

/// [`continuation`] into the statement starting at code unit `statement`, at
/// code unit `target` inside it (one of its calls): after the base slots the
/// restores push `Value`s and `Null`s, which the caller has checked to be
/// exactly the stack the analysis gives at `target`.
#[allow(clippy::too_many_arguments)]
pub fn continuation_at(
    a: &Analysis,
    layout: &Layout,
    code: &[u8],
    exceptiontable: &[u8],
    linetable: &[u8],
    stacksize: u32,
    statement: u32,
    target: u32,
    restores: &[Restore],
) -> Result<Rewritten> {
    let ver = a.version;
    if !code.len().is_multiple_of(2) || ((code.len() / 2) as u32) < a.units {
        return Err(Error::Continuation(
            "the code is not the one analysed".into(),
        ));
    }
    let instrs = instr::decode(code, ver)?;
    let mut asm = Asm::new(ver);
    for ins in &instrs {
        match ins.op {
            Op::MakeCell | Op::CopyFreeVars => asm.imm(ins.op, ins.arg),
            Op::Resume => {
                asm.imm(Op::Resume, 0);
                break;
            }
            Op::ReturnGenerator | Op::PopTop => {
                return Err(Error::Continuation(
                    "generators and coroutines cannot be continued".into(),
                ))
            }
            _ => return Err(Error::Continuation("unexpected prologue".into())),
        }
    }
    let bound = frame_state::check_restores(a, layout, statement, target, restores)?;
    let instrumented = (code.len() / 2) as u32 > a.units;
    frame_state::check_unbound_reads(a, layout, target, &bound, instrumented)?;
    let mut pushed = 0u32;
    for r in restores {
        match *r {
            Restore::Fast { local, konst } => {
                asm.imm(Op::LoadConst, konst);
                asm.imm(Op::StoreFast, local);
            }
            Restore::Cell { local, konst } => {
                asm.imm(Op::LoadConst, konst);
                asm.imm(Op::StoreDeref, local);
            }
            Restore::CellObject { local, konst } => {
                asm.imm(Op::LoadConst, konst);
                asm.imm(Op::StoreFast, local);
            }
            Restore::Push { konst, .. } | Restore::Value { konst } => {
                asm.imm(Op::LoadConst, konst);
                pushed += 1;
            }
            Restore::ExcInfo { konst } => {
                asm.imm(Op::LoadConst, konst);
                asm.imm(Op::PushExcInfo, 0);
                asm.imm(Op::PopTop, 0);
                pushed += 1;
            }
            Restore::Null => {
                asm.imm(Op::PushNull, 0);
                pushed += 1;
            }
        }
    }
    // The jump's distance depends on the prologue's own size: iterate.
    let mut jump_prefix = 0u8;
    let (prologue, plen) = loop {
        let mut bytes = Vec::new();
        for e in &asm.out {
            let Arg::Imm(a) = e.arg else { unreachable!() };
            instr::encode_one(&mut bytes, ver, ver.num(e.op), a, prefixes_for(a));
        }
        let jump_units = jump_prefix as u32 + 1 + ver.caches(Op::JumpForward) as u32;
        let plen = (bytes.len() / 2) as u32 + jump_units;
        let arg = target; // from the end of the jump (= plen) to plen + target
        if prefixes_for(arg) > jump_prefix {
            jump_prefix = prefixes_for(arg);
            continue;
        }
        instr::encode_one(&mut bytes, ver, ver.num(Op::JumpForward), arg, jump_prefix);
        break (bytes, plen);
    };
    let mut entries = exctable::decode(exceptiontable)?;
    for e in &mut entries {
        e.start += plen;
        e.end += plen;
        e.target += plen;
    }
    let mut lines = linetable::line_entries(plen, None, 0);
    lines.extend(linetable::decode(linetable)?);
    let mut body = code.to_vec();
    if ver != Version::V3_11 {
        let check = ver.num(Op::LoadFastCheck);
        for ins in &a.instrs {
            if ins.op == Op::LoadFast && ins.arg >= layout.nargs {
                body[2 * ins.op_offset() as usize] = check;
            }
        }
    }
    let mut out = prologue;
    out.extend_from_slice(&body);
    Ok(Rewritten {
        code: out,
        exceptiontable: exctable::encode(&entries),
        linetable: linetable::encode(&lines),
        stacksize: stacksize.max(pushed + 2),
        stubs: 0,
    })
}
