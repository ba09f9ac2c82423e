//! Checking the frame state a continuation is asked to restore.
//!
//! A continuation jumps into the middle of a code object with locals and value
//! stack slots it was given. The interpreter trusts bytecode completely: a
//! slot of the wrong kind, a missing slot, `STORE_DEREF` into a slot holding
//! no cell, or an unchecked read of a local left unbound is a crash, not an
//! exception. So every state is checked against the analysis of the code
//! before a byte is emitted; what cannot be checked here (the Python values
//! themselves) is checked by the caller, which says so by the `Restore`
//! variant it chooses.

use crate::analysis::{Analysis, SlotKind};
use crate::effects::{effect, successors};
use crate::error::{Error, Result};
use crate::exctable;
use crate::opcodes::{Op, Version};

/// What one `localsplus` slot of a code object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalKind {
    /// An ordinary fast local (arguments included).
    Plain,
    /// A cell variable: `MAKE_CELL` puts a cell in the slot on entry.
    Cell,
    /// A free variable: `COPY_FREE_VARS` copies the closure's cell in.
    Free,
}

/// The `localsplus` layout of a code object.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Name and kind of each slot, in `localsplus` order.
    pub locals: Vec<(String, LocalKind)>,
    /// Argument slots (positional, keyword-only, `*args`, `**kwargs`): they
    /// come first and are bound by the call before the prologue runs.
    pub nargs: u32,
}

impl Layout {
    fn name(&self, local: u32) -> String {
        self.locals
            .get(local as usize)
            .map_or_else(|| format!("#{local}"), |(n, _)| format!("`{n}`"))
    }
}

fn refuse(msg: String) -> Error {
    Error::Continuation(msg)
}

fn kinds(base: &[SlotKind]) -> String {
    if base.is_empty() {
        return "none".into();
    }
    base.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

impl Analysis {
    /// The slots a continuation must restore to enter code unit `target`:
    /// the base of the resume point starting there, or of the statement
    /// whose skip lands there (the only other places where the stack holds
    /// exactly known slots and nothing half-evaluated).
    pub fn continuation_base(&self, target: u32) -> Result<Vec<SlotKind>> {
        let i = self
            .index_of_start(target)
            .filter(|&i| i >= self.body_start)
            .ok_or_else(|| {
                refuse(format!(
                    "byte offset {} is not the start of an instruction of the body",
                    2 * target as u64
                ))
            })?;
        let is_start = self
            .rps
            .iter()
            .any(|r| r.start == target || r.skip_to == Some(target));
        if !is_start {
            return Err(refuse(format!(
                "byte offset {} is not a resume point (a statement start or a skip target)",
                2 * target as u64
            )));
        }
        let stack = self.stacks[i]
            .clone()
            .ok_or_else(|| refuse(format!("byte offset {} is unreachable", 2 * target as u64)))?;
        if let Some(k) = stack.iter().find(|k| !k.is_base()) {
            return Err(refuse(format!(
                "the stack at byte offset {} holds a slot of unknown kind ({})",
                2 * target as u64,
                k.name()
            )));
        }
        Ok(stack)
    }

    /// Locals that 3.13's unchecked superinstructions (`LOAD_FAST_LOAD_FAST`,
    /// `STORE_FAST_LOAD_FAST`) may read unbound when the code runs from
    /// `target` with only `bound` plain locals (and the arguments) bound.
    /// `instrumented`: the code carries stubs, whose retry jumps back to the
    /// statement's start from any covered instruction.
    ///
    /// A data-flow over the body, following jumps and exception edges. The
    /// value `LOAD_FAST_AND_CLEAR` saves (3.12+ inlined comprehensions) is
    /// tracked on the stack, so the `STORE_FAST` that puts it back restores
    /// the local's earlier state (possibly unbound) instead of binding it.
    pub fn unbound_superinstruction_reads(
        &self,
        target: u32,
        layout: &Layout,
        bound: &[bool],
        instrumented: bool,
    ) -> Vec<u32> {
        if self.version != Version::V3_13 {
            return Vec::new();
        }
        let n = self.instrs.len();
        let Some(t) = self.index_of_start(target) else {
            return Vec::new();
        };
        let Some(base) = self.stacks[t].as_ref() else {
            return Vec::new();
        };
        let nlocals = layout.locals.len();
        let mut unbound0 = vec![false; nlocals];
        for (l, u) in unbound0.iter_mut().enumerate() {
            *u = layout.locals[l].1 == LocalKind::Plain
                && (l as u32) >= layout.nargs
                && !bound.get(l).copied().unwrap_or(false);
        }
        let mut states: Vec<Option<State>> = vec![None; n];
        let mut work = Vec::new();
        let start = State {
            unbound: unbound0,
            stack: vec![Tag::Value; base.len()],
        };
        join_into(&mut states, &mut work, t, start);
        // Where a stub's retry sends a covered instruction back into the body.
        // (A skip may leave a local unbound too, but which skip is allowed is
        // decided when it happens: `engine.refusal` refuses one that leaves a
        // local these superinstructions read unbound.)
        // Each edge carries the locals the way to it may delete.
        let mut stub_edges: Vec<Vec<(usize, Vec<u32>)>> = vec![Vec::new(); n];
        if instrumented {
            let mut add = |from: usize, r: u32, deleted: &[u32]| {
                if let Some(k) = self.index_of_start(self.rps[r as usize].start) {
                    stub_edges[from].push((k, deleted.to_vec()));
                }
            };
            for i in 0..n {
                if self.covered[i] {
                    if let Some(r) = self.owner[i] {
                        add(i, r, &[]);
                    }
                }
            }
            // A statement directly in a `try` keeps the program's handler; when
            // no clause matches, the late stub retries the statement that
            // raised, with the locals it had when it raised. So the retry edge
            // leaves from each of the statement's own instructions that the
            // handler covers, not from the no-match `RERAISE` (where the states
            // of every statement of the `try` meet and a local bound by an
            // earlier statement would look unbound). The clauses' tests store
            // nothing on the way to the `RERAISE`; a local any part of the
            // handler deletes (an `as` name) counts as unbound.
            for (r, reraise) in self.except_first() {
                let Some(h) = self.rps[r as usize].handler else {
                    continue;
                };
                let from = self.index_of_start(h.target).unwrap_or(reraise);
                let deleted: Vec<u32> = (from.min(reraise)..=reraise)
                    .filter(|&k| self.instrs[k].op == Op::DeleteFast)
                    .map(|k| self.instrs[k].arg)
                    .collect();
                for i in 0..n {
                    if self.owner[i] == Some(r)
                        && exctable::lookup(&self.entries, self.instrs[i].op_offset())
                            .is_some_and(|e| e.target == h.target)
                    {
                        add(i, r, &deleted);
                    }
                }
            }
        }
        let mut found = vec![false; nlocals];
        let mut guard = 0usize;
        while let Some(i) = work.pop() {
            guard += 1;
            if guard > 256 * n + 4096 {
                // Cannot happen (the lattice is finite and joins only grow);
                // if it did, refusing every unchecked local is the safe answer.
                for (l, f) in found.iter_mut().enumerate() {
                    *f |= layout.locals[l].1 == LocalKind::Plain && (l as u32) >= layout.nargs;
                }
                break;
            }
            let Some(st) = states[i].clone() else {
                continue;
            };
            let ins = &self.instrs[i];
            // Exception edge: locals as before the instruction.
            if let Some(e) = exctable::lookup(&self.entries, ins.op_offset()) {
                if let Some(h) = self.index_of_start(e.target) {
                    let mut stack = st.stack.clone();
                    stack.truncate(e.depth as usize);
                    if e.lasti {
                        stack.push(Tag::Value);
                    }
                    stack.push(Tag::Value);
                    let s = State {
                        unbound: st.unbound.clone(),
                        stack,
                    };
                    join_into(&mut states, &mut work, h, s);
                }
            }
            for (k, deleted) in &stub_edges[i] {
                if let Some(b) = &self.stacks[*k] {
                    let mut unbound = st.unbound.clone();
                    for &l in deleted {
                        if let Some(u) = unbound.get_mut(l as usize) {
                            *u = true;
                        }
                    }
                    let s = State {
                        unbound,
                        stack: vec![Tag::Value; b.len()],
                    };
                    join_into(&mut states, &mut work, *k, s);
                }
            }
            let mut st = st;
            let mut read = |l: u32, st: &State| {
                if st.unbound.get(l as usize).copied().unwrap_or(false) {
                    found[l as usize] = true;
                }
            };
            let store = |l: u32, tag: Tag, st: &mut State| {
                if let Some(u) = st.unbound.get_mut(l as usize) {
                    *u = match tag {
                        Tag::Value => false,
                        Tag::Saved(s, maybe) if s == l => maybe,
                        Tag::Saved(..) | Tag::Unknown => true,
                    };
                }
            };
            let top = |st: &State, k: usize| {
                st.stack
                    .len()
                    .checked_sub(k + 1)
                    .map_or(Tag::Unknown, |j| st.stack[j])
            };
            let mut saved = None;
            match ins.op {
                Op::LoadFastLoadFast => {
                    read(ins.arg >> 4, &st);
                    read(ins.arg & 15, &st);
                }
                Op::StoreFastLoadFast => {
                    let v = top(&st, 0);
                    store(ins.arg >> 4, v, &mut st);
                    read(ins.arg & 15, &st);
                }
                Op::StoreFast => {
                    let v = top(&st, 0);
                    store(ins.arg, v, &mut st);
                }
                Op::StoreFastStoreFast => {
                    let (v1, v2) = (top(&st, 0), top(&st, 1));
                    store(ins.arg >> 4, v1, &mut st);
                    store(ins.arg & 15, v2, &mut st);
                }
                Op::DeleteFast => {
                    if let Some(u) = st.unbound.get_mut(ins.arg as usize) {
                        *u = true;
                    }
                }
                Op::LoadFastAndClear => {
                    let l = ins.arg;
                    let was = st.unbound.get(l as usize).copied().unwrap_or(false);
                    saved = Some(Tag::Saved(l, was));
                    if let Some(u) = st.unbound.get_mut(l as usize) {
                        *u = true;
                    }
                }
                _ => {}
            }
            for (edge, to) in successors(self.version, ins) {
                let Some(k) = u32::try_from(to).ok().and_then(|u| self.index_of_start(u)) else {
                    continue;
                };
                let Some((c, p)) = effect(self.version, ins, edge) else {
                    continue;
                };
                let len = st.stack.len();
                if len < c as usize {
                    continue;
                }
                let produced: Vec<Tag> = match ins.op {
                    Op::Copy => vec![ins
                        .arg
                        .checked_sub(1)
                        .map_or(Tag::Unknown, |k| top(&st, k as usize))],
                    Op::Swap => {
                        let mut s = st.stack[len - c as usize..].to_vec();
                        if let Some(last) = s.len().checked_sub(1) {
                            s.swap(0, last);
                        }
                        s
                    }
                    Op::LoadFastAndClear => vec![saved.unwrap_or(Tag::Unknown)],
                    _ => vec![Tag::Value; p as usize],
                };
                let mut stack = st.stack[..len - c as usize].to_vec();
                stack.extend(produced);
                let s = State {
                    unbound: st.unbound.clone(),
                    stack,
                };
                join_into(&mut states, &mut work, k, s);
            }
        }
        (0..nlocals as u32).filter(|&l| found[l as usize]).collect()
    }
}

/// What the flow knows about one value-stack slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// An ordinary value, never `NULL`.
    Value,
    /// What `LOAD_FAST_AND_CLEAR` saved of a local; `true`: maybe `NULL`.
    Saved(u32, bool),
    /// Different things on different paths.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    /// Per local: may it be unbound here?
    unbound: Vec<bool>,
    stack: Vec<Tag>,
}

fn join_into(states: &mut [Option<State>], work: &mut Vec<usize>, at: usize, s: State) {
    match &mut states[at] {
        slot @ None => {
            *slot = Some(s);
            work.push(at);
        }
        Some(old) => {
            let mut changed = false;
            for (o, n) in old.unbound.iter_mut().zip(&s.unbound) {
                if *n && !*o {
                    *o = true;
                    changed = true;
                }
            }
            if old.stack.len() != s.stack.len() {
                // Depths agree at every join in analysable code; if not, trust nothing.
                for t in &mut old.stack {
                    if *t != Tag::Unknown {
                        *t = Tag::Unknown;
                        changed = true;
                    }
                }
            } else {
                for (o, n) in old.stack.iter_mut().zip(&s.stack) {
                    let j = match (*o, *n) {
                        (a, b) if a == b => a,
                        (Tag::Saved(a, x), Tag::Saved(b, y)) if a == b => Tag::Saved(a, x || y),
                        _ => Tag::Unknown,
                    };
                    if j != *o {
                        *o = j;
                        changed = true;
                    }
                }
            }
            if changed {
                work.push(at);
            }
        }
    }
}

/// Check the restores of a continuation of `a` entering code unit `target`:
/// the base slots, in order, must be exactly the ones the code expects there,
/// and every local must go to a slot of the right kind.
pub fn check_restores(
    a: &Analysis,
    layout: &Layout,
    target: u32,
    entry: u32,
    restores: &[crate::emit::Restore],
) -> Result<Vec<bool>> {
    use crate::emit::Restore;
    let base = a.continuation_base(target)?;
    let mut given = Vec::new();
    let mut bound = vec![false; layout.locals.len()];
    // Values above the base slots: only when entering a statement at one of
    // its calls (`entry` inside the statement at `target`), and only after
    // every base slot.
    let mut above = false;
    for r in restores {
        if above && !matches!(r, Restore::Null | Restore::Value { .. }) {
            return Err(refuse(
                "the base slots must come before the values computed in the statement".into(),
            ));
        }
        match *r {
            Restore::Null | Restore::Value { .. } => {
                let inside = entry != target
                    && a.index_of_start(entry).is_some_and(|i| {
                        a.owner[i] == a.rps.iter().find(|p| p.start == target).map(|p| p.index)
                    });
                if !inside {
                    return Err(refuse(format!(
                        "values above the base slots are only restored for an entry inside the \
                         statement at byte offset {}",
                        2 * target as u64
                    )));
                }
                above = true;
            }
            Restore::Push { kind, .. } => {
                if !matches!(kind, SlotKind::Iter | SlotKind::WithExit) {
                    return Err(refuse(format!(
                        "cannot restore a stack slot of kind {}",
                        kind.name()
                    )));
                }
                given.push(kind);
            }
            Restore::ExcInfo { .. } => given.push(SlotKind::ExcInfo),
            Restore::Fast { local, .. }
            | Restore::Cell { local, .. }
            | Restore::CellObject { local, .. } => {
                let Some((_, kind)) = layout.locals.get(local as usize) else {
                    return Err(refuse(format!(
                        "local index {local} is out of range (the code has {} locals, cells \
                         and free variables)",
                        layout.locals.len()
                    )));
                };
                let ok = match r {
                    Restore::Fast { .. } => *kind == LocalKind::Plain,
                    _ => *kind == LocalKind::Cell,
                };
                if !ok {
                    let what = match kind {
                        LocalKind::Plain => "a plain local: it has no cell to store into",
                        LocalKind::Cell => "a cell variable: restore its value or its cell",
                        LocalKind::Free => "a free variable: it belongs to the closure",
                    };
                    return Err(refuse(format!(
                        "local {} (index {local}) is {what}",
                        layout.name(local)
                    )));
                }
                bound[local as usize] = true;
            }
        }
    }
    if given != base {
        return Err(refuse(format!(
            "the statement at byte offset {} runs with the slots [{}] below it; the state \
             gives [{}]",
            2 * target as u64,
            kinds(&base),
            kinds(&given)
        )));
    }
    Ok(bound)
}

/// Refuse a continuation whose code would read a local unbound without a check.
pub fn check_unbound_reads(
    a: &Analysis,
    layout: &Layout,
    target: u32,
    bound: &[bool],
    instrumented: bool,
) -> Result<()> {
    let missing = a.unbound_superinstruction_reads(target, layout, bound, instrumented);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|&l| layout.name(l)).collect();
    Err(refuse(format!(
        "the code from this statement may read {} before assigning it (restore it)",
        names.join(", ")
    )))
}
